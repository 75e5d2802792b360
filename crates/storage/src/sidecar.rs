//! The JSON written beside each stored file, and the line appended to the index.

use serde::{Deserialize, Serialize};

use dashcam_protocol::codec::{hex, names, Family, Metadata, MetadataFormat};
use dashcam_protocol::session::{Convention, Flow};
use dashcam_protocol::{Camera, Media, Unit};

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Sidecar {
    pub imei: String,
    /// The identifier as requested: `%videof`, or the device's path.
    pub file: String,
    pub family: Family,
    pub flow: Flow,
    pub media: Media,
    /// None when the device's words do not say.
    pub camera: Option<Camera>,
    pub size_bytes: u64,
    /// What START counted, and its value.
    pub unit: Unit,
    pub start_total: u32,
    /// START's 2-byte field when not 0 (`"0x27CA"`): documented until 2021 as
    /// the file's CRC; devices seen send 0, and then the key is left out.
    #[serde(default, skip_serializing_if = "Option::is_none", with = "opt_crc_hex")]
    pub start_field: Option<u16>,
    /// DATA frames that carried the file on this connection.
    pub data_frames: u32,
    /// The server's own CRC-16 of the whole stored file from 0: `"0x27CA"` on disk.
    #[serde(with = "crc_hex")]
    pub crc16: u16,
    /// SHA-256 of the whole stored file: lowercase hex on disk.
    pub sha256: Sha256Digest,
    pub crc_errors: u32,
    /// How the camera chains its CRC after a SYNC, or None (not seen).
    pub crc_convention: Option<Convention>,
    pub protocol_id: u16,
    pub remote_addr: String,
    pub started_at: String,
    pub completed_at: String,
    /// Byte offset this connection resumed at, when earlier bytes came on an earlier one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resumed_from_byte: Option<u64>,
    pub metadata: Option<MetadataJson>,
    /// What is inside the file, sniffed by its first bytes (the camera's
    /// container: size, frame rate, frames, duration, sound).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub media_info: Option<crate::MediaInfo>,
    /// File name of the converted mp4, once conversion succeeded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mp4: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub conversion_error: Option<String>,
    /// On an index line: this download was the same file as the one at this
    /// path (same identifier, size and SHA-256), and was not stored again.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub duplicate_of: Option<String>,
    /// Local copies removed on purpose (`--keep-days`, `--s3-delete-local`):
    /// the file is still known (a camera that offers it again is told it is
    /// stored, not stored twice), only not kept here.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub removed_locally: Vec<LocalRemoval>,
    /// With S3 on: the media's object (and the mp4's), once the store
    /// confirmed it. A camera that sends the file again does not make it go
    /// up again, and `--keep-days` removes only what is uploaded.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub uploaded: Vec<Uploaded>,
}

impl Sidecar {
    /// The store confirmed this file (the media or its mp4, by name).
    pub fn is_uploaded(&self, name: &str) -> bool {
        self.uploaded.iter().any(|u| u.file == name)
    }

    /// This file's local copy (the media or its mp4, by name) was removed on
    /// purpose.
    pub fn is_removed_locally(&self, name: &str) -> bool {
        self.removed_locally.iter().any(|r| r.file == name)
    }
}

/// Where a stored file's media (or mp4) went, and when the store confirmed it.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Uploaded {
    /// The local file's name in the camera's folder.
    pub file: String,
    pub bucket: String,
    pub key: String,
    pub at: String,
    /// The object's size, as the store confirmed it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub size: Option<u64>,
    /// The ETag the bytes sent give (an MD5, or S3's MD5 of the parts' MD5s
    /// with `-N`), which the store echoed: a later `HEAD` must show it
    /// (or the checksum) before the local copy goes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub etag: Option<String>,
    /// The object's `x-amz-checksum-sha256` (base64), when the store keeps it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub checksum_sha256: Option<String>,
}

