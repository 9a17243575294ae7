//! Faults of pack code (Section 3's isolation): what the host records when a piece of pack
//! or contract code it runs in a jailed runner panics, runs over its time or memory limit,
//! or is killed by the system-call filter. The fault ends that one call; the receipt says
//! which pack, which piece, which input, and what happened.

use crate::event;

/// A piece of pack code faulted on one input. The input is set aside for that piece (an
/// event quarantined, a command refused with the fault as its reason) and the runner
/// replaced. `paused` is set when the piece faulted so often in a row that the host stopped
/// giving it work until an operator resumes it (`ops-host quarantine retry`, a rebuild).
#[event(public)]
#[derive(Clone, Debug, PartialEq)]
#[schemars(example = PackCodeFaulted {
    pack: "incidents".to_owned(),
    piece: "projection incidents/board".to_owned(),
    input: "evt_1111111111111111111111111111111111111111111111111111111111111111".to_owned(),
    fault: "panicked: index out of bounds".to_owned(),
    confined: true,
    paused: false,
})]
pub struct PackCodeFaulted {
    pub pack: String,
    /// `projection <pack>/<name>`, `handler <command type>`, `reaction <event> -> <command>`,
    /// `connector <id>`.
    pub piece: String,
    /// The event id, command id or source record the piece was given.
    pub input: String,
    pub fault: String,
    /// Whether the code ran in a confined runner (`false` only under `--unjailed`).
    pub confined: bool,
    pub paused: bool,
}

/// An operator gave a paused piece work again (after a fix), by whom and why.
#[event(public)]
#[derive(Clone, Debug, PartialEq)]
#[schemars(example = PackPieceResumed {
    pack: "incidents".to_owned(),
    piece: "projection incidents/board".to_owned(),
    reason: "the fold no longer indexes past the end".to_owned(),
})]
pub struct PackPieceResumed {
    pub pack: String,
    pub piece: String,
    pub reason: String,
}

/// A host started to run pack code in runners the kernel does not confine (`--unjailed`,
/// where it cannot): from then on what that host's pack code outputs was not computed
/// under the jail, and `ops-host status` says so.
#[event(public)]
#[derive(Clone, Debug, PartialEq)]
#[schemars(example = PackCodeRanUnconfined {
    host: "worker-1".to_owned(),
})]
pub struct PackCodeRanUnconfined {
    /// The worker id (or `demo`) of the host that ran unconfined.
    pub host: String,
}
