//! Frames after the init packet: `cmd u16 | len u16 | payload[len]`, big-endian.

use super::CodecError;

/// Largest file chunk in one DATA frame.
pub const MAX_DATA_BYTES: usize = 1024;
/// Largest payload of any frame (DATA: 1024 bytes + CRC).
pub const MAX_PAYLOAD: usize = MAX_DATA_BYTES + 2;
/// Largest ADAS path / file identifier accepted.
pub const MAX_PATH_BYTES: usize = 255;
/// Largest METADATA payload accepted (40 documented bytes, room for growth).
pub const MAX_METADATA_BYTES: usize = 256;
pub const HEADER_LEN: usize = 4;

pub mod cmd {
    pub const CLOSE: u16 = 0x0000;
    pub const START: u16 = 0x0001;
    pub const RESUME: u16 = 0x0002;
    pub const SYNC: u16 = 0x0003;
    pub const DATA: u16 = 0x0004;
    pub const STATUS: u16 = 0x0005;
    pub const FILE_REQUEST: u16 = 0x0008;
    pub const REPEAT_INIT: u16 = 0x0009;
    pub const METADATA_REQUEST: u16 = 0x000A;
    pub const METADATA: u16 = 0x000B;
    pub const PATH_REQUEST: u16 = 0x000C;
    pub const PATH: u16 = 0x000D;
}

