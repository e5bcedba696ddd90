//! Day-level dates. Peluit never stores or signs a time of day: a `Day` is the finest
//! granularity any structure carries (docs/protocol.md#dates).

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer, de::Error as _};

use crate::{Error, Result};

/// A calendar day in the proleptic Gregorian calendar, written `YYYY-MM-DD`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Day {
    year: u16,
    month: u8,
    day: u8,
}

impl Day {
    /// Builds a day, refusing dates that do not exist.
    pub fn new(year: u16, month: u8, day: u8) -> Result<Self> {
        if !(1..=9999).contains(&year) || !(1..=12).contains(&month) {
            return Err(Error::Malformed("date"));
        }
        if day == 0 || day > days_in_month(year, month) {
            return Err(Error::Malformed("date"));
        }
        Ok(Self { year, month, day })
    }

    /// The day that contains the given number of seconds since the Unix epoch (UTC).
    /// Callers read the clock; this crate never does.
    pub fn from_unix_seconds(seconds: i64) -> Result<Self> {
        let days = seconds.div_euclid(86_400);
        let (y, m, d) = civil_from_days(days);
        let year = u16::try_from(y).map_err(|_| Error::Malformed("date"))?;
        Self::new(year, m, d)
    }

    /// Days since 1970-01-01.
    pub fn days_since_epoch(self) -> i64 {
        days_from_civil(i64::from(self.year), self.month, self.day)
    }

    /// The year.
    pub fn year(self) -> u16 {
        self.year
    }
}

fn is_leap(year: u16) -> bool {
    (year.is_multiple_of(4) && !year.is_multiple_of(100)) || year.is_multiple_of(400)
}

fn days_in_month(year: u16, month: u8) -> u8 {
    match month {
        2 if is_leap(year) => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

// Howard Hinnant's days_from_civil / civil_from_days, which are exact for all years here.
fn days_from_civil(y: i64, m: u8, d: u8) -> i64 {
    let (m, d) = (i64::from(m), i64::from(d));
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

fn civil_from_days(z: i64) -> (i64, u8, u8) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u8;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u8;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

impl fmt::Display for Day {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:04}-{:02}-{:02}", self.year, self.month, self.day)
    }
}

impl FromStr for Day {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self> {
        // Exactly YYYY-MM-DD: no time, no zone, no other separator.
        let b = s.as_bytes();
        if b.len() != 10 || b[4] != b'-' || b[7] != b'-' {
            return Err(Error::Malformed("date"));
        }
        let digits = |r: std::ops::Range<usize>| -> Result<u16> {
            let part = &s[r];
            if !part.bytes().all(|c| c.is_ascii_digit()) {
                return Err(Error::Malformed("date"));
            }
            part.parse().map_err(|_| Error::Malformed("date"))
        };
        let (y, m, d) = (digits(0..4)?, digits(5..7)?, digits(8..10)?);
        Self::new(y, m as u8, d as u8)
    }
}

impl Serialize for Day {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Day {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        text.parse().map_err(D::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_prints_days() {
        let day: Day = "2026-02-28".parse().unwrap();
        assert_eq!(day.to_string(), "2026-02-28");
        assert!("2026-02-29".parse::<Day>().is_err());
        assert!("2024-02-29".parse::<Day>().is_ok());
        for bad in [
            "2026-1-01",
            "2026-13-01",
            "2026-00-10",
            "2026-01-32",
            "2026-01-01T00",
            "+026-01-01",
        ] {
            assert!(bad.parse::<Day>().is_err(), "{bad}");
        }
    }

    #[test]
    fn unix_seconds_map_to_utc_days() {
        assert_eq!(Day::from_unix_seconds(0).unwrap().to_string(), "1970-01-01");
        assert_eq!(
            Day::from_unix_seconds(1_795_000_000).unwrap().to_string(),
            "2026-11-18"
        );
        let day: Day = "2026-11-28".parse().unwrap();
        assert_eq!(
            Day::from_unix_seconds(day.days_since_epoch() * 86_400).unwrap(),
            day
        );
    }
}