/// One local copy removed on purpose.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct LocalRemoval {
    /// The removed file's name in the camera's folder (the media or its mp4).
    pub file: String,
    pub at: String,
    /// `keep-days` or `uploaded`.
    pub why: String,
}

/// A SHA-256, written as 64 lowercase hex digits.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct Sha256Digest(pub [u8; 32]);

impl Sha256Digest {
    pub fn hex(&self) -> String {
        let mut s = String::with_capacity(64);
        self.write_hex(&mut s);
        s
    }

    /// [`Sha256Digest::hex`] into a string the caller keeps (cleared first):
    /// no allocation once it has room.
    pub fn write_hex(&self, out: &mut String) {
        use std::fmt::Write;
        out.clear();
        for b in self.0 {
            let _ = write!(out, "{b:02x}");
        }
    }

    /// The first 16 hex digits, for log lines.
    pub fn short(&self) -> String {
        self.hex()[..16].to_string()
    }

    pub fn parse(text: &str) -> Option<Sha256Digest> {
        let t = text.as_bytes();
        if t.len() != 64 {
            return None;
        }
        let mut out = [0u8; 32];
        for (i, pair) in t.chunks(2).enumerate() {
            let s = std::str::from_utf8(pair).ok()?;
            out[i] = u8::from_str_radix(s, 16).ok()?;
        }
        Some(Sha256Digest(out))
    }
}

impl std::fmt::Debug for Sha256Digest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.hex())
    }
}

impl Serialize for Sha256Digest {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.hex())
    }
}

impl<'de> Deserialize<'de> for Sha256Digest {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        Sha256Digest::parse(&text)
            .ok_or_else(|| serde::de::Error::custom("sha256: not 64 hex digits"))
    }
}

