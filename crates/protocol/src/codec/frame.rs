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
mod tests;
