//! Operator actions (A6, A7): what an operator does through the CLI is one action under a
//! key, recorded once. Every receipt the action causes takes the action's time and is caused
//! by it, so giving the same key again (a retry after a crash or a timeout) yields the
//! receipts already stored, with the same ids, instead of a second set.

use crate::event;

/// An operator started action `key` with the verb `verb`. Recorded once per key, the first
/// time; its `occurred_at` is the time of every receipt the action causes.
#[event(public)]
#[derive(Clone, Debug, PartialEq)]
#[schemars(example = OperatorActionTaken {
    key: "rotate-2026-12-06".to_owned(),
    verb: "secrets rotate".to_owned(),
})]
pub struct OperatorActionTaken {
    pub key: String,
    pub verb: String,
}

/// The longest action key, in bytes.
pub const MAX_ACTION_KEY: usize = 128;

/// Whether `key` may name an action: 1 to [`MAX_ACTION_KEY`] bytes of `[A-Za-z0-9._:-]`,
/// so it reads in a stream name and a log line as it was given.
pub fn is_valid_action_key(key: &str) -> bool {
    (1..=MAX_ACTION_KEY).contains(&key.len())
        && key
            .bytes()
            .all(|byte| byte.is_ascii_alphanumeric() || b"._:-".contains(&byte))
}
