//! METADATA (0x000B) payloads, one layout per family (PROTOCOL-NOTES.md):
//!
//! - DualCam, binary: `version u8 | file type u8 | timestamp u64 ms | trigger u8 |
//!   length u16 s | frame rate u8 | time zone i16 min | latitude f64 | longitude f64`
//!   (32 bytes), `+ trigger timestamp u64 ms` (40). Older firmware: 13 or 16 bytes.
//! - ADAS, 15 bytes: `timestamp u32 s | file type u8 | trigger u8 | latitude i32 |
//!   longitude i32 | length u8 s`, coordinates in millionths of a degree.
//! - DSM, 26 bytes: `timestamp u32 s | file type u8 | trigger u8 | latitude i32 |
//!   longitude i32 | events u16 | driver name 10 bytes, reversed`.
//! - Protocol >= 6: JSON.
//!
//! All-ones fields mean "not available". Parsing never fails: what the payload
//! does not hold is `None`.

use super::names::{dsm_event_names, Family};

/// How a METADATA payload was read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MetadataFormat {
    DualCam,
    Adas,
    Dsm,
    Json,
}

impl MetadataFormat {
    pub fn name(self) -> &'static str {
        match self {
            MetadataFormat::DualCam => "dualcam-binary",
            MetadataFormat::Adas => "adas-binary",
            MetadataFormat::Dsm => "dsm-binary",
            MetadataFormat::Json => "json",
        }
    }
}

/// Every field any layout carries; coordinates in degrees, times in ms since the epoch.
#[derive(Debug, Clone, PartialEq)]
pub struct Metadata {
    pub format: MetadataFormat,
    pub command_version: Option<u8>,
    pub file_type: Option<u8>,
    pub timestamp_ms: Option<u64>,
    pub trigger: Option<u8>,
    pub duration_s: Option<u32>,
    pub frame_rate: Option<u8>,
    pub timezone_minutes: Option<i16>,
    pub latitude: Option<f64>,
    pub longitude: Option<f64>,
    pub trigger_timestamp_ms: Option<u64>,
    /// DSM event names.
    pub events: Option<Vec<String>>,
    pub driver_name: Option<String>,
    /// The whole JSON object (protocol >= 6).
    pub json: Option<serde_json::Value>,
    /// Bytes past the documented layout, kept for later firmware.
    pub extra: Vec<u8>,
}

impl Metadata {
    pub fn empty(format: MetadataFormat) -> Metadata {
        Metadata {
            format,
            command_version: None,
            file_type: None,
            timestamp_ms: None,
            trigger: None,
            duration_s: None,
            frame_rate: None,
            timezone_minutes: None,
            latitude: None,
            longitude: None,
            trigger_timestamp_ms: None,
            events: None,
            driver_name: None,
            json: None,
            extra: Vec::new(),
        }
    }

    /// Reads a payload as `family` sends it; JSON when `json` (protocol >= 6) or
    /// when the payload is a JSON object.
    pub fn parse(family: Family, json: bool, p: &[u8]) -> Metadata {
        if json || p.first() == Some(&b'{') {
            return parse_json(p);
        }
        match family {
            Family::DualCam => parse_dualcam(p),
            Family::Adas => parse_adas(p),
            Family::Dsm => parse_dsm(p),
        }
    }

    /// A frame rate usable for conversion (the camera allows 20, 25 or 30).
    pub fn usable_frame_rate(&self) -> Option<u8> {
        self.frame_rate.filter(|&f| (1..=120).contains(&f))
    }
}

fn field<const N: usize>(p: &[u8], at: usize) -> Option<[u8; N]> {
    let bytes: [u8; N] = p.get(at..at + N)?.try_into().ok()?;
    if bytes.iter().all(|&b| b == 0xFF) {
        None
    } else {
        Some(bytes)
    }
}

fn u8_at(p: &[u8], at: usize) -> Option<u8> {
    field::<1>(p, at).map(|b| b[0])
}

fn micro_degrees(p: &[u8], at: usize) -> Option<f64> {
    field::<4>(p, at).map(|b| i32::from_be_bytes(b) as f64 / 1e6)
}

pub fn parse_dualcam(p: &[u8]) -> Metadata {
    let f64_at = |at| {
        field::<8>(p, at)
            .map(f64::from_be_bytes)
            .filter(|v| v.is_finite())
    };
    Metadata {
        command_version: u8_at(p, 0),
        file_type: u8_at(p, 1),
        timestamp_ms: field::<8>(p, 2).map(u64::from_be_bytes),
        trigger: u8_at(p, 10),
        duration_s: field::<2>(p, 11).map(|b| u16::from_be_bytes(b) as u32),
        frame_rate: u8_at(p, 13),
        timezone_minutes: field::<2>(p, 14).map(i16::from_be_bytes),
        latitude: f64_at(16),
        longitude: f64_at(24),
        trigger_timestamp_ms: field::<8>(p, 32).map(u64::from_be_bytes),
        extra: p.get(40..).unwrap_or(&[]).to_vec(),
        ..Metadata::empty(MetadataFormat::DualCam)
    }
}

