//! Formats as value sets. A Rust reader parses what a known format names (`DateTime<Utc>`,
//! `Uuid`, `i32`), so a format asserts: a string that is not a date-time is not a valid
//! `date-time` field, and `int32` holds only 32-bit integers. Unknown formats cannot be
//! decided, and every answer that depends on one says so.
//!
//! Hand-written checkers: a handful of small grammars, matching what the `jsonschema`
//! crate's format validation accepts on the values the engine proposes (its tests check).

use std::net::{Ipv4Addr, Ipv6Addr};

#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Format {
    DateTime,
    Date,
    Time,
    Duration,
    Uuid,
    Email,
    Uri,
    Ipv4,
    Ipv6,
    Hostname,
    /// A numeric format: the integers or numbers of a machine type.
    Numeric(NumericFormat),
    Unknown(String),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum NumericFormat {
    Int8,
    Int16,
    Int32,
    Int64,
    Int128,
    Uint8,
    Uint16,
    Uint32,
    Uint64,
    Uint128,
    Float,
    Double,
}

impl NumericFormat {
    /// Inclusive range, and whether only integers belong.
    pub fn range(self) -> (f64, f64, bool) {
        match self {
            NumericFormat::Int8 => (i8::MIN as f64, i8::MAX as f64, true),
            NumericFormat::Int16 => (i16::MIN as f64, i16::MAX as f64, true),
            NumericFormat::Int32 => (i32::MIN as f64, i32::MAX as f64, true),
            NumericFormat::Int64 => (i64::MIN as f64, i64::MAX as f64, true),
            NumericFormat::Int128 => (i128::MIN as f64, i128::MAX as f64, true),
            NumericFormat::Uint8 => (0.0, u8::MAX as f64, true),
            NumericFormat::Uint16 => (0.0, u16::MAX as f64, true),
            NumericFormat::Uint32 => (0.0, u32::MAX as f64, true),
            NumericFormat::Uint64 => (0.0, u64::MAX as f64, true),
            NumericFormat::Uint128 => (0.0, u128::MAX as f64, true),
            NumericFormat::Float => (f32::MIN as f64, f32::MAX as f64, false),
            NumericFormat::Double => (f64::MIN, f64::MAX, false),
        }
    }
}

impl Format {
    pub fn parse(name: &str) -> Format {
        use NumericFormat::*;
        match name {
            "date-time" => Format::DateTime,
            "date" => Format::Date,
            "time" => Format::Time,
            "duration" => Format::Duration,
            "uuid" => Format::Uuid,
            "email" => Format::Email,
            "uri" => Format::Uri,
            "ipv4" => Format::Ipv4,
            "ipv6" => Format::Ipv6,
            "hostname" => Format::Hostname,
            "int8" => Format::Numeric(Int8),
            "int16" => Format::Numeric(Int16),
            "int32" => Format::Numeric(Int32),
            "int64" | "int" => Format::Numeric(Int64),
            "int128" => Format::Numeric(Int128),
            "uint8" => Format::Numeric(Uint8),
            "uint16" => Format::Numeric(Uint16),
            "uint32" => Format::Numeric(Uint32),
            "uint64" | "uint" => Format::Numeric(Uint64),
            "uint128" => Format::Numeric(Uint128),
            "float" => Format::Numeric(Float),
            "double" => Format::Numeric(Double),
            other => Format::Unknown(other.to_owned()),
        }
    }

    pub fn name(&self) -> String {
        match self {
            Format::Unknown(name) => name.clone(),
            Format::Numeric(numeric) => format!("{numeric:?}").to_lowercase(),
            other => match other {
                Format::DateTime => "date-time",
                Format::Date => "date",
                Format::Time => "time",
                Format::Duration => "duration",
                Format::Uuid => "uuid",
                Format::Email => "email",
                Format::Uri => "uri",
                Format::Ipv4 => "ipv4",
                Format::Ipv6 => "ipv6",
                _ => "hostname",
            }
            .to_owned(),
        }
    }

    /// Whether `text` is in this string format; `None` for unknown formats.
    pub fn check(&self, text: &str) -> Option<bool> {
        Some(match self {
            Format::DateTime => date_time(text),
            Format::Date => date(text),
            Format::Time => time(text),
            Format::Duration => duration(text),
            Format::Uuid => uuid(text),
            Format::Email => email(text),
            Format::Uri => uri(text),
            Format::Ipv4 => ipv4(text),
            Format::Ipv6 => !text.contains('%') && text.parse::<Ipv6Addr>().is_ok(),
            Format::Hostname => hostname(text),
            Format::Numeric(_) => true,
            Format::Unknown(_) => return None,
        })
    }

