//! Runs a pack's reaction: follows the log in commit order, hands each event of the
//! reaction's type to it, and submits the commands it proposes through the command bus.
//!
//! The cursor moves only after a batch's commands were decided. A runner that stops in
//! between proposes the same commands again on restart; their ids derive from their
//! content, so the bus replays the recorded outcomes and nothing is decided twice.
//!
//! With a budget, every proposed command first spends one call of the run (one
//! `catch_up`, named by where it started) and of the day; a denial stops the run with the
//! cursor just before the event, so the next run answers it. A command the pack's
//! capability does not allow (no grant yet, or revoked) stops the run the same way, so
//! the event is answered once it is allowed; asked again under the same capability state,
//! the denial is the same receipt, not a new one per run, and it spends no budget (the
//! capability is asked first). A replayed command spends too: the budget cannot know
//! before the bus does, and erring on the side of spending never lets a runaway reaction
//! through.

use std::sync::Arc;

use ops_core::budget::Usage;
use ops_core::envelope::CommandOutcome;
use ops_core::id::CapabilityId;
use ops_core::reaction::{DynReaction, reactor};

use crate::budget::{BudgetError, Budgets};
use crate::command::{BusError, CommandBus};
use crate::cursors::{CursorFence, CursorUpdate};
use crate::leases::{self, Lease, Leases};
use crate::store::{
    AppendError, CurrentPayload, EventStore, ExpectedVersion, LogPosition, ReadError,
};

use crate::faults::FaultCount;
use crate::jail::PieceError;

const BATCH: usize = 500;

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ReactionReport {
    pub events: usize,
    pub accepted: usize,
    pub rejected: usize,
    /// Decided before (by an earlier run that stopped before moving its cursor).
    pub replayed: usize,
    /// Events the reaction could not read or answer; each is in the quarantine.
    pub quarantined: usize,
    /// Commands the pack's capability did not allow; each left a `CapabilityDenied` receipt,
    /// and the run stopped before the event that proposed it.
    pub denied: usize,
    /// The budget refused a call (its `BudgetDecided` receipt says why); the run stopped
    /// before the event whose command it refused.
    pub stopped_by_budget: bool,
    /// Batches whose cursor another worker moved first; this worker went on from there.
    pub superseded: usize,
    /// Another worker holds this reaction's lease: this one did nothing.
    pub held_by: Option<String>,
    /// Another worker took the lease over mid-run: this one's last cursor move was
    /// refused and it stopped (the commands it sent are deduplicated by their ids).
    pub lease_lost: bool,
    /// Calls of the reaction's code that faulted (each event set aside, with a receipt).
    pub faulted: usize,
    /// The reaction is paused after faults in a row: the receipt that paused it. Its
    /// cursor stays before the next event until an operator resumes it.
    pub paused: Option<ops_core::id::EventId>,
}