fn common_adas_dsm(p: &[u8], format: MetadataFormat) -> Metadata {
    Metadata {
        timestamp_ms: field::<4>(p, 0).map(|b| u32::from_be_bytes(b) as u64 * 1000),
        file_type: u8_at(p, 4),
        trigger: u8_at(p, 5),
        latitude: micro_degrees(p, 6),
        longitude: micro_degrees(p, 10),
        ..Metadata::empty(format)
    }
}

pub fn parse_adas(p: &[u8]) -> Metadata {
    Metadata {
        duration_s: u8_at(p, 14).map(u32::from),
        extra: p.get(15..).unwrap_or(&[]).to_vec(),
        ..common_adas_dsm(p, MetadataFormat::Adas)
    }
}

pub fn parse_dsm(p: &[u8]) -> Metadata {
    let name = p.get(16..26).and_then(|raw| {
        if raw.iter().any(|&b| b > 127) {
            return None;
        }
        let s: String = raw
            .iter()
            .rev()
            .map(|&b| b as char)
            .filter(|c| !c.is_ascii_control())
            .collect();
        let s = s.trim().to_string();
        (!s.is_empty()).then_some(s)
    });
    Metadata {
        events: field::<2>(p, 14).map(|b| dsm_event_names(u16::from_be_bytes(b))),
        driver_name: name,
        extra: p.get(26..).unwrap_or(&[]).to_vec(),
        ..common_adas_dsm(p, MetadataFormat::Dsm)
    }
}

/// Finds `key` under an object named `parent` anywhere in `v` (or anywhere at
/// all when `parent` is None): the reference reads keys "wherever they sit".
fn find<'v>(
    v: &'v serde_json::Value,
    parent: Option<&str>,
    key: &str,
) -> Option<&'v serde_json::Value> {
    let obj = v.as_object()?;
    if let Some(p) = parent {
        if let Some(hit) = obj.get(p).and_then(|o| o.get(key)) {
            return Some(hit);
        }
    } else if let Some(hit) = obj.get(key) {
        return Some(hit);
    }
    obj.values().find_map(|child| find(child, parent, key))
}

fn as_u64(v: Option<&serde_json::Value>) -> Option<u64> {
    let v = v?;
    v.as_u64()
        .or_else(|| v.as_f64().filter(|f| *f >= 0.0).map(|f| f as u64))
        .or_else(|| v.as_str().and_then(|s| s.trim().parse().ok()))
}

fn as_f64(v: Option<&serde_json::Value>) -> Option<f64> {
    let v = v?;
    v.as_f64()
        .or_else(|| v.as_str().and_then(|s| s.trim().parse().ok()))
        .filter(|f: &f64| f.is_finite())
}

pub fn parse_json(p: &[u8]) -> Metadata {
    let mut m = Metadata::empty(MetadataFormat::Json);
    let Ok(v) = serde_json::from_slice::<serde_json::Value>(p) else {
        m.extra = p.to_vec();
        return m;
    };
    let small = |x: Option<u64>| x.and_then(|n| u8::try_from(n).ok());
    m.command_version = small(as_u64(find(&v, None, "version")));
    m.file_type = small(as_u64(find(&v, Some("file"), "file_type")));
    m.timestamp_ms = as_u64(find(&v, Some("file"), "file_timestamp")).map(|s| s * 1000);
    m.duration_s = as_u64(find(&v, Some("file"), "duration")).and_then(|d| u32::try_from(d).ok());
    m.frame_rate = small(as_u64(find(&v, Some("file"), "framerate")));
    m.trigger = small(as_u64(find(&v, Some("fm_trigger"), "type")));
    m.latitude = as_f64(find(&v, Some("location"), "latitude"));
    m.longitude = as_f64(find(&v, Some("location"), "longitude"));
    m.events = find(&v, Some("cam_trigger"), "type").map(|e| match e {
        serde_json::Value::Number(_) => {
            dsm_event_names(as_u64(Some(e)).unwrap_or(0).min(u16::MAX as u64) as u16)
        }
        serde_json::Value::String(s) => vec![s.clone()],
        serde_json::Value::Array(a) => a
            .iter()
            .map(|x| x.as_str().map_or_else(|| x.to_string(), str::to_string))
            .collect(),
        other => vec![other.to_string()],
    });
    m.driver_name = find(&v, None, "driver_name")
        .and_then(|n| n.as_str())
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty());
    m.json = Some(v);
    m
}

