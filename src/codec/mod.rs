//! The protocol's bytes and nothing else: no I/O, no clock, no file system.
//! Every layout of PROTOCOL-NOTES.md lives here.

pub mod crc;
pub mod frame;
pub mod init;
pub mod metadata;

pub use crc::crc16;
pub use frame::{check_header, cmd, command_name, decode_payload, parse_frame, Frame};
pub use init::{parse_init, FileKind, InitPacket, INIT_LEN};
pub use metadata::Metadata;

use std::fmt;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CodecError {
    /// The first two bytes of a connection were not 0x0000.
    NotACamera([u8; 2]),
    UnknownCommand(u16),
    BadLength {
        cmd: u16,
        len: usize,
    },
}

impl fmt::Display for CodecError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CodecError::NotACamera(h) => write!(
                f,
                "not a camera: init header {:02X} {:02X} ({:?}) instead of 00 00",
                h[0],
                h[1],
                String::from_utf8_lossy(h)
            ),
            CodecError::UnknownCommand(c) => write!(f, "unknown command 0x{c:04X}"),
            CodecError::BadLength { cmd, len } => write!(
                f,
                "{} (0x{cmd:04X}) with invalid length {len}",
                command_name(*cmd).unwrap_or("command")
            ),
        }
    }
}

impl std::error::Error for CodecError {}

/// Device status codes (STATUS 0x0005), named as in the vendor document.
pub fn status_name(code: u32) -> &'static str {
    match code {
        0x00 => "COMPLETED (file transfer process completed)",
        0x02 => "failed to close GPRS",
        0x03 => "failed to close socket",
        0x05 => "invalid response from server to init packet",
        0x11 => "camera not configured or requested file not available",
        _ => "undocumented status",
    }
}

/// Uppercase hex with spaces, for logs and the decode command.
pub fn hex(bytes: &[u8]) -> String {
    let mut s = String::with_capacity(bytes.len() * 3);
    for (i, b) in bytes.iter().enumerate() {
        if i > 0 {
            s.push(' ');
        }
        s.push_str(&format!("{b:02X}"));
    }
    s
}