    /// Values of the format, for witnesses.
    pub fn samples(&self) -> &'static [&'static str] {
        match self {
            Format::DateTime => &[
                "2024-01-01T00:00:00Z",
                "1999-12-31T23:59:59+01:00",
                "2024-02-29T12:30:00.5Z",
            ],
            Format::Date => &["2024-01-01", "1999-12-31"],
            Format::Time => &["00:00:00Z", "23:59:59+01:00"],
            Format::Duration => &["P1D", "PT1H", "P1Y2M"],
            Format::Uuid => &[
                "00000000-0000-0000-0000-000000000000",
                "123e4567-e89b-12d3-a456-426614174000",
            ],
            Format::Email => &["a@example.com", "first.last@example.org"],
            Format::Uri => &["https://example.com/", "urn:isbn:0451450523", "a:b"],
            Format::Ipv4 => &["127.0.0.1", "10.0.0.255"],
            Format::Ipv6 => &["::1", "2001:db8::8a2e:370:7334"],
            Format::Hostname => &["example.com", "a", "a-b.c"],
            Format::Numeric(_) | Format::Unknown(_) => &[],
        }
    }

    /// The shortest and longest value, where the format fixes them.
    pub fn lengths(&self) -> (u64, Option<u64>) {
        match self {
            Format::Uuid => (36, Some(36)),
            Format::Date => (10, Some(10)),
            Format::DateTime => (20, None),
            Format::Time => (9, None),
            Format::Ipv4 => (7, Some(15)),
            Format::Ipv6 => (2, Some(45)),
            Format::Duration => (3, None),
            Format::Email => (3, None),
            Format::Uri => (2, None),
            Format::Hostname => (1, Some(253)),
            Format::Numeric(_) | Format::Unknown(_) => (0, None),
        }
    }

    /// Whether no string is in both formats.
    pub fn disjoint(&self, other: &Format) -> bool {
        use Format::*;
        if self == other {
            return false;
        }
        let structured = |f: &Format| {
            matches!(
                f,
                DateTime | Date | Time | Duration | Uuid | Ipv4 | Ipv6 | Email
            )
        };
        let pair = |a: &Format, b: &Format| match (a, b) {
            (Uri, b) => matches!(b, DateTime | Date | Time | Duration | Uuid | Ipv4),
            (Hostname, b) => matches!(b, DateTime | Time | Email | Uri | Ipv6),
            (a, b) => structured(a) && structured(b),
        };
        pair(self, other) || pair(other, self)
    }
}

fn digits(text: &str) -> bool {
    !text.is_empty() && text.bytes().all(|b| b.is_ascii_digit())
}

fn date(text: &str) -> bool {
    text.len() == 10
        && text.as_bytes()[4] == b'-'
        && text.as_bytes()[7] == b'-'
        && chrono::NaiveDate::parse_from_str(text, "%Y-%m-%d").is_ok()
        && digits(&text[..4])
}

fn time(text: &str) -> bool {
    date_time(&format!("1970-01-01T{text}"))
}

fn date_time(text: &str) -> bool {
    let bytes = text.as_bytes();
    bytes.len() >= 20
        && date(&text[..10])
        && matches!(bytes[10], b'T' | b't')
        && partial_time_and_offset(&text[11..])
}

/// `hh:mm:ss[.frac](Z|±hh:mm)` with the ranges of RFC 3339 (a leap second is allowed).
fn partial_time_and_offset(text: &str) -> bool {
    let bytes = text.as_bytes();
    if bytes.len() < 9 || bytes[2] != b':' || bytes[5] != b':' {
        return false;
    }
    let number = |range: std::ops::Range<usize>| {
        text.get(range)
            .filter(|t| digits(t))
            .and_then(|t| t.parse::<u32>().ok())
    };
    let (Some(hour), Some(minute), Some(second)) = (number(0..2), number(3..5), number(6..8))
    else {
        return false;
    };
    if hour > 23 || minute > 59 || second > 60 {
        return false;
    }
    let mut rest = &text[8..];
    if let Some(fraction) = rest.strip_prefix('.') {
        let end = fraction
            .find(|c: char| !c.is_ascii_digit())
            .unwrap_or(fraction.len());
        if end == 0 {
            return false;
        }
        rest = &fraction[end..];
    }
    match rest.as_bytes() {
        [b'Z' | b'z'] => second < 60 || (hour == 23 && minute == 59),
        [b'+' | b'-', ..] if rest.len() == 6 && rest.as_bytes()[3] == b':' => {
            let (Some(h), Some(m)) = (
                rest.get(1..3)
                    .filter(|t| digits(t))
                    .and_then(|t| t.parse::<u32>().ok()),
                rest.get(4..6)
                    .filter(|t| digits(t))
                    .and_then(|t| t.parse::<u32>().ok()),
            ) else {
                return false;
            };
            h <= 23 && m <= 59 && second < 60
        }
        _ => false,
    }
}

