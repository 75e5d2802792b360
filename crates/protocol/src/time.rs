//! Times as the protocol carries them (milliseconds since the epoch) and as
//! people read them (RFC 3339, UTC). Formatting only: nothing here reads a clock.

use chrono::{DateTime, SecondsFormat, TimeZone, Utc};

pub fn rfc3339(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Millis, true)
}

/// None for a time chrono cannot hold (a hostile or broken clock).
pub fn from_millis(ms: u64) -> Option<DateTime<Utc>> {
    Utc.timestamp_millis_opt(i64::try_from(ms).ok()?).single()
}

/// How a file's capture time (the camera's clock, from its metadata)
/// stands against the moment the server received it (the server's clock).
/// A capture in the past is no clock error: cameras queue files while out
/// of coverage and send them later.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Capture {
    /// Captured this long before it was received.
    Before(chrono::Duration),
    /// A capture time after the file was received (beyond a minute): the
    /// camera's clock is ahead by about this much.
    Ahead(chrono::Duration),
    /// Before 2016: the camera's clock was never set (a reset to its epoch).
    NotSet,
}

/// A minute of slack: the clocks' own drift and the time to send a file.
const SLACK_SECS: i64 = 60;

pub fn judge_capture(captured: DateTime<Utc>, received: DateTime<Utc>) -> Capture {
    if captured.timestamp() < 1_451_606_400 {
        // 2016-01-01T00:00:00Z
        return Capture::NotSet;
    }
    let ahead = captured - received;
    if ahead.num_seconds() > SLACK_SECS {
        Capture::Ahead(ahead)
    } else {
        Capture::Before((received - captured).max(chrono::Duration::zero()))
    }
}

/// A span as people say it: "40 s", "15 min", "3.5 h", "12 days", "17.0 years".
pub fn span(d: chrono::Duration) -> String {
    let s = d.num_seconds().abs();
    match s {
        0..=89 => format!("{s} s"),
        90..=5_399 => format!("{} min", (s + 30) / 60),
        5_400..=172_799 => format!("{:.1} h", s as f64 / 3600.0),
        172_800..=63_071_999 => format!("{} days", (s + 43_200) / 86_400),
        _ => format!("{:.1} years", s as f64 / (365.25 * 86_400.0)),
    }
}

/// One line for the server's log when a camera's clock is more than a day
/// ahead or never set (None otherwise).
pub fn clock_warning(captured: DateTime<Utc>, received: DateTime<Utc>) -> Option<String> {
    let at = captured.format("%Y-%m-%d %H:%M:%S UTC");
    match judge_capture(captured, received) {
        Capture::Ahead(d) if d.num_hours() >= 24 => Some(format!(
            "the camera's clock is {} ahead of the server's (its file says {at}): set its \
             time (GPS, or the tracker's time settings); file names use the server's clock",
            span(d)
        )),
        Capture::NotSet => Some(format!(
            "the camera's clock is not set (its file says {at}, {} behind the server's): \
             set its time (GPS, or the tracker's time settings); file names use the \
             server's clock",
            span(received - captured)
        )),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    #[test]
    fn a_capture_in_the_past_is_no_clock_error_one_ahead_is() {
        let rx = at("2026-12-05T04:37:22Z");
        assert_eq!(
            judge_capture(at("2026-12-05T04:22:22Z"), rx),
            Capture::Before(chrono::Duration::minutes(15))
        );
        assert_eq!(span(chrono::Duration::minutes(15)), "15 min");
        // A year old, received a year ago: sound.
        assert!(matches!(
            judge_capture(at("2025-12-05T04:22:22Z"), rx),
            Capture::Before(_)
        ));
        assert_eq!(clock_warning(at("2025-12-05T04:22:22Z"), rx), None);
        // 30 s ahead: drift, not an error; 2 min ahead is the clock ahead.
        assert!(matches!(
            judge_capture(at("2026-12-05T04:37:52Z"), rx),
            Capture::Before(_)
        ));
        assert_eq!(
            judge_capture(at("2026-12-05T04:39:22Z"), rx),
            Capture::Ahead(chrono::Duration::minutes(2))
        );
        assert_eq!(
            clock_warning(at("2026-12-05T10:37:22Z"), rx),
            None,
            "6 h: no line"
        );
        // The real device's 2043.
        let w = clock_warning(at("2043-05-01T10:00:00Z"), rx).unwrap();
        assert!(
            w.starts_with("the camera's clock is 16.4 years ahead"),
            "{w}"
        );
        assert!(w.contains("2043-05-01 10:00:00 UTC"), "{w}");
        let w = clock_warning(at("2000-01-01T00:00:05Z"), rx).unwrap();
        assert!(w.starts_with("the camera's clock is not set"), "{w}");
        assert_eq!(span(chrono::Duration::hours(50)), "2 days");
        assert_eq!(span(chrono::Duration::seconds(40)), "40 s");
    }

    #[test]
    fn the_real_photo_time_and_a_hostile_one() {
        // The real photo session's metadata: 0x0192DD353628 ms.
        let t = from_millis(0x0192_DD35_3628).unwrap();
        assert_eq!(rfc3339(t), "2024-10-30T11:35:05.000Z");
        assert!(from_millis(u64::MAX).is_none());
    }
}
