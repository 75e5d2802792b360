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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_real_photo_time_and_a_hostile_one() {
        // The real photo session's metadata: 0x0192DD353628 ms.
        let t = from_millis(0x0192_DD35_3628).unwrap();
        assert_eq!(rfc3339(t), "2024-10-30T11:35:05.000Z");
        assert!(from_millis(u64::MAX).is_none());
    }
}
