//! Frames after the init packet: `cmd u16 | len u16 | payload[len]`, big-endian,
//! except REPEAT INIT, which is the two bytes `00 09` and nothing else.

use super::CodecError;

/// Largest file chunk in one DATA frame of the identifier flow.
pub const MAX_PACKET_BYTES: usize = 1024;
/// Largest DATA payload (file bytes + CRC) in the identifier flow.
pub const IDENTIFIER_DATA_PAYLOAD: usize = MAX_PACKET_BYTES + 2;
/// Largest DATA / ENHANCED_DATA payload in the path flow: what a u16 length holds.
pub const PATH_DATA_PAYLOAD: usize = u16::MAX as usize;
/// Longest path the server requests (the FILE REQ length must fit, see the notes).
pub const MAX_PATH_BYTES: usize = 255;
/// Longest PATH frame read (longer paths are refused by the session, by name).
pub const MAX_PATH_FRAME: usize = 1024;
/// Largest METADATA payload accepted (JSON on protocol 6).
pub const MAX_METADATA_BYTES: usize = 4096;
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
    pub const ENHANCED_DATA: u16 = 0x000E;
}

/// Who sent the bytes being parsed: the two directions carry different commands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    /// Device to server: START, SYNC, DATA, STATUS, METADATA, PATH, ENHANCED_DATA.
    FromDevice,
    /// Server to device: CLOSE, RESUME, STATUS, FILE REQ, REPEAT INIT, METADATA REQ, PATH REQ.
    FromServer,
}

/// One decoded frame. Variable payloads borrow from the input buffer.
/// START, RESUME and SYNC carry the raw u32: packets or bytes is the session's call.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Frame<'a> {
    Close,
    Start {
        total: u32,
        /// The 2 bytes after the total: "blank" in the document, the file's
        /// CRC in its pre-2021 version; devices seen send 0. 0 when absent.
        field: u16,
    },
    Resume {
        offset: u32,
    },
    Sync {
        offset: u32,
    },
    Data {
        payload: &'a [u8],
        crc: u16,
    },
    Status {
        code: u32,
    },
    FileRequest {
        identifier: &'a [u8],
    },
    RepeatInit,
    /// A 7-byte identifier in the identifier flow, empty in the path flow.
    MetadataRequest {
        identifier: &'a [u8],
    },
    Metadata {
        payload: &'a [u8],
    },
    PathRequest,
    Path {
        path: &'a [u8],
    },
    EnhancedData {
        offset: u32,
        payload: &'a [u8],
        crc: u16,
    },
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
            Frame::EnhancedData { .. } => cmd::ENHANCED_DATA,
        }
    }

    pub fn name(&self) -> &'static str {
        command_name(self.command()).unwrap_or("UNKNOWN")
    }

    /// The file bytes of DATA or ENHANCED_DATA.
    pub fn file_bytes(&self) -> Option<&[u8]> {
        match self {
            Frame::Data { payload, .. } | Frame::EnhancedData { payload, .. } => Some(payload),
            _ => None,
        }
    }

    /// Appends the encoded frame to `out`, byte for byte as the reference server
    /// sends its commands (REPEAT INIT without a length, PATH REQ with `00 00`).
    /// A payload too long for the length field is an error and `out` is left as it was.
    pub fn encode(&self, out: &mut Vec<u8>) -> Result<(), CodecError> {
        let at = out.len();
        out.extend_from_slice(&self.command().to_be_bytes());
        if let Frame::RepeatInit = self {
            return Ok(());
        }
        let start = out.len();
        out.extend_from_slice(&[0, 0]);
        match *self {
            Frame::Close | Frame::RepeatInit => {}
            Frame::PathRequest => out.extend_from_slice(&[0, 0]),
            Frame::Start { total, field } => {
                out.extend_from_slice(&total.to_be_bytes());
                out.extend_from_slice(&field.to_be_bytes());
            }
            Frame::Resume { offset } | Frame::Sync { offset } => {
                out.extend_from_slice(&offset.to_be_bytes())
            }
            Frame::Status { code } => out.extend_from_slice(&code.to_be_bytes()),
            Frame::Data { payload, crc } => {
                out.extend_from_slice(payload);
                out.extend_from_slice(&crc.to_be_bytes());
            }
            Frame::EnhancedData {
                offset,
                payload,
                crc,
            } => {
                out.extend_from_slice(&offset.to_be_bytes());
                out.extend_from_slice(payload);
                out.extend_from_slice(&crc.to_be_bytes());
            }
            Frame::FileRequest { identifier: b }
            | Frame::MetadataRequest { identifier: b }
            | Frame::Metadata { payload: b }
            | Frame::Path { path: b } => out.extend_from_slice(b),
        }
        let len = out.len() - start - 2;
        let Ok(len16) = u16::try_from(len) else {
            out.truncate(at);
            return Err(CodecError::TooLong {
                cmd: self.command(),
                len,
            });
        };
        out[start..start + 2].copy_from_slice(&len16.to_be_bytes());
        Ok(())
    }

    /// The encoded frame; empty for a frame too long to encode (see [`Frame::encode`]).
    pub fn to_vec(&self) -> Vec<u8> {
        let mut v = Vec::new();
        let _ = self.encode(&mut v);
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
        cmd::ENHANCED_DATA => "ENHANCED_DATA",
        _ => return None,
    })
}