/// Encoders for the simulator and tests: the same layouts, written back.
pub mod encode {
    /// DualCam, 40 bytes.
    #[allow(clippy::too_many_arguments)]
    pub fn dualcam(
        file_type: u8,
        timestamp_ms: u64,
        trigger: u8,
        duration_s: u16,
        frame_rate: u8,
        timezone_minutes: i16,
        latitude: f64,
        longitude: f64,
    ) -> Vec<u8> {
        let mut v = vec![4, file_type];
        v.extend_from_slice(&timestamp_ms.to_be_bytes());
        v.push(trigger);
        v.extend_from_slice(&duration_s.to_be_bytes());
        v.push(frame_rate);
        v.extend_from_slice(&timezone_minutes.to_be_bytes());
        v.extend_from_slice(&latitude.to_be_bytes());
        v.extend_from_slice(&longitude.to_be_bytes());
        v.extend_from_slice(&timestamp_ms.to_be_bytes());
        v
    }

    fn adas_dsm_head(ts_s: u32, file_type: u8, trigger: u8, lat: f64, lon: f64) -> Vec<u8> {
        let mut v = ts_s.to_be_bytes().to_vec();
        v.push(file_type);
        v.push(trigger);
        v.extend_from_slice(&((lat * 1e6).round() as i32).to_be_bytes());
        v.extend_from_slice(&((lon * 1e6).round() as i32).to_be_bytes());
        v
    }

    /// ADAS, 15 bytes.
    pub fn adas(ts_s: u32, file_type: u8, trigger: u8, lat: f64, lon: f64, len_s: u8) -> Vec<u8> {
        let mut v = adas_dsm_head(ts_s, file_type, trigger, lat, lon);
        v.push(len_s);
        v
    }

