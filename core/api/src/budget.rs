//! Budgets (Section 6): how much a run and a day may spend, in tokens and calls, and how
//! fast. Every allow or deny is a [`BudgetDecided`] receipt.

use crate::envelope::Actor;
use crate::event;

#[crate::data]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct Usage {
    pub tokens: u64,
    pub calls: u64,
}

impl Usage {
    pub fn plus(self, other: Usage) -> Usage {
        Usage {
            tokens: self.tokens + other.tokens,
            calls: self.calls + other.calls,
        }
    }

    /// Whether this is within `limit` on both counts.
    pub fn within(self, limit: Usage) -> bool {
        self.tokens <= limit.tokens && self.calls <= limit.calls
    }
}

#[crate::data]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BudgetLimits {
    pub per_run: Usage,
    pub per_day: Usage,
    /// Calls allowed in any sixty seconds.
    pub calls_per_minute: u64,
}

/// The receipt of a budget decision.
#[event(public)]
#[derive(Clone, Debug, PartialEq)]
#[schemars(example = BudgetDecided {
    run_id: "triage-2026-11-26-1".to_owned(),
    actor: Actor::Agent(crate::envelope::ActorId::new("triage-bot").expect("an actor id")),
    asked: Usage { tokens: 1200, calls: 1 },
    allowed: false,
    reason: Some("the run would use 10200 tokens of its 10000".to_owned()),
    run_used: Usage { tokens: 9000, calls: 7 },
    day_used: Usage { tokens: 52000, calls: 40 },
})]
pub struct BudgetDecided {
    pub run_id: String,
    pub actor: Actor,
    pub asked: Usage,
    pub allowed: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// What the run and the day had used before this request.
    pub run_used: Usage,
    pub day_used: Usage,
}
