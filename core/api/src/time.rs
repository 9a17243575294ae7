//! Timestamps are UTC with exactly microsecond precision, so their text form (which feeds
//! event ids) is one string per instant: `2026-11-26T06:01:51.123456Z`.

use std::fmt;
use std::str::FromStr;

use chrono::{DateTime, SecondsFormat, SubsecRound, Utc};

#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Timestamp(DateTime<Utc>);

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("`{input}` is not an RFC 3339 timestamp: {reason}")]
pub struct TimestampError {
    input: String,
    reason: String,
}

impl Timestamp {
    /// Normalises to UTC and truncates below the microsecond.
    pub fn from_datetime(at: DateTime<Utc>) -> Self {
        Timestamp(at.trunc_subsecs(6))
    }

    pub fn from_unix_micros(micros: i64) -> Option<Self> {
        DateTime::from_timestamp_micros(micros).map(Timestamp)
    }

    pub fn unix_micros(&self) -> i64 {
        self.0.timestamp_micros()
    }

    pub fn as_datetime(&self) -> DateTime<Utc> {
        self.0
    }

    /// The UTC day it falls on, counted from the Unix epoch: what daily limits reset on.
    pub fn day(&self) -> i64 {
        day_of_micros(self.unix_micros())
    }

    /// `by` later; `None` past the end of the representable range.
    pub fn plus(&self, by: std::time::Duration) -> Option<Self> {
        let micros = i64::try_from(by.as_micros()).ok()?;
        Timestamp::from_unix_micros(self.unix_micros().checked_add(micros)?)
    }

    /// `by` earlier; `None` before the start of the representable range.
    pub fn minus(&self, by: std::time::Duration) -> Option<Self> {
        let micros = i64::try_from(by.as_micros()).ok()?;
        Timestamp::from_unix_micros(self.unix_micros().checked_sub(micros)?)
    }
}

/// The UTC day of a time given in microseconds since the epoch, as [`Timestamp::day`].
pub fn day_of_micros(micros: i64) -> i64 {
    micros.div_euclid(86_400_000_000)
}

/// A day, for windows and retention periods.
pub const DAY: std::time::Duration = std::time::Duration::from_secs(86_400);

impl Timestamp {
    /// The text form written into a fixed buffer, without formatting machinery or an
    /// allocation: an event id hashes it, and chrono's RFC 3339 writer cost a fifth of an
    /// id. `None` for a year outside 0000–9999 or a leap second, which chrono writes.
    pub(crate) fn fixed_text(&self) -> Option<[u8; 27]> {
        use chrono::{Datelike, Timelike};
        // Each of a `DateTime`'s own accessors converts it to local time first.
        let time = self.0.naive_utc();
        let (year, nanos) = (time.year(), time.nanosecond());
        let year = u32::try_from(year).ok().filter(|year| *year <= 9999)?;
        if nanos >= 1_000_000_000 {
            return None;
        }
        let mut text = *b"0000-00-00T00:00:00.000000Z";
        let fields = [
            (0, 4, year),
            (5, 2, time.month()),
            (8, 2, time.day()),
            (11, 2, time.hour()),
            (14, 2, time.minute()),
            (17, 2, time.second()),
            (20, 6, nanos / 1_000),
        ];
        for (at, width, mut value) in fields {
            for digit in text[at..at + width].iter_mut().rev() {
                *digit = b'0' + (value % 10) as u8;
                value /= 10;
            }
        }
        Some(text)
    }
}

impl fmt::Display for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.fixed_text() {
            Some(text) => f.write_str(std::str::from_utf8(&text).expect("ASCII digits")),
            None => f.write_str(&self.0.to_rfc3339_opts(SecondsFormat::Micros, true)),
        }
    }
}

impl fmt::Debug for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

impl FromStr for Timestamp {
    type Err = TimestampError;

    fn from_str(input: &str) -> Result<Self, TimestampError> {
        DateTime::parse_from_rfc3339(input)
            .map(|at| Timestamp::from_datetime(at.with_timezone(&Utc)))
            .map_err(|error| TimestampError {
                input: input.to_owned(),
                reason: error.to_string(),
            })
    }
}

impl serde::Serialize for Timestamp {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        // One string, where `collect_str` goes through `fmt` and escapes piece by piece.
        match self.fixed_text() {
            Some(text) => {
                serializer.serialize_str(std::str::from_utf8(&text).expect("ASCII digits"))
            }
            None => serializer.collect_str(self),
        }
    }
}

impl<'de> serde::Deserialize<'de> for Timestamp {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = <std::borrow::Cow<'de, str>>::deserialize(deserializer)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

impl schemars::JsonSchema for Timestamp {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "Timestamp".into()
    }

    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        schemars::json_schema!({ "type": "string", "format": "date-time" })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn offsets_and_precision_normalise_to_one_text() {
        let forms = [
            "2026-11-26T08:01:51.1234567+02:00",
            "2026-11-26T06:01:51.123456Z",
            "2026-11-26T06:01:51.123456999z",
        ];
        for form in forms {
            let at: Timestamp = form.parse().unwrap();
            assert_eq!(at.to_string(), "2026-11-26T06:01:51.123456Z", "{form}");
        }
        let whole: Timestamp = "2026-11-26T06:01:51Z".parse().unwrap();
        assert_eq!(whole.to_string(), "2026-11-26T06:01:51.000000Z");
    }

    proptest::proptest! {
        /// The fixed writer says what chrono's RFC 3339 writer says, over the years it
        /// writes and past them, where chrono writes.
        #[test]
        fn the_fixed_text_is_chronos_rfc_3339(micros in -70_000_000_000_000_000i64..300_000_000_000_000_000) {
            if let Some(at) = Timestamp::from_unix_micros(micros) {
                proptest::prop_assert_eq!(
                    at.to_string(),
                    at.0.to_rfc3339_opts(SecondsFormat::Micros, true)
                );
            }
        }
    }

    #[test]
    fn bad_timestamps_name_the_input() {
        let error = "yesterday".parse::<Timestamp>().unwrap_err();
        assert!(
            error
                .to_string()
                .starts_with("`yesterday` is not an RFC 3339 timestamp")
        );
    }
}