    /// DSM, 26 bytes; the driver name is stored reversed.
    pub fn dsm(
        ts_s: u32,
        file_type: u8,
        trigger: u8,
        lat: f64,
        lon: f64,
        events: u16,
        driver: &str,
    ) -> Vec<u8> {
        let mut v = adas_dsm_head(ts_s, file_type, trigger, lat, lon);
        v.extend_from_slice(&events.to_be_bytes());
        let mut name = [0u8; 10];
        for (slot, b) in name.iter_mut().zip(driver.bytes().take(10)) {
            *slot = b;
        }
        name.reverse();
        v.extend_from_slice(&name);
        v
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn full_dualcam() -> Vec<u8> {
        let mut p = vec![1, 0x10];
        p.extend_from_slice(&1_700_000_000_123u64.to_be_bytes());
        p.push(4);
        p.extend_from_slice(&10u16.to_be_bytes());
        p.push(25);
        p.extend_from_slice(&120i16.to_be_bytes());
        p.extend_from_slice(&0x404B59A74E8E028Du64.to_be_bytes());
        p.extend_from_slice(&(-25.5f64).to_be_bytes());
        p.extend_from_slice(&1_700_000_000_000u64.to_be_bytes());
        p
    }

    #[test]
    fn dualcam_every_documented_length() {
        let p = full_dualcam();
        assert_eq!(p.len(), 40);
        let m13 = parse_dualcam(&p[..13]);
        assert_eq!(
            (
                m13.command_version,
                m13.file_type,
                m13.timestamp_ms,
                m13.trigger,
                m13.duration_s
            ),
            (
                Some(1),
                Some(0x10),
                Some(1_700_000_000_123),
                Some(4),
                Some(10)
            )
        );
        assert_eq!(m13.frame_rate, None);
        let m16 = parse_dualcam(&p[..16]);
        assert_eq!(
            (m16.frame_rate, m16.timezone_minutes),
            (Some(25), Some(120))
        );
        let m32 = parse_dualcam(&p[..32]);
        assert!((m32.latitude.unwrap() - 54.7004183).abs() < 1e-7);
        assert_eq!(m32.longitude, Some(-25.5));
        assert_eq!(m32.trigger_timestamp_ms, None);
        let m40 = Metadata::parse(Family::DualCam, false, &p);
        assert_eq!(m40.trigger_timestamp_ms, Some(1_700_000_000_000));
        assert_eq!(m40.format, MetadataFormat::DualCam);
        let enc = encode::dualcam(0x10, 5, 1, 2, 30, -60, 1.5, -2.5);
        let back = parse_dualcam(&enc);
        assert_eq!(
            (back.frame_rate, back.timezone_minutes, back.latitude),
            (Some(30), Some(-60), Some(1.5))
        );
    }

    #[test]
    fn all_ones_is_not_available_and_extra_bytes_are_kept() {
        let mut p = vec![0xFF; 40];
        p[0] = 2;
        p.extend_from_slice(&[0xDE, 0xAD]);
        let m = parse_dualcam(&p);
        assert_eq!(m.command_version, Some(2));
        assert_eq!((m.timestamp_ms, m.latitude), (None, None));
        assert_eq!(m.extra, vec![0xDE, 0xAD]);
        assert_eq!(parse_dualcam(&[]).timestamp_ms, None);
        assert_eq!(parse_adas(&[0xFF; 15]).latitude, None);
    }

    #[test]
    fn adas_15_bytes_in_degrees() {
        // 2024-01-01T00:00:00Z, snapshot, crash, 54.700418 N, 25.279700 E, 0 s.
        let p = [
            0x65, 0x92, 0x00, 0x80, 0x01, 0x05, 0x03, 0x42, 0xA8, 0xE2, 0x01, 0x81, 0xba, 0xD4,
            0x00,
        ];
        let m = Metadata::parse(Family::Adas, false, &p);
        assert_eq!(m.format, MetadataFormat::Adas);
        assert_eq!(m.timestamp_ms, Some(1_704_067_200_000));
        assert_eq!(
            (m.file_type, m.trigger, m.duration_s),
            (Some(1), Some(5), Some(0))
        );
        assert!(
            (m.latitude.unwrap() - 54.700258).abs() < 1e-6,
            "{:?}",
            m.latitude
        );
        assert!(
            (m.longitude.unwrap() - 25.279188).abs() < 1e-6,
            "{:?}",
            m.longitude
        );
        // Southern and western coordinates are negative.
        let w = parse_adas(&encode::adas(1, 0, 0, -33.9, -70.6, 12));
        assert_eq!(
            (w.latitude, w.longitude, w.duration_s),
            (Some(-33.9), Some(-70.6), Some(12))
        );
    }

    #[test]
    fn dsm_26_bytes_events_and_reversed_name() {
        let mut p = vec![0x65, 0x92, 0x00, 0x80, 0x00, 0x0D];
        p.extend_from_slice(&54_700_418i32.to_be_bytes());
        p.extend_from_slice(&25_279_700i32.to_be_bytes());
        p.extend_from_slice(&0b0000_0000_0000_1010u16.to_be_bytes());
        p.extend_from_slice(b"\0\0\0\0SANOJ");
        p.push(0);
        assert_eq!(p.len(), 26);
        let m = Metadata::parse(Family::Dsm, false, &p);
        assert_eq!(m.trigger, Some(13));
        assert_eq!(
            m.events.as_deref(),
            Some(&["distraction".to_string(), "phone".to_string()][..])
        );
        assert_eq!(m.driver_name.as_deref(), Some("JONAS"));
        assert!((m.latitude.unwrap() - 54.700418).abs() < 1e-9);
        // A name with bytes over 127 means no name.
        let mut q = p.clone();
        q[20] = 0xC8;
        assert_eq!(parse_dsm(&q).driver_name, None);
        let enc = encode::dsm(1, 1, 13, 1.0, 2.0, 1, "ANNA");
        assert_eq!(parse_dsm(&enc).driver_name.as_deref(), Some("ANNA"));
    }

    #[test]
    fn json_keys_wherever_they_sit() {
        let text = br#"{"version":2,"file":{"file_type":1,"file_timestamp":1704067200,"duration":15,"framerate":25},
            "fm_trigger":{"type":3},"data":{"location":{"latitude":54.7,"longitude":"25.28"}},
            "cam_trigger":{"type":5},"driver":{"driver_name":"Ona"}}"#;
        let m = Metadata::parse(Family::Dsm, true, text);
        assert_eq!(m.format, MetadataFormat::Json);
        assert_eq!(m.command_version, Some(2));
        assert_eq!(m.file_type, Some(1));
        assert_eq!(m.timestamp_ms, Some(1_704_067_200_000));
        assert_eq!(
            (m.duration_s, m.frame_rate, m.trigger),
            (Some(15), Some(25), Some(3))
        );
        assert_eq!((m.latitude, m.longitude), (Some(54.7), Some(25.28)));
        assert_eq!(
            m.events.as_deref(),
            Some(&["drowsiness".to_string(), "yawning".to_string()][..])
        );
        assert_eq!(m.driver_name.as_deref(), Some("Ona"));
        assert_eq!(m.json.as_ref().unwrap()["file"]["duration"], 15);
        // Not JSON: kept raw, nothing invented.
        let bad = parse_json(b"{not json");
        assert_eq!((bad.json, bad.extra.len()), (None, 9));
    }
}