/// Bounds on what a parser accepts; the session sets `max_data` per flow.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    pub direction: Direction,
    /// Largest DATA / ENHANCED_DATA payload (file bytes, CRC, and the offset).
    pub max_data: usize,
}

impl Limits {
    pub const fn from_device(max_data: usize) -> Limits {
        Limits {
            direction: Direction::FromDevice,
            max_data,
        }
    }

    /// The identifier flow's bound (DATA up to 1024 file bytes).
    pub const IDENTIFIER: Limits = Limits::from_device(IDENTIFIER_DATA_PAYLOAD);
    /// The path flow's bound (any size a frame can hold).
    pub const PATH: Limits = Limits::from_device(PATH_DATA_PAYLOAD);
    pub const SERVER: Limits = Limits {
        direction: Direction::FromServer,
        max_data: 0,
    };
}

/// What the header says: a command, and how many payload bytes follow
/// (`None` for REPEAT INIT, which has no length field).
pub fn check_header(b: &[u8], limits: Limits) -> Result<(u16, Option<usize>), CodecError> {
    let truncated = |need| CodecError::Truncated {
        need,
        have: b.len(),
    };
    let (&[c0, c1], rest) = b.split_first_chunk::<2>().ok_or(truncated(2))?;
    let cmd = u16::from_be_bytes([c0, c1]);
    if limits.direction == Direction::FromServer && cmd == cmd::REPEAT_INIT {
        return Ok((cmd, None));
    }
    let &[l0, l1] = rest.first_chunk::<2>().ok_or(truncated(HEADER_LEN))?;
    let len = u16::from_be_bytes([l0, l1]) as usize;
    let ok = match (limits.direction, cmd) {
        (Direction::FromDevice, cmd::START) => len == 6 || len == 4,
        (Direction::FromDevice, cmd::SYNC) | (_, cmd::STATUS) => len == 4,
        (Direction::FromDevice, cmd::DATA) => (3..=limits.max_data).contains(&len),
        (Direction::FromDevice, cmd::ENHANCED_DATA) => (7..=limits.max_data).contains(&len),
        (Direction::FromDevice, cmd::METADATA) => len <= MAX_METADATA_BYTES,
        (Direction::FromDevice, cmd::PATH) => len <= MAX_PATH_FRAME,
        (Direction::FromServer, cmd::CLOSE) => len == 0,
        (Direction::FromServer, cmd::RESUME) => len == 4,
        (Direction::FromServer, cmd::FILE_REQUEST) => (1..=MAX_PATH_BYTES).contains(&len),
        (Direction::FromServer, cmd::METADATA_REQUEST) => len <= MAX_PATH_BYTES,
        // The reference sends `00 00`; an empty one is accepted too.
        (Direction::FromServer, cmd::PATH_REQUEST) => len == 2 || len == 0,
        _ => return Err(CodecError::UnknownCommand(cmd)),
    };
    if ok {
        Ok((cmd, Some(len)))
    } else {
        Err(CodecError::BadLength { cmd, len })
    }
}

