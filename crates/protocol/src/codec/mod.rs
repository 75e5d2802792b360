//! The protocol's bytes and nothing else: no I/O, no clock, no file system.
//! Every layout of PROTOCOL-NOTES.md lives here.

pub mod container;
pub mod crc;
pub mod deframer;
pub mod foreign;
pub mod frame;
pub mod init;
pub mod metadata;
pub mod names;

pub use crc::crc16;
pub use deframer::{Deframer, Input};
pub use foreign::Foreign;
pub use frame::{cmd, command_name, parse_frame, Direction, Frame, Limits};
pub use init::{parse_init, FileKind, InitPacket, INIT_LEN, PATH_BIT};
pub use metadata::{Metadata, MetadataFormat};
pub use names::{status_name, Family};

use std::fmt;

/// Why bytes could not be read as the protocol: each cause a variant a
/// caller (and a test) can match; more may come.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum CodecError {
    /// The first bytes of a connection were not a camera's init packet:
    /// what they look like.
    NotACamera(Foreign),
    UnknownCommand(u16),
    BadLength {
        cmd: u16,
        len: usize,
    },
    /// Fewer bytes than the decoder needs (a caller handed a partial frame).
    Truncated {
        need: usize,
        have: usize,
    },
    /// A frame whose payload does not fit the 16-bit length field.
    TooLong {
        cmd: u16,
        len: usize,
    },
}

impl fmt::Display for CodecError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CodecError::NotACamera(what) => write!(f, "{what}"),
            CodecError::UnknownCommand(c) => write!(f, "unknown command 0x{c:04X}"),
            CodecError::Truncated { need, have } => {
                write!(f, "truncated: {need} bytes needed, {have} given")
            }
            CodecError::TooLong { cmd, len } => write!(
                f,
                "{} (0x{cmd:04X}) of {len} bytes does not fit a frame",
                command_name(*cmd).unwrap_or("command")
            ),
            CodecError::BadLength { cmd, len } => write!(
                f,
                "{} (0x{cmd:04X}) with invalid length {len}",
                command_name(*cmd).unwrap_or("command")
            ),
        }
    }
}

impl std::error::Error for CodecError {}

/// Uppercase hex with spaces, for logs and the decode command.
pub fn hex(bytes: &[u8]) -> String {
    use fmt::Write;
    let mut s = String::with_capacity(bytes.len() * 3);
    for (i, b) in bytes.iter().enumerate() {
        if i > 0 {
            s.push(' ');
        }
        let _ = write!(s, "{b:02X}");
    }
    s
}
