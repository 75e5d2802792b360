//! The 16-byte init packet: `header u16 = 0 | protocol id u16 | IMEI u64 | settings u32`.

use super::{CodecError, Foreign};

pub const INIT_LEN: usize = 16;
/// Settings bit (first byte): a file for the path flow (ADAS, DSM, protocol >= 6).
pub const PATH_BIT: u8 = 0x02;
/// The DualCam bits of the first settings byte.
pub const DUALCAM_BITS: u8 = 0x3C;

/// The four files a DashCam/DualCam offers, by their availability bit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum FileKind {
    VideoFront,
    VideoRear,
    PhotoFront,
    PhotoRear,
}

impl FileKind {
    pub const ALL: [FileKind; 4] = [
        FileKind::VideoFront,
        FileKind::VideoRear,
        FileKind::PhotoFront,
        FileKind::PhotoRear,
    ];

    /// The order the reference server asks in: `%videor`, `%videof`, `%photor`, `%photof`.
    pub const REFERENCE_ORDER: [FileKind; 4] = [
        FileKind::VideoRear,
        FileKind::VideoFront,
        FileKind::PhotoRear,
        FileKind::PhotoFront,
    ];

    /// Bit in the most significant byte of the settings (and in metadata's file type).
    pub fn bit(self) -> u8 {
        match self {
            FileKind::VideoRear => 0x20,
            FileKind::VideoFront => 0x10,
            FileKind::PhotoRear => 0x08,
            FileKind::PhotoFront => 0x04,
        }
    }

