//! The wall clock. Only the runtime reads it (for `ingested_at`, `requested_at`, leases and
//! windows): ops-core gives packs no clock, so a handler, projection or reaction is a pure
//! function of its inputs and a replay gives the same result.

use std::time::{SystemTime, UNIX_EPOCH};

use ops_core::time::Timestamp;

/// `Timestamp::now()`, for the runtime and the host: `use ops_core_runtime::clock::WallClock;`.
pub trait WallClock {
    fn now() -> Self;
}

impl WallClock for Timestamp {
    fn now() -> Self {
        let micros = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |since| since.as_micros());
        Timestamp::from_unix_micros(i64::try_from(micros).unwrap_or(i64::MAX))
            .expect("the wall clock is within the representable range")
    }
}

/// A duration in microseconds, as the times it is added to or taken from; one too long to
/// represent is the longest there is, never a wrapped (negative or short) one. Arithmetic on
/// times saturates with it, so an overflow never means "no hold" or "deadline passed".
pub fn micros(duration: std::time::Duration) -> i64 {
    i64::try_from(duration.as_micros()).unwrap_or(i64::MAX)
}