/// [`crc_hex`] for an optional value.
mod opt_crc_hex {
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(v: &Option<u16>, s: S) -> Result<S::Ok, S::Error> {
        match v {
            Some(crc) => super::crc_hex::serialize(crc, s),
            None => s.serialize_none(),
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<u16>, D::Error> {
        #[derive(Deserialize)]
        struct Hex(#[serde(with = "super::crc_hex")] u16);
        Ok(Option::<Hex>::deserialize(d)?.map(|h| h.0))
    }
}

/// `0x27CA` on disk, a u16 in memory.
mod crc_hex {
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(crc: &u16, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&format!("0x{crc:04X}"))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<u16, D::Error> {
        let text = String::deserialize(d)?;
        let digits = text
            .strip_prefix("0x")
            .or_else(|| text.strip_prefix("0X"))
            .unwrap_or(&text);
        u16::from_str_radix(digits, 16)
            .map_err(|_| serde::de::Error::custom(format!("crc16: {text:?} is not 0xHHHH")))
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct MetadataJson {
    /// `dualcam-binary`, `adas-binary`, `dsm-binary` or `json`.
    pub format: String,
    pub command_version: Option<u8>,
    pub file_type: Option<u8>,
    pub file_type_name: Option<String>,
    /// RFC 3339, UTC.
    pub timestamp: Option<String>,
    pub trigger: Option<u8>,
    pub trigger_name: Option<String>,
    pub duration_s: Option<u32>,
    pub frame_rate: Option<u8>,
    pub timezone_minutes: Option<i16>,
    /// Degrees.
    pub latitude: Option<f64>,
    pub longitude: Option<f64>,
    pub trigger_timestamp: Option<String>,
    /// DSM event names.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub events: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub driver_name: Option<String>,
    /// The whole JSON object (protocol >= 6).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub json: Option<serde_json::Value>,
    /// The whole 0x000B payload as received (binary layouts), hex.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub raw_hex: Option<String>,
}

pub use dashcam_protocol::time::{from_millis, rfc3339};

impl MetadataJson {
    /// `m` is the payload `raw` parsed for `family`.
    pub fn new(family: Family, raw: &[u8], m: &Metadata) -> MetadataJson {
        let time = |ms: Option<u64>| ms.and_then(from_millis).map(rfc3339);
        MetadataJson {
            format: m.format.name().to_string(),
            command_version: m.command_version,
            file_type: m.file_type,
            file_type_name: m
                .file_type
                .and_then(|t| names::file_type_name(family, t))
                .map(str::to_string),
            timestamp: time(m.timestamp_ms),
            trigger: m.trigger,
            trigger_name: m
                .trigger
                .and_then(|t| names::trigger_name(family, t))
                .map(str::to_string),
            duration_s: m.duration_s,
            frame_rate: m.frame_rate,
            timezone_minutes: m.timezone_minutes,
            latitude: m.latitude,
            longitude: m.longitude,
            trigger_timestamp: time(m.trigger_timestamp_ms),
            events: m.events.clone(),
            driver_name: m.driver_name.clone(),
            json: m.json.clone(),
            raw_hex: match (m.format, &m.json) {
                (MetadataFormat::Json, Some(_)) => None,
                _ => Some(hex(raw).replace(' ', "")),
            },
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
    use dashcam_protocol::codec::metadata::{
        encode, parse_adas, parse_dsm, parse_dualcam, parse_json,
    };

    #[test]
    fn dualcam_metadata_json_has_every_field_and_names() {
        let raw = encode::dualcam(0x10, 1_700_000_000_123, 3, 10, 30, 120, 54.7004183, 25.28);
        let j = serde_json::to_value(MetadataJson::new(
            Family::DualCam,
            &raw,
            &parse_dualcam(&raw),
        ))
        .unwrap();
        assert_eq!(j["timestamp"], "2023-11-14T22:13:20.123Z");
        assert_eq!(j["trigger_name"], "crash");
        assert_eq!(j["file_type_name"], "front video");
        assert_eq!(j["frame_rate"], 30);
        assert_eq!(j["raw_hex"].as_str().unwrap().len(), 80);
        for key in [
            "format",
            "command_version",
            "file_type",
            "file_type_name",
            "timestamp",
            "trigger",
            "trigger_name",
            "duration_s",
            "frame_rate",
            "timezone_minutes",
            "latitude",
            "longitude",
            "trigger_timestamp",
        ] {
            assert!(j.get(key).is_some(), "missing {key}");
        }
    }

    #[test]
    fn adas_dsm_and_json_metadata_in_the_sidecar() {
        let raw = encode::adas(1_704_067_200, 1, 5, 54.700418, -25.2797, 0);
        let j =
            serde_json::to_value(MetadataJson::new(Family::Adas, &raw, &parse_adas(&raw))).unwrap();
        assert_eq!(
            (j["trigger_name"].as_str(), j["file_type_name"].as_str()),
            (Some("crash"), Some("snapshot"))
        );
        assert_eq!(j["latitude"], 54.700418);
        assert_eq!(j["longitude"], -25.2797);
        assert_eq!(j["timestamp"], "2024-01-01T00:00:00.000Z");
        let raw = encode::dsm(1_704_067_200, 0, 13, 1.0, 2.0, 0b11, "JONAS");
        let j =
            serde_json::to_value(MetadataJson::new(Family::Dsm, &raw, &parse_dsm(&raw))).unwrap();
        assert_eq!(
            j["events"],
            serde_json::json!(["drowsiness", "distraction"])
        );
        assert_eq!(j["driver_name"], "JONAS");
        assert_eq!(j["trigger_name"], "DSM event");
        let text =
            br#"{"file":{"file_timestamp":1704067200,"file_type":0},"fm_trigger":{"type":9}}"#;
        let j =
            serde_json::to_value(MetadataJson::new(Family::Adas, text, &parse_json(text))).unwrap();
        assert_eq!(j["format"], "json");
        assert_eq!(j["trigger_name"], "unplug");
        assert_eq!(j["json"]["fm_trigger"]["type"], 9);
        assert!(j.get("raw_hex").is_none());
    }
}