/// One decoded frame. Variable payloads borrow from the input buffer.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Frame<'a> {
    Close,
    Start { packets: u32 },
    Resume { offset: u32 },
    Sync { offset: u32 },
    Data { payload: &'a [u8], crc: u16 },
    Status { code: u32 },
    FileRequest { identifier: &'a [u8] },
    RepeatInit,
    MetadataRequest { identifier: &'a [u8] },
    Metadata { payload: &'a [u8] },
    PathRequest,
    Path { path: &'a [u8] },
}

impl Frame<'_> {
    pub fn command(&self) -> u16 {
        match self {
            Frame::Close => cmd::CLOSE,
            Frame::Start { .. } => cmd::START,
            Frame::Resume { .. } => cmd::RESUME,
            Frame::Sync { .. } => cmd::SYNC,
            Frame::Data { .. } => cmd::DATA,
            Frame::Status { .. } => cmd::STATUS,
            Frame::FileRequest { .. } => cmd::FILE_REQUEST,
            Frame::RepeatInit => cmd::REPEAT_INIT,
            Frame::MetadataRequest { .. } => cmd::METADATA_REQUEST,
            Frame::Metadata { .. } => cmd::METADATA,
            Frame::PathRequest => cmd::PATH_REQUEST,
            Frame::Path { .. } => cmd::PATH,
        }
    }

    pub fn name(&self) -> &'static str {
        command_name(self.command()).unwrap_or("UNKNOWN")
    }

    /// Appends the encoded frame to `out`.
    pub fn encode(&self, out: &mut Vec<u8>) {
        let start = out.len();
        out.extend_from_slice(&self.command().to_be_bytes());
        out.extend_from_slice(&[0, 0]);
        match *self {
            Frame::Close | Frame::RepeatInit | Frame::PathRequest => {}
            Frame::Start { packets } => {
                out.extend_from_slice(&packets.to_be_bytes());
                out.extend_from_slice(&[0, 0]);
            }
            Frame::Resume { offset } | Frame::Sync { offset } => {
                out.extend_from_slice(&offset.to_be_bytes())
            }
            Frame::Status { code } => out.extend_from_slice(&code.to_be_bytes()),
            Frame::Data { payload, crc } => {
                out.extend_from_slice(payload);
                out.extend_from_slice(&crc.to_be_bytes());
            }
            Frame::FileRequest { identifier: b }
            | Frame::MetadataRequest { identifier: b }
            | Frame::Metadata { payload: b }
            | Frame::Path { path: b } => out.extend_from_slice(b),
        }
        let len = (out.len() - start - HEADER_LEN) as u16;
        out[start + 2..start + 4].copy_from_slice(&len.to_be_bytes());
    }

    pub fn to_vec(&self) -> Vec<u8> {
        let mut v = Vec::new();
        self.encode(&mut v);
        v
    }
}

pub fn command_name(cmd: u16) -> Option<&'static str> {
    Some(match cmd {
        cmd::CLOSE => "CLOSE",
        cmd::START => "START",
        cmd::RESUME => "RESUME",
        cmd::SYNC => "SYNC",
        cmd::DATA => "DATA",
        cmd::STATUS => "STATUS",
        cmd::FILE_REQUEST => "FILE REQ",
        cmd::REPEAT_INIT => "REPEAT INIT",
        cmd::METADATA_REQUEST => "METADATA REQ",
        cmd::METADATA => "METADATA",
        cmd::PATH_REQUEST => "PATH REQ",
        cmd::PATH => "PATH",
        _ => return None,
    })
}

/// Checks a frame header before its payload is read, so a hostile length never
/// makes the reader wait for, or allocate, more than one DATA frame.
pub fn check_header(header: [u8; 4]) -> Result<(u16, usize), CodecError> {
    let cmd = u16::from_be_bytes([header[0], header[1]]);
    let len = u16::from_be_bytes([header[2], header[3]]) as usize;
    let max = match cmd {
        cmd::CLOSE | cmd::REPEAT_INIT | cmd::PATH_REQUEST => 0,
        cmd::START => 6,
        cmd::RESUME | cmd::SYNC | cmd::STATUS => 4,
        cmd::DATA => MAX_PAYLOAD,
        cmd::FILE_REQUEST | cmd::METADATA_REQUEST | cmd::PATH => MAX_PATH_BYTES + 1,
        cmd::METADATA => MAX_METADATA_BYTES,
        _ => return Err(CodecError::UnknownCommand(cmd)),
    };
    if len > max {
        return Err(CodecError::BadLength { cmd, len });
    }
    Ok((cmd, len))
}

/// Decodes one frame whose header has passed [`check_header`].
pub fn decode_payload(cmd: u16, p: &[u8]) -> Result<Frame<'_>, CodecError> {
    let bad = || CodecError::BadLength { cmd, len: p.len() };
    let u32_at = |i: usize| u32::from_be_bytes([p[i], p[i + 1], p[i + 2], p[i + 3]]);
    Ok(match cmd {
        cmd::CLOSE => Frame::Close,
        cmd::REPEAT_INIT => Frame::RepeatInit,
        cmd::PATH_REQUEST => Frame::PathRequest,
        // The 2 trailing "blank" bytes are documented; tolerate firmware that omits them.
        cmd::START if p.len() == 6 || p.len() == 4 => Frame::Start { packets: u32_at(0) },
        cmd::RESUME if p.len() == 4 => Frame::Resume { offset: u32_at(0) },
        cmd::SYNC if p.len() == 4 => Frame::Sync { offset: u32_at(0) },
        cmd::STATUS if p.len() == 4 => Frame::Status { code: u32_at(0) },
        cmd::DATA if p.len() > 2 && p.len() <= MAX_PAYLOAD => {
            let n = p.len() - 2;
            Frame::Data {
                payload: &p[..n],
                crc: u16::from_be_bytes([p[n], p[n + 1]]),
            }
        }
        cmd::FILE_REQUEST => Frame::FileRequest { identifier: p },
        cmd::METADATA_REQUEST => Frame::MetadataRequest { identifier: p },
        cmd::METADATA => Frame::Metadata { payload: p },
        cmd::PATH => Frame::Path { path: p },
        cmd::START | cmd::RESUME | cmd::SYNC | cmd::STATUS | cmd::DATA => return Err(bad()),
        _ => return Err(CodecError::UnknownCommand(cmd)),
    })
}

