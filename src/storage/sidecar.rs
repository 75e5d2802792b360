//! The JSON written beside each stored file, and the line appended to the index.

use chrono::{DateTime, SecondsFormat, TimeZone, Utc};
use serde::{Deserialize, Serialize};

use crate::codec::{hex, Metadata};

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Sidecar {
    pub imei: String,
    /// The identifier as requested: `%videof`, or the ADAS path.
    pub file: String,
    /// `video`, `photo` or `adas`.
    pub media: String,
    /// `front`, `rear`, or null for ADAS files.
    pub camera: Option<String>,
    pub size_bytes: u64,
    pub packets: u32,
    /// CRC-16 of the whole file (the last packet's chained CRC), e.g. `0x27CA`.
    pub crc16: String,
    pub crc_errors: u32,
    pub protocol_id: u16,
    pub remote_addr: String,
    pub started_at: String,
    pub completed_at: String,
    /// The packet this connection resumed at, when earlier packets came on an earlier one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resumed_at_packet: Option<u32>,
    pub metadata: Option<MetadataJson>,
    /// File name of the converted mp4, once conversion succeeded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mp4: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub conversion_error: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct MetadataJson {
    pub command_version: Option<u8>,
    pub file_type: Option<u8>,
    /// RFC 3339, UTC.
    pub timestamp: Option<String>,
    pub trigger: Option<u8>,
    pub duration_s: Option<u16>,
    pub frame_rate: Option<u8>,
    pub timezone_minutes: Option<i16>,
    pub latitude: Option<f64>,
    pub longitude: Option<f64>,
    pub trigger_timestamp: Option<String>,
    /// The whole 0x000B payload as received.
    pub raw_hex: String,
}

pub fn rfc3339(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Millis, true)
}

pub fn from_millis(ms: u64) -> Option<DateTime<Utc>> {
    Utc.timestamp_millis_opt(i64::try_from(ms).ok()?).single()
}

impl MetadataJson {
    /// `m` is `Metadata::parse(raw)`, parsed once by the caller.
    pub fn new(raw: &[u8], m: &Metadata) -> MetadataJson {
        let time = |ms: Option<u64>| ms.and_then(from_millis).map(rfc3339);
        MetadataJson {
            command_version: m.command_version,
            file_type: m.file_type,
            timestamp: time(m.timestamp_ms),
            trigger: m.trigger,
            duration_s: m.duration_s,
            frame_rate: m.frame_rate,
            timezone_minutes: m.timezone_minutes,
            latitude: m.latitude,
            longitude: m.longitude,
            trigger_timestamp: time(m.trigger_timestamp_ms),
            raw_hex: hex(raw).replace(' ', ""),
        }
    }
}

/// One line of `downloads.jsonl`: the sidecar plus the path under the output folder.
#[derive(Debug, Serialize, Deserialize)]
pub struct IndexLine {
    pub path: String,
    #[serde(flatten)]
    pub sidecar: Sidecar,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metadata_json_has_every_field_and_utc_time() {
        let m = Metadata {
            command_version: Some(1),
            file_type: Some(0x10),
            timestamp_ms: Some(1_700_000_000_123),
            frame_rate: Some(30),
            ..Default::default()
        };
        let raw = m.encode();
        let j = serde_json::to_value(MetadataJson::new(&raw, &Metadata::parse(&raw))).unwrap();
        assert_eq!(j["timestamp"], "2023-11-14T22:13:20.123Z");
        assert_eq!(j["frame_rate"], 30);
        assert!(j["latitude"].is_null());
        assert!(j["trigger_timestamp"].is_null());
        assert_eq!(j["raw_hex"].as_str().unwrap().len(), 80);
        for key in [
            "command_version",
            "file_type",
            "timestamp",
            "trigger",
            "duration_s",
            "frame_rate",
            "timezone_minutes",
            "latitude",
            "longitude",
            "trigger_timestamp",
            "raw_hex",
        ] {
            assert!(j.get(key).is_some(), "missing {key}");
        }
    }
}