    /// Name without the `%`: `videof`, `videor`, `photof`, `photor`.
    pub fn name(self) -> &'static str {
        match self {
            FileKind::VideoFront => "videof",
            FileKind::VideoRear => "videor",
            FileKind::PhotoFront => "photof",
            FileKind::PhotoRear => "photor",
        }
    }

    /// The 7-byte identifier sent in FILE REQ and METADATA REQ.
    pub fn identifier(self) -> &'static str {
        match self {
            FileKind::VideoFront => "%videof",
            FileKind::VideoRear => "%videor",
            FileKind::PhotoFront => "%photof",
            FileKind::PhotoRear => "%photor",
        }
    }

    pub fn is_video(self) -> bool {
        matches!(self, FileKind::VideoFront | FileKind::VideoRear)
    }

    pub fn is_front(self) -> bool {
        matches!(self, FileKind::VideoFront | FileKind::PhotoFront)
    }

    pub fn extension(self) -> &'static str {
        if self.is_video() {
            "h265"
        } else {
            "jpg"
        }
    }

    /// Accepts `videof` or `%videof`.
    pub fn from_name(s: &str) -> Option<FileKind> {
        let s = s.trim();
        let s = s.strip_prefix('%').unwrap_or(s);
        FileKind::ALL
            .into_iter()
            .find(|k| k.name().eq_ignore_ascii_case(s))
    }

    pub fn from_identifier(id: &[u8]) -> Option<FileKind> {
        FileKind::ALL
            .into_iter()
            .find(|k| k.identifier().as_bytes() == id)
    }

    /// Kinds whose bit is set in a settings/file-type byte.
    pub fn in_byte(byte: u8) -> Vec<FileKind> {
        FileKind::REFERENCE_ORDER
            .into_iter()
            .filter(|k| byte & k.bit() != 0)
            .collect()
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct InitPacket {
    pub protocol_id: u16,
    pub imei: u64,
    pub settings: u32,
}

impl InitPacket {
    /// The byte carrying the availability bits (first on the wire).
    pub fn availability(&self) -> u8 {
        (self.settings >> 24) as u8
    }

    pub fn available(&self) -> Vec<FileKind> {
        FileKind::in_byte(self.availability())
    }

    /// Bit 0x02: a file for the path flow.
    pub fn path_file(&self) -> bool {
        self.availability() & PATH_BIT != 0
    }

    /// Any file at all (a DualCam bit or the path bit).
    pub fn offers_anything(&self) -> bool {
        self.availability() & (DUALCAM_BITS | PATH_BIT) != 0
    }

    pub fn encode(&self) -> [u8; INIT_LEN] {
        let mut b = [0u8; INIT_LEN];
        b[2..4].copy_from_slice(&self.protocol_id.to_be_bytes());
        b[4..12].copy_from_slice(&self.imei.to_be_bytes());
        b[12..16].copy_from_slice(&self.settings.to_be_bytes());
        b
    }

    pub fn settings_for(kinds: &[FileKind]) -> u32 {
        (kinds.iter().fold(0u8, |acc, k| acc | k.bit()) as u32) << 24
    }
}

/// Parses an init packet from the front of `buf`. `Ok(None)` means more bytes
/// are needed. A wrong header is reported as soon as its 2 bytes are in, so a
/// port scanner is turned away without waiting for 16 bytes.
///
/// ```
/// use dashcam_protocol::codec::{parse_init, FileKind};
/// // A real device's init packet (PROTOCOL-NOTES.md).
/// let bytes = [0, 0, 0, 5, 0, 1, 0x3E, 0xE1, 0x3C, 0, 0x19, 0x81, 0x44, 0, 4, 0];
/// let init = parse_init(&bytes).unwrap().unwrap();
/// assert_eq!((init.protocol_id, init.imei), (5, 350612071913857));
/// assert_eq!(init.available(), vec![FileKind::PhotoFront]);
/// assert!(parse_init(b"GET / HTTP/1.1").is_err());
/// ```
pub fn parse_init(buf: &[u8]) -> Result<Option<InitPacket>, CodecError> {
    if buf.len() >= 2 && (buf[0] != 0 || buf[1] != 0) {
        return Err(CodecError::NotACamera(Foreign::sniff(buf)));
    }
    if buf.len() < INIT_LEN {
        return Ok(None);
    }
    // Tracker AVL data also starts 00 00 (PROTOCOL-NOTES.md, fourth edition).
    if let Some(avl) = Foreign::avl_in_init(buf) {
        return Err(CodecError::NotACamera(avl));
    }
    let mut imei = [0u8; 8];
    imei.copy_from_slice(&buf[4..12]);
    Ok(Some(InitPacket {
        protocol_id: u16::from_be_bytes([buf[2], buf[3]]),
        imei: u64::from_be_bytes(imei),
        settings: u32::from_be_bytes([buf[12], buf[13], buf[14], buf[15]]),
    }))
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A real device's init packet (PROTOCOL-NOTES.md).
    pub(crate) const REAL_INIT: [u8; 16] = [
        0x00, 0x00, 0x00, 0x05, 0x00, 0x01, 0x3E, 0xE1, 0x3C, 0x00, 0x19, 0x81, 0x44, 0x00, 0x04,
        0x00,
    ];

    #[test]
    fn real_device_init_packet() {
        let init = parse_init(&REAL_INIT).unwrap().unwrap();
        assert_eq!(init.protocol_id, 5);
        assert_eq!(init.imei, 350612071913857);
        assert_eq!(init.settings, 0x4400_0400);
        assert_eq!(init.available(), vec![FileKind::PhotoFront]);
        assert_eq!(init.encode(), REAL_INIT);
    }

    #[test]
    fn short_init_waits_and_wrong_header_is_refused_early() {
        for cut in 0..16 {
            assert_eq!(parse_init(&REAL_INIT[..cut]).unwrap(), None);
        }
        assert_eq!(
            parse_init(b"GE"),
            Err(CodecError::NotACamera(Foreign::Http))
        );
        assert!(parse_init(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n").is_err());
    }

    #[test]
    fn availability_bits() {
        let s = InitPacket::settings_for(&FileKind::ALL);
        assert_eq!(s, 0x3C00_0000);
        let all = InitPacket {
            protocol_id: 5,
            imei: 1,
            settings: s,
        };
        assert_eq!(
            all.available(),
            [
                FileKind::VideoRear,
                FileKind::VideoFront,
                FileKind::PhotoRear,
                FileKind::PhotoFront
            ]
        );
        assert!(!all.path_file() && all.offers_anything());
        let adas = InitPacket {
            protocol_id: 5,
            imei: 1,
            settings: 0x4200_0000,
        };
        assert!(adas.path_file() && adas.available().is_empty());
        let none = InitPacket {
            protocol_id: 6,
            imei: 1,
            settings: 0x4000_0400,
        };
        assert!(!none.offers_anything());
        let init = InitPacket {
            protocol_id: 5,
            imei: 1,
            settings: 0x2000_0000,
        };
        assert_eq!(init.available(), vec![FileKind::VideoRear]);
        assert_eq!(FileKind::from_name("%photor"), Some(FileKind::PhotoRear));
        assert_eq!(FileKind::from_name("VIDEOF"), Some(FileKind::VideoFront));
        assert_eq!(FileKind::from_name("video"), None);
    }
}