/// Parses one frame from the front of `buf`: `Ok(None)` when more bytes are
/// needed, else the frame and how many bytes it took.
pub fn parse_frame(buf: &[u8]) -> Result<Option<(Frame<'_>, usize)>, CodecError> {
    if buf.len() < HEADER_LEN {
        return Ok(None);
    }
    let (cmd, len) = check_header([buf[0], buf[1], buf[2], buf[3]])?;
    let total = HEADER_LEN + len;
    if buf.len() < total {
        return Ok(None);
    }
    Ok(Some((decode_payload(cmd, &buf[HEADER_LEN..total])?, total)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn roundtrip(f: Frame<'_>) {
        let bytes = f.to_vec();
        let (back, used) = parse_frame(&bytes).unwrap().unwrap();
        assert_eq!(back, f);
        assert_eq!(used, bytes.len());
        // Every strict prefix asks for more bytes instead of failing.
        for cut in 0..bytes.len() {
            assert_eq!(
                parse_frame(&bytes[..cut]).unwrap(),
                None,
                "{f:?} cut at {cut}"
            );
        }
    }

    #[test]
    fn notes_file_request_and_start_bytes() {
        let req = Frame::FileRequest {
            identifier: b"%photof",
        }
        .to_vec();
        assert_eq!(
            req,
            [0x00, 0x08, 0x00, 0x07, 0x25, 0x70, 0x68, 0x6F, 0x74, 0x6F, 0x66]
        );
        let start = [0x00, 0x01, 0x00, 0x06, 0x00, 0x00, 0x00, 0x20, 0x00, 0x00];
        assert_eq!(
            parse_frame(&start).unwrap(),
            Some((Frame::Start { packets: 32 }, 10))
        );
        assert_eq!(Frame::Start { packets: 32 }.to_vec(), start);
    }

    #[test]
    fn documented_layouts() {
        assert_eq!(Frame::Close.to_vec(), [0, 0, 0, 0]);
        assert_eq!(
            Frame::Resume { offset: 1 }.to_vec(),
            [0, 2, 0, 4, 0, 0, 0, 1]
        );
        assert_eq!(
            Frame::Sync {
                offset: 0x0102_0304
            }
            .to_vec(),
            [0, 3, 0, 4, 1, 2, 3, 4]
        );
        assert_eq!(
            Frame::Status { code: 0x11 }.to_vec(),
            [0, 5, 0, 4, 0, 0, 0, 0x11]
        );
        assert_eq!(Frame::RepeatInit.to_vec(), [0, 9, 0, 0]);
        assert_eq!(Frame::PathRequest.to_vec(), [0, 0x0C, 0, 0]);
        assert_eq!(
            Frame::MetadataRequest {
                identifier: b"%videor"
            }
            .to_vec(),
            [0, 0x0A, 0, 7, b'%', b'v', b'i', b'd', b'e', b'o', b'r']
        );
        let data = Frame::Data {
            payload: &[1, 2, 3],
            crc: 0xABCD,
        }
        .to_vec();
        assert_eq!(data, [0, 4, 0, 5, 1, 2, 3, 0xAB, 0xCD]);
    }

    #[test]
    fn every_frame_roundtrips() {
        let full = [0x5Au8; 1024];
        for f in [
            Frame::Close,
            Frame::Start { packets: u32::MAX },
            Frame::Resume { offset: 7 },
            Frame::Sync { offset: 7 },
            Frame::Data {
                payload: &full,
                crc: 0x27CA,
            },
            Frame::Data {
                payload: &[9],
                crc: 1,
            },
            Frame::Status { code: 5 },
            Frame::FileRequest {
                identifier: b"%videof",
            },
            Frame::RepeatInit,
            Frame::MetadataRequest {
                identifier: b"%photor",
            },
            Frame::Metadata {
                payload: &[0xFF; 40],
            },
            Frame::PathRequest,
            Frame::Path {
                path: b"/mnt/sd/adas/1.mp4",
            },
        ] {
            roundtrip(f);
        }
    }

    #[test]
    fn data_longer_than_1026_is_a_protocol_error() {
        assert_eq!(
            parse_frame(&[0, 4, 0x04, 0x03]),
            Err(CodecError::BadLength { cmd: 4, len: 1027 })
        );
        assert!(parse_frame(&[0, 4, 0xFF, 0xFF]).is_err());
        // An empty DATA (CRC only) carries no file bytes: refused.
        assert!(parse_frame(&[0, 4, 0, 2, 0, 0]).is_err());
    }

    #[test]
    fn wrong_fixed_lengths_and_unknown_commands_are_refused() {
        assert!(parse_frame(&[0, 2, 0, 3, 0, 0, 1]).is_err());
        assert!(parse_frame(&[0, 0, 0, 1, 0]).is_err());
        assert_eq!(
            parse_frame(&[0, 7, 0, 0]),
            Err(CodecError::UnknownCommand(7))
        );
        assert!(parse_frame(b"GET / HTTP/1.1\r\n").is_err());
    }

    #[test]
    fn start_without_blank_bytes_is_tolerated() {
        assert_eq!(
            parse_frame(&[0, 1, 0, 4, 0, 0, 1, 0]).unwrap(),
            Some((Frame::Start { packets: 256 }, 8))
        );
    }
}