#[derive(Debug, thiserror::Error)]
pub enum ReactionError {
    #[error(transparent)]
    Read(#[from] ReadError),
    #[error("the reaction's cursor is damaged: {0}")]
    Cursor(String),
    #[error("submitting a proposed command failed; the cursor stays before its event: {0}")]
    Submit(#[from] BusError),
    #[error("quarantining failed: {0}")]
    Quarantine(#[from] sqlx::Error),
    #[error("moving the reaction's cursor failed: {0}")]
    Save(#[from] crate::store::AppendError),
    #[error("the budget could not decide: {0}")]
    Budget(#[from] BudgetError),
    #[error("the reaction's lease could not be read or taken: {0}")]
    Lease(sqlx::Error),
    #[error(transparent)]
    Jail(#[from] crate::jail::JailError),
}

/// How answering one event ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Answered {
    Done,
    /// The budget refused a call: the run stops before the event.
    OverBudget,
    /// The capability refused a command: the run stops before the event.
    Denied,
    /// The reaction is paused: the run stops before the event.
    Paused,
}

pub struct ReactionRunner {
    store: EventStore,
    reaction: &'static dyn DynReaction,
    /// The capability the pack's reactions act on.
    capability_id: CapabilityId,
    budget: Option<Arc<Budgets>>,
    leases: Option<Leases>,
    /// Its faults in a row, and whether it is paused (read from the log at its first run).
    faults: std::sync::Mutex<Option<FaultCount>>,
}

impl ReactionRunner {
    pub fn new(
        store: EventStore,
        reaction: &'static dyn DynReaction,
        capability_id: CapabilityId,
    ) -> Self {
        ReactionRunner {
            store,
            reaction,
            capability_id,
            budget: None,
            leases: None,
            faults: std::sync::Mutex::new(None),
        }
    }

    /// Every command it proposes spends a call of `budget` first.
    pub fn with_budget(mut self, budget: Arc<Budgets>) -> Self {
        self.budget = Some(budget);
        self
    }

    /// Runs only under this reaction's lease of `leases` (see [`crate::leases`]), each
    /// cursor move fenced by it.
    pub fn with_leases(mut self, leases: Leases) -> Self {
        self.leases = Some(leases);
        self
    }

    /// The lease of this reaction: where its cursor is kept, `reaction:<pack>/<stream>`.
    pub fn lease_name(&self) -> String {
        self.origin()
    }

    /// Where its cursor is kept: the connector cursor table, under a name no connector has.
    fn cursor_key(&self) -> (String, String) {
        (
            format!("reaction:{}", self.reaction.pack_id()),
            format!(
                "{}->{}",
                self.reaction.event_type(),
                self.reaction.command_type()
            ),
        )
    }

    fn origin(&self) -> String {
        let (owner, stream) = self.cursor_key();
        format!("{owner}/{stream}")
    }

    /// Answers every event committed since the last run, or until the budget runs out.
    pub async fn catch_up(&self, bus: &CommandBus) -> Result<ReactionReport, ReactionError> {
        let mut report = ReactionReport::default();
        let lease = match leases::hold(self.leases.as_ref(), &self.lease_name())
            .await
            .map_err(ReactionError::Lease)?
        {
            Ok(lease) => lease,
            Err(holder) => {
                report.held_by = Some(holder);
                return Ok(report);
            }
        };
        let lease = lease.as_ref();
        if self.faults().is_none() {
            let paused = crate::faults::paused_piece(&self.store, &self.piece()).await?;
            *self.faults.lock().expect("no code panics holding it") = Some(FaultCount {
                paused,
                ..FaultCount::default()
            });
        }
        let (owner, stream) = self.cursor_key();
        let (mut position, mut stored) = self.read_cursor(&owner, &stream).await?;
        let run_id = format!("{}@{}:{}", self.origin(), position.tx_order, position.seq);
        loop {
            let batch = self
                .store
                .follow_types(&[self.reaction.event_type()], position, BATCH)
                .await?;
            if batch.events.is_empty() && batch.corrupt.is_empty() {
                return Ok(report);
            }
            for event in &batch.events {
                if event.envelope.event_type != self.reaction.event_type() {
                    continue;
                }
                report.events += 1;
                let answered = self.answer(bus, event, &run_id, &mut report).await?;
                if answered != Answered::Done {
                    report.events -= 1;
                    report.stopped_by_budget = answered == Answered::OverBudget;
                    report.paused = self.faults().and_then(|count| count.paused);
                    // Resume at this event: the cursor names the position before it.
                    let before = position_before(event.position, position);
                    self.save(&owner, &stream, before, stored, lease).await?;
                    return Ok(report);
                }
            }
            position = batch.next;
            match self
                .save(&owner, &stream, position, stored.clone(), lease)
                .await?
            {
                Some(saved) => stored = Some(saved),
                None if leases::taken_over(self.leases.as_ref(), lease)
                    .await
                    .map_err(ReactionError::Lease)? =>
                {
                    report.lease_lost = true;
                    return Ok(report);
                }
                None => {
                    // Another worker moved the cursor first; the commands this one sent
                    // again are deduplicated by their ids. Go on from its cursor.
                    report.superseded += 1;
                    (position, stored) = self.read_cursor(&owner, &stream).await?;
                }
            }
        }
    }

    /// How many events of its type the log holds past its cursor: waiting to be answered
    /// (held by a denial or a spent budget, or not yet reached). Only reads.
    pub async fn unanswered(&self) -> Result<usize, ReactionError> {
        let (owner, stream) = self.cursor_key();
        let (mut position, _) = self.read_cursor(&owner, &stream).await?;
        let mut waiting = 0;
        loop {
            let batch = self
                .store
                .follow_types(&[self.reaction.event_type()], position, BATCH)
                .await?;
            if batch.events.is_empty() && batch.corrupt.is_empty() {
                return Ok(waiting);
            }
            waiting += batch
                .events
                .iter()
                .filter(|event| event.envelope.event_type == self.reaction.event_type())
                .count();
            position = batch.next;
        }
    }

    /// The stored position and its text, as the fence compares it.
    async fn read_cursor(
        &self,
        owner: &str,
        stream: &str,
    ) -> Result<(LogPosition, Option<String>), ReactionError> {
        match self.store.cursor(owner, stream).await? {
            None => Ok((LogPosition::default(), None)),
            Some((text, _)) => {
                let position = serde_json::from_str(&text)
                    .map_err(|error| ReactionError::Cursor(format!("`{text}`: {error}")))?;
                Ok((position, Some(text)))
            }
        }
    }

    /// Stores the cursor if it is still `expected` and `lease` still this worker's: the
    /// text stored, or `None` when another worker moved the cursor or took the lease.
    async fn save(
        &self,
        owner: &str,
        stream: &str,
        position: LogPosition,
        expected: Option<String>,
        lease: Option<&Lease>,
    ) -> Result<Option<String>, ReactionError> {
        let text = serde_json::to_string(&position).expect("a position is plain JSON");
        let cursor = CursorUpdate {
            connector_id: owner.to_owned(),
            stream: stream.to_owned(),
            cursor: text.clone(),
            watermark: None,
            expected: CursorFence::Is(expected),
        };
        match self
            .store
            .append_under_lease(owner, ExpectedVersion::Any, &[], Some(&cursor), lease)
            .await
        {
            Ok(_) => Ok(Some(text)),
            Err(AppendError::Fenced { .. }) => Ok(None),
            Err(error) => Err(error.into()),
        }
    }

    /// The piece's name in fault receipts and pauses: `reaction <event> -> <command>`.
    pub fn piece(&self) -> String {
        format!(
            "reaction {} -> {}",
            self.reaction.event_type(),
            self.reaction.command_type()
        )
    }

    fn faults(&self) -> Option<FaultCount> {
        self.faults
            .lock()
            .expect("no code panics holding it")
            .clone()
    }

    /// Answers one event, or stops at a command the budget or the capability refused.
    async fn answer(
        &self,
        bus: &CommandBus,
        event: &crate::store::StoredEvent,
        run_id: &str,
        report: &mut ReactionReport,
    ) -> Result<Answered, ReactionError> {
        let envelope = &event.envelope;
        let raw = || serde_json::to_string(envelope).expect("an envelope is plain JSON");
        let payload = match self.store.current_payload(envelope) {
            CurrentPayload::Current { version, payload }
                if version == self.reaction.event_version() =>
            {
                payload
            }
            CurrentPayload::Current { version, .. } => {
                let reason = format!(
                    "the reaction reads v{} and this build upcasts `{}` to v{version}",
                    self.reaction.event_version(),
                    envelope.event_type
                );
                return self.set_aside(envelope, &reason, &raw(), report).await;
            }
            CurrentPayload::UnknownType => {
                return self
                    .set_aside(envelope, "its type is not installed", &raw(), report)
                    .await;
            }
            CurrentPayload::Unreadable { reason } => {
                return self.set_aside(envelope, &reason, &raw(), report).await;
            }
        };
        let mut count = self.faults().unwrap_or_default();
        if count.paused.is_some() {
            return Ok(Answered::Paused);
        }
        let code = self.store.pack_code();
        let commands = match code.react(self.store.registry(), self.reaction, envelope, &payload) {
            Ok(commands) => {
                count.answered();
                *self.faults.lock().expect("no code panics holding it") = Some(count);
                commands
            }
            Err(PieceError::Refused(error)) => {
                let reason = format!("the reaction could not build its command: {error}");
                return self.set_aside(envelope, &reason, &raw(), report).await;
            }
            Err(PieceError::Fault(fault)) => {
                let receipt = crate::faults::record(
                    &self.store,
                    self.reaction.pack_id(),
                    &self.piece(),
                    crate::faults::Input::Event(envelope.event_id),
                    &fault,
                    &mut count,
                )
                .await?;
                *self.faults.lock().expect("no code panics holding it") = Some(count);
                report.faulted += 1;
                let reason = format!(
                    "the reaction's code faulted: {fault} (receipt {})",
                    receipt.event_id
                );
                return self.set_aside(envelope, &reason, &raw(), report).await;
            }
            Err(PieceError::Jail(error)) => return Err(error.into()),
        };
        for command in commands {
            // A command its capability will deny spends nothing: the reaction waits at the
            // event with its budget intact, and answers as soon as it is allowed.
            if let Some(budget) = self
                .budget
                .as_ref()
                .filter(|_| bus.allows(&command, self.capability_id))
            {
                let one_call = Usage {
                    tokens: 0,
                    calls: 1,
                };
                let actor = reactor(self.reaction.pack_id());
                if !budget
                    .spend(run_id, &command.command_id.to_string(), &actor, one_call)
                    .await?
                {
                    return Ok(Answered::OverBudget);
                }
            }
            let receipt = match bus.submit(&command, self.capability_id, None).await {
                Ok(receipt) => receipt,
                Err(BusError::Denied { reason, .. }) => {
                    tracing::warn!(command = %command.command_id, %reason, "a reaction's command was denied; the reaction waits at its event until it is allowed");
                    report.denied += 1;
                    return Ok(Answered::Denied);
                }
                Err(error) => return Err(error.into()),
            };
            match (receipt.replayed, &receipt.outcome) {
                (true, _) => report.replayed += 1,
                (false, CommandOutcome::Accepted) => report.accepted += 1,
                (false, CommandOutcome::Rejected { reason }) => {
                    tracing::info!(command = %command.command_id, %reason, "a reaction's command was rejected");
                    report.rejected += 1;
                }
            }
        }
        Ok(Answered::Done)
    }

    async fn set_aside(
        &self,
        envelope: &ops_core::envelope::EventEnvelope,
        reason: &str,
        raw: &str,
        report: &mut ReactionReport,
    ) -> Result<Answered, ReactionError> {
        report.quarantined += 1;
        self.store
            .quarantine(&self.origin(), &envelope.event_id.to_string(), reason, raw)
            .await?;
        Ok(Answered::Done)
    }
}

/// The cursor that makes `follow` return the event at `event` next: the position just
/// before it within its transaction, never before where the run started.
fn position_before(event: LogPosition, start: LogPosition) -> LogPosition {
    let before = LogPosition {
        tx_order: event.tx_order,
        seq: event.seq - 1,
    };
    before.max(start)
}
