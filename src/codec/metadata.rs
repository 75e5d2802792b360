//! METADATA (0x000B) payload, as settled in PROTOCOL-NOTES.md:
//! `version u8 | file type u8 | timestamp u64 ms | trigger u8 | video length u16 s |
//!  frame rate u8 | time zone i16 min | latitude f64 | longitude f64 | trigger timestamp u64 ms`
//! (13, 16, 32 or 40 bytes). All-ones fields mean "not available".

#[derive(Debug, Clone, Default, PartialEq)]
pub struct Metadata {
    pub command_version: Option<u8>,
    pub file_type: Option<u8>,
    /// Milliseconds since the Unix epoch.
    pub timestamp_ms: Option<u64>,
    pub trigger: Option<u8>,
    pub duration_s: Option<u16>,
    pub frame_rate: Option<u8>,
    pub timezone_minutes: Option<i16>,
    pub latitude: Option<f64>,
    pub longitude: Option<f64>,
    pub trigger_timestamp_ms: Option<u64>,
    /// Bytes past the 40 documented ones, kept for later firmware.
    pub extra: Vec<u8>,
}

fn field<const N: usize>(p: &[u8], at: usize) -> Option<[u8; N]> {
    let bytes: [u8; N] = p.get(at..at + N)?.try_into().ok()?;
    if bytes.iter().all(|&b| b == 0xFF) {
        None
    } else {
        Some(bytes)
    }
}

impl Metadata {
    /// Never fails: fields the payload does not hold are `None`.
    pub fn parse(p: &[u8]) -> Metadata {
        let f64_at = |at| {
            field::<8>(p, at)
                .map(f64::from_be_bytes)
                .filter(|v| v.is_finite())
        };
        Metadata {
            command_version: field::<1>(p, 0).map(|b| b[0]),
            file_type: field::<1>(p, 1).map(|b| b[0]),
            timestamp_ms: field::<8>(p, 2).map(u64::from_be_bytes),
            trigger: field::<1>(p, 10).map(|b| b[0]),
            duration_s: field::<2>(p, 11).map(u16::from_be_bytes),
            frame_rate: field::<1>(p, 13).map(|b| b[0]),
            timezone_minutes: field::<2>(p, 14).map(i16::from_be_bytes),
            latitude: f64_at(16),
            longitude: f64_at(24),
            trigger_timestamp_ms: field::<8>(p, 32).map(u64::from_be_bytes),
            extra: p.get(40..).unwrap_or(&[]).to_vec(),
        }
    }

    /// The full 40-byte layout; `None` fields are written as all-ones.
    pub fn encode(&self) -> Vec<u8> {
        let mut v = Vec::with_capacity(40 + self.extra.len());
        v.push(self.command_version.unwrap_or(0xFF));
        v.push(self.file_type.unwrap_or(0xFF));
        v.extend_from_slice(&self.timestamp_ms.unwrap_or(u64::MAX).to_be_bytes());
        v.push(self.trigger.unwrap_or(0xFF));
        v.extend_from_slice(&self.duration_s.unwrap_or(u16::MAX).to_be_bytes());
        v.push(self.frame_rate.unwrap_or(0xFF));
        v.extend_from_slice(&self.timezone_minutes.unwrap_or(-1).to_be_bytes());
        let f = |x: Option<f64>| x.map(f64::to_bits).unwrap_or(u64::MAX).to_be_bytes();
        v.extend_from_slice(&f(self.latitude));
        v.extend_from_slice(&f(self.longitude));
        v.extend_from_slice(&self.trigger_timestamp_ms.unwrap_or(u64::MAX).to_be_bytes());
        v.extend_from_slice(&self.extra);
        v
    }

    /// A frame rate usable for conversion (the camera allows 20, 25 or 30).
    pub fn usable_frame_rate(&self) -> Option<u8> {
        self.frame_rate.filter(|&f| (1..=120).contains(&f))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn full() -> Vec<u8> {
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
    fn notes_latitude_double() {
        let v = f64::from_be_bytes(0x404B59A74E8E028Du64.to_be_bytes());
        assert!((v - 54.7004183).abs() < 1e-7, "{v}");
    }

    #[test]
    fn all_documented_lengths() {
        let p = full();
        assert_eq!(p.len(), 40);
        let m13 = Metadata::parse(&p[..13]);
        assert_eq!(m13.command_version, Some(1));
        assert_eq!(m13.file_type, Some(0x10));
        assert_eq!(m13.timestamp_ms, Some(1_700_000_000_123));
        assert_eq!(m13.trigger, Some(4));
        assert_eq!(m13.duration_s, Some(10));
        assert_eq!(m13.frame_rate, None);
        let m16 = Metadata::parse(&p[..16]);
        assert_eq!(
            (m16.frame_rate, m16.timezone_minutes),
            (Some(25), Some(120))
        );
        assert_eq!(m16.latitude, None);
        let m32 = Metadata::parse(&p[..32]);
        assert!((m32.latitude.unwrap() - 54.7004183).abs() < 1e-7);
        assert_eq!(m32.longitude, Some(-25.5));
        assert_eq!(m32.trigger_timestamp_ms, None);
        let m40 = Metadata::parse(&p);
        assert_eq!(m40.trigger_timestamp_ms, Some(1_700_000_000_000));
        assert!(m40.extra.is_empty());
        assert_eq!(m40.encode(), p);
    }

    #[test]
    fn all_ones_means_not_available_and_extra_bytes_are_kept() {
        let mut p = vec![0xFF; 40];
        p[0] = 2;
        p.extend_from_slice(&[0xDE, 0xAD]);
        let m = Metadata::parse(&p);
        assert_eq!(m.command_version, Some(2));
        assert_eq!(m.timestamp_ms, None);
        assert_eq!(m.timezone_minutes, None);
        assert_eq!(m.latitude, None);
        assert_eq!(m.extra, vec![0xDE, 0xAD]);
        // Odd lengths never fail.
        assert_eq!(Metadata::parse(&[]), Metadata::default());
        assert_eq!(Metadata::parse(&p[..5]).file_type, None);
    }
}