/// Decodes the payload of a frame (normally one whose header passed
/// [`check_header`]); a payload too short for its command is an error.
pub fn decode_payload(cmd: u16, p: &[u8]) -> Result<Frame<'_>, CodecError> {
    let short = |_need: usize| CodecError::BadLength { cmd, len: p.len() };
    let u32_at = |i: usize| -> Result<u32, CodecError> {
        p.get(i..i + 4)
            .map(|b| u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
            .ok_or_else(|| short(i + 4))
    };
    // File bytes, then a CRC in the last 2 bytes, after `skip` bytes.
    let with_crc = |skip: usize| -> Result<(&[u8], u16), CodecError> {
        match p.len().checked_sub(2) {
            Some(n) if n >= skip => Ok((&p[skip..n], u16::from_be_bytes([p[n], p[n + 1]]))),
            _ => Err(short(skip + 2)),
        }
    };
    Ok(match cmd {
        cmd::CLOSE => Frame::Close,
        cmd::REPEAT_INIT => Frame::RepeatInit,
        cmd::PATH_REQUEST => Frame::PathRequest,
        // The 2 trailing "blank" bytes are documented; firmware that omits them is tolerated.
        cmd::START => Frame::Start {
            total: u32_at(0)?,
            field: p.get(4..6).map_or(0, |b| u16::from_be_bytes([b[0], b[1]])),
        },
        cmd::RESUME => Frame::Resume { offset: u32_at(0)? },
        cmd::SYNC => Frame::Sync { offset: u32_at(0)? },
        cmd::STATUS => Frame::Status { code: u32_at(0)? },
        cmd::DATA => {
            let (payload, crc) = with_crc(0)?;
            Frame::Data { payload, crc }
        }
        cmd::ENHANCED_DATA => {
            let offset = u32_at(0)?;
            let (payload, crc) = with_crc(4)?;
            Frame::EnhancedData {
                offset,
                payload,
                crc,
            }
        }
        cmd::FILE_REQUEST => Frame::FileRequest { identifier: p },
        cmd::METADATA_REQUEST => Frame::MetadataRequest { identifier: p },
        cmd::METADATA => Frame::Metadata { payload: p },
        cmd::PATH => Frame::Path { path: p },
        _ => return Err(CodecError::UnknownCommand(cmd)),
    })
}