fn duration(text: &str) -> bool {
    let Some(body) = text.strip_prefix('P') else {
        return false;
    };
    if body.is_empty() {
        return false;
    }
    if let Some(weeks) = body.strip_suffix('W') {
        return digits(weeks);
    }
    let (date_part, time_part) = match body.split_once('T') {
        Some((date, time)) => {
            if time.is_empty() {
                return false;
            }
            (date, Some(time))
        }
        None => (body, None),
    };
    let units = |part: &str, order: &[char]| -> bool {
        let mut next = 0;
        let mut number = String::new();
        for c in part.chars() {
            if c.is_ascii_digit() {
                number.push(c);
                continue;
            }
            let Some(at) = order[next..].iter().position(|u| *u == c) else {
                return false;
            };
            if number.is_empty() {
                return false;
            }
            number.clear();
            next += at + 1;
        }
        number.is_empty()
    };
    units(date_part, &['Y', 'M', 'D']) && time_part.is_none_or(|time| units(time, &['H', 'M', 'S']))
}

fn uuid(text: &str) -> bool {
    let bytes = text.as_bytes();
    bytes.len() == 36
        && bytes.iter().enumerate().all(|(index, byte)| match index {
            8 | 13 | 18 | 23 => *byte == b'-',
            _ => byte.is_ascii_hexdigit(),
        })
}

fn email(text: &str) -> bool {
    let Some((local, domain)) = text.rsplit_once('@') else {
        return false;
    };
    let atext = |c: char| c.is_ascii_alphanumeric() || "!#$%&'*+-/=?^_`{|}~".contains(c);
    !local.is_empty()
        && local.len() <= 64
        && local
            .split('.')
            .all(|atom| !atom.is_empty() && atom.chars().all(atext))
        && (hostname(domain) || (domain.starts_with('[') && domain.ends_with(']')))
}

/// An RFC 3986 scheme: a letter, then letters, digits, `+`, `-` or `.`.
pub fn is_scheme(scheme: &str) -> bool {
    scheme
        .chars()
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic())
        && scheme
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "+-.".contains(c))
}

fn uri(text: &str) -> bool {
    let Some((scheme, rest)) = text.split_once(':') else {
        return false;
    };
    is_scheme(scheme)
        && !rest
            .chars()
            .any(|c| c.is_whitespace() || c.is_control() || "<>\"{}|\\^`".contains(c))
}

fn ipv4(text: &str) -> bool {
    text.parse::<Ipv4Addr>().is_ok()
        && text
            .split('.')
            .all(|octet| octet == "0" || !octet.starts_with('0'))
}

fn hostname(text: &str) -> bool {
    let text = text.strip_suffix('.').unwrap_or(text);
    !text.is_empty()
        && text.len() <= 253
        && text.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && !label.starts_with('-')
                && !label.ends_with('-')
                && label.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
        })
}

#[cfg(test)]
mod tests {
    use super::Format;

    #[test]
    fn samples_belong_to_their_format_and_not_to_disjoint_ones() {
        let known = [
            "date-time",
            "date",
            "time",
            "duration",
            "uuid",
            "email",
            "uri",
            "ipv4",
            "ipv6",
            "hostname",
        ];
        for name in known {
            let format = Format::parse(name);
            for sample in format.samples() {
                assert_eq!(format.check(sample), Some(true), "{name}: {sample}");
                let (shortest, longest) = format.lengths();
                let length = sample.chars().count() as u64;
                assert!(
                    length >= shortest && longest.is_none_or(|l| length <= l),
                    "{name}: {sample}"
                );
                for other in known.map(Format::parse) {
                    if format.disjoint(&other) {
                        assert_eq!(
                            other.check(sample),
                            Some(false),
                            "{name} and {other:?}: {sample}"
                        );
                    }
                }
            }
            assert_eq!(format.check(""), Some(false), "{name}");
        }
        assert_eq!(Format::parse("x-custom").check("a"), None);
    }
}