/// Parses one frame from the front of `buf`: `Ok(None)` when more bytes are
/// needed, else the frame and how many bytes it took.
pub fn parse_frame(buf: &[u8], limits: Limits) -> Result<Option<(Frame<'_>, usize)>, CodecError> {
    if buf.len() < 2 {
        return Ok(None);
    }
    if limits.direction == Direction::FromServer && buf[..2] == [0, 9] {
        return Ok(Some((Frame::RepeatInit, 2)));
    }
    if buf.len() < HEADER_LEN {
        return Ok(None);
    }
    let (cmd, len) = check_header(buf, limits)?;
    let total = HEADER_LEN + len.unwrap_or(0);
    if buf.len() < total {
        return Ok(None);
    }
    Ok(Some((decode_payload(cmd, &buf[HEADER_LEN..total])?, total)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits_for(f: &Frame<'_>) -> Limits {
        match f {
            Frame::Close
            | Frame::Resume { .. }
            | Frame::FileRequest { .. }
            | Frame::RepeatInit
            | Frame::MetadataRequest { .. }
            | Frame::PathRequest => Limits::SERVER,
            _ => Limits::PATH,
        }
    }

    fn roundtrip(f: Frame<'_>) {
        let bytes = f.to_vec();
        let limits = limits_for(&f);
        let (back, used) = parse_frame(&bytes, limits).unwrap().unwrap();
        assert_eq!(back, f);
        assert_eq!(used, bytes.len());
        for cut in 0..bytes.len() {
            assert_eq!(
                parse_frame(&bytes[..cut], limits).unwrap(),
                None,
                "{f:?} cut at {cut}"
            );
        }
    }

    #[test]
    fn server_commands_byte_for_byte_as_the_reference() {
        assert_eq!(Frame::Close.to_vec(), [0, 0, 0, 0]);
        assert_eq!(
            Frame::Resume { offset: 1 }.to_vec(),
            [0, 2, 0, 4, 0, 0, 0, 1]
        );
        assert_eq!(
            Frame::FileRequest {
                identifier: b"%photof"
            }
            .to_vec(),
            [0x00, 0x08, 0x00, 0x07, 0x25, 0x70, 0x68, 0x6F, 0x74, 0x6F, 0x66]
        );
        let path = b"/mnt/sd/mdas9/picture 1.jpg";
        let mut want = vec![0, 8, 0, path.len() as u8];
        want.extend_from_slice(path);
        assert_eq!(Frame::FileRequest { identifier: path }.to_vec(), want);
        assert_eq!(Frame::RepeatInit.to_vec(), [0x00, 0x09]);
        assert_eq!(
            Frame::MetadataRequest {
                identifier: b"%videor"
            }
            .to_vec(),
            [0, 0x0A, 0, 7, b'%', b'v', b'i', b'd', b'e', b'o', b'r']
        );
        assert_eq!(
            Frame::MetadataRequest { identifier: b"" }.to_vec(),
            [0, 0x0A, 0, 0]
        );
        assert_eq!(
            Frame::PathRequest.to_vec(),
            [0x00, 0x0C, 0x00, 0x02, 0x00, 0x00]
        );
        assert_eq!(Frame::Status { code: 0 }.to_vec(), [0, 5, 0, 4, 0, 0, 0, 0]);
    }

    #[test]
    fn device_frames_from_the_notes() {
        let start = [0x00, 0x01, 0x00, 0x06, 0x00, 0x00, 0x00, 0x20, 0x00, 0x00];
        assert_eq!(
            parse_frame(&start, Limits::IDENTIFIER).unwrap(),
            Some((
                Frame::Start {
                    total: 32,
                    field: 0
                },
                10
            ))
        );
        assert_eq!(
            Frame::Start {
                total: 32,
                field: 0
            }
            .to_vec(),
            start
        );
        // START without its blank bytes.
        assert_eq!(
            parse_frame(&[0, 1, 0, 4, 0, 0, 1, 0], Limits::IDENTIFIER).unwrap(),
            Some((
                Frame::Start {
                    total: 256,
                    field: 0
                },
                8
            ))
        );
        assert_eq!(
            Frame::Sync {
                offset: 0x0102_0304
            }
            .to_vec(),
            [0, 3, 0, 4, 1, 2, 3, 4]
        );
        assert_eq!(
            Frame::Data {
                payload: &[1, 2, 3],
                crc: 0xABCD
            }
            .to_vec(),
            [0, 4, 0, 5, 1, 2, 3, 0xAB, 0xCD]
        );
        // ENHANCED_DATA: len = 4 + n + 2.
        let e = [0, 0x0E, 0, 9, 0, 0, 4, 0, 7, 8, 9, 0x12, 0x34];
        assert_eq!(
            parse_frame(&e, Limits::PATH).unwrap(),
            Some((
                Frame::EnhancedData {
                    offset: 1024,
                    payload: &[7, 8, 9],
                    crc: 0x1234
                },
                13
            ))
        );
        let path = [0, 0x0D, 0, 5, b'a', b'.', b'j', b'p', 0];
        assert_eq!(
            parse_frame(&path, Limits::PATH).unwrap().unwrap().0,
            Frame::Path { path: b"a.jp\0" }
        );
    }

    #[test]
    fn every_frame_roundtrips() {
        let full = [0x5Au8; 1024];
        let big = vec![0x33u8; 5000];
        for f in [
            Frame::Close,
            Frame::Start {
                total: u32::MAX,
                field: 0,
            },
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
            Frame::Data {
                payload: &big,
                crc: 2,
            },
            Frame::EnhancedData {
                offset: 99,
                payload: &big,
                crc: 3,
            },
            Frame::Status { code: 5 },
            Frame::FileRequest {
                identifier: b"%videof",
            },
            Frame::RepeatInit,
            Frame::MetadataRequest {
                identifier: b"%photor",
            },
            Frame::MetadataRequest { identifier: b"" },
            Frame::Metadata {
                payload: &[0xFF; 40],
            },
            Frame::Metadata {
                payload: &[b'{'; 4096],
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
    fn data_is_bounded_per_flow() {
        // 1025 file bytes + CRC: too long for the identifier flow, fine in the path flow.
        assert_eq!(
            parse_frame(&[0, 4, 0x04, 0x03], Limits::IDENTIFIER),
            Err(CodecError::BadLength { cmd: 4, len: 1027 })
        );
        assert_eq!(parse_frame(&[0, 4, 0x04, 0x03], Limits::PATH), Ok(None));
        // A DATA with no file byte, an ENHANCED_DATA with no file byte.
        assert!(parse_frame(&[0, 4, 0, 2, 0, 0], Limits::PATH).is_err());
        assert!(parse_frame(&[0, 0x0E, 0, 6, 0, 0, 0, 0, 0, 0], Limits::PATH).is_err());
        // METADATA over 4 KiB.
        assert!(parse_frame(&[0, 0x0B, 0x10, 0x01], Limits::PATH).is_err());
    }

    #[test]
    fn each_direction_takes_only_its_own_commands() {
        assert!(parse_frame(&[0, 2, 0, 4, 0, 0, 0, 1], Limits::PATH).is_err());
        assert!(parse_frame(&[0, 3, 0, 4, 0, 0, 0, 1], Limits::SERVER).is_err());
        assert_eq!(
            parse_frame(&[0, 7, 0, 0], Limits::PATH),
            Err(CodecError::UnknownCommand(7))
        );
        assert!(parse_frame(b"GET / HTTP/1.1\r\n", Limits::PATH).is_err());
        // REPEAT INIT is two bytes: what follows is the next command.
        let two = [0, 9, 0, 0, 0, 0];
        let (f, used) = parse_frame(&two, Limits::SERVER).unwrap().unwrap();
        assert_eq!((f, used), (Frame::RepeatInit, 2));
        assert_eq!(
            parse_frame(&two[2..], Limits::SERVER).unwrap().unwrap().0,
            Frame::Close
        );
        // PATH REQ with or without its `00 00`.
        assert_eq!(
            parse_frame(&[0, 0x0C, 0, 0], Limits::SERVER)
                .unwrap()
                .unwrap()
                .0,
            Frame::PathRequest
        );
    }

    #[test]
    fn public_decoders_refuse_short_input_instead_of_panicking() {
        for short in [&[][..], &[0], &[0, 4], &[0, 4, 0]] {
            assert!(check_header(short, Limits::PATH).is_err(), "{short:?}");
        }
        for cmd in [
            cmd::START,
            cmd::RESUME,
            cmd::SYNC,
            cmd::STATUS,
            cmd::DATA,
            cmd::ENHANCED_DATA,
        ] {
            for len in 0..4 {
                let p = vec![0xAB; len];
                let r = decode_payload(cmd, &p);
                let needs_more = match cmd {
                    cmd::DATA => len < 2,
                    cmd::ENHANCED_DATA => true,
                    _ => len < 4,
                };
                assert_eq!(r.is_err(), needs_more, "0x{cmd:04X} with {len} bytes");
            }
        }
        assert!(decode_payload(0x7777, &[]).is_err());
    }

    #[test]
    fn a_payload_too_long_for_the_length_field_is_not_encoded() {
        let big = vec![0u8; 70_000];
        let mut out = vec![1, 2, 3];
        let e = Frame::Data {
            payload: &big,
            crc: 0,
        }
        .encode(&mut out);
        assert_eq!(
            e,
            Err(CodecError::TooLong {
                cmd: cmd::DATA,
                len: 70_002
            })
        );
        assert_eq!(out, [1, 2, 3], "nothing half-written");
        let max = vec![0u8; 65_533];
        assert!(Frame::Data {
            payload: &max,
            crc: 0
        }
        .encode(&mut out)
        .is_ok());
    }
}
