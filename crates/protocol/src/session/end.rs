//! How a session ended, each reason a variant a caller and a test can match.

use std::fmt;

use crate::codec::{status_name, CodecError};
use crate::file::StoreError;

/// How a session ended.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum End {
    Completed,
    /// The peer is not a camera (a scanner, a port check, a TLS client on a plain port).
    NotACamera(NotACamera),
    NotAllowed,
    /// The device sent STATUS 0x11 (it disconnects after it).
    DeviceStatus(u32),
    Refused(Refusal),
    Protocol(ProtocolError),
    /// The link closed or failed; the system's words.
    LinkLost(String),
    TimedOut(Timeout),
    GaveUp(GiveUp),
    Storage(StoreError),
    Shutdown,
    /// The server failed (a bug): what it said.
    Internal(String),
}

/// Why a connection was taken for something other than a camera.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum NotACamera {
    /// The first bytes did not parse as a camera's (an HTTP probe...).
    Codec(CodecError),
    /// A frame came before the init packet.
    FrameBeforeInit(&'static str),
    /// The PROXY header of a load balancer was wrong.
    Proxy(String),
    /// The TLS handshake failed.
    Tls(String),
}

/// What the server refused to do, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Refusal {
    /// A PATH the server will not send back (too long, NUL inside, not printable).
    Path { shown: String, why: &'static str },
    /// START announces more than `--max-file-mb`.
    TooLarge {
        file: String,
        bytes: u64,
        limit: u64,
    },
    /// Too many connections from one address (`--max-per-ip`).
    MaxPerIp,
    /// Too many connections (`--max-connections`).
    MaxConnections,
}

/// The camera broke the protocol.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum ProtocolError {
    Codec(CodecError),
    UnexpectedInit,
    ImeiChanged(u64),
    /// A frame that does not fit the conversation.
    Unexpected {
        expected: &'static str,
        got: &'static str,
    },
    /// A frame where the repeated init packet was due.
    NotRepeatedInit(&'static str),
    /// This many DATA frames without the SYNC after a RESUME.
    NoSyncInFlight(u32),
}

/// Which deadline passed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Timeout {
    /// No init packet within `--init-timeout`.
    Init,
    /// A frame begun was not complete within `--frame-timeout`.
    Frame,
    /// No byte within `--read-timeout`.
    Silent,
}

/// Why the server stopped trying (the partial is kept).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum GiveUp {
    /// No SYNC after this many RESUMEs.
    NoSync { file: String, resumes: u32 },
    /// Every SYNC was ahead of the RESUME or outside the file.
    SyncNeverMatched { file: String },
}

impl fmt::Display for End {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            End::Completed => write!(f, "completed"),
            End::NotACamera(why) => write!(f, "not a camera: {why}"),
            End::NotAllowed => write!(f, "IMEI not in the allow-list"),
            End::DeviceStatus(c) => write!(f, "device status 0x{c:02X} ({})", status_name(*c)),
            End::Refused(why) => write!(f, "refused: {why}"),
            End::Protocol(why) => write!(f, "protocol error: {why}"),
            End::LinkLost(why) => write!(f, "link lost: {why}"),
            End::TimedOut(t) => write!(f, "timed out: {t}"),
            End::GaveUp(why) => write!(f, "gave up: {why}"),
            End::Storage(why) => write!(f, "storage error: {why}"),
            End::Shutdown => write!(f, "server shutting down"),
            End::Internal(what) => write!(f, "internal error (a bug): {what}"),
        }
    }
}

impl NotACamera {
    /// A label for metrics: what the peer looked like (`avl`, `tls`,
    /// `http`, `rdp`, `ssh`, `other`; `proxy` for a bad PROXY header,
    /// `tls_handshake` for a handshake that failed on the TLS port).
    pub fn kind(&self) -> &'static str {
        match self {
            NotACamera::Codec(CodecError::NotACamera(what)) => what.kind(),
            NotACamera::Codec(_) | NotACamera::FrameBeforeInit(_) => "other",
            NotACamera::Proxy(_) => "proxy",
            NotACamera::Tls(_) => "tls_handshake",
        }
    }
}

impl fmt::Display for NotACamera {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            NotACamera::Codec(e) => write!(f, "{e}"),
            NotACamera::FrameBeforeInit(name) => write!(f, "{name} before the init packet"),
            NotACamera::Proxy(e) => write!(f, "PROXY protocol: {e}"),
            NotACamera::Tls(e) => write!(f, "TLS handshake failed: {e}"),
        }
    }
}

impl fmt::Display for Refusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Refusal::Path { shown, why } => write!(f, "path \"{shown}\": {why}"),
            Refusal::TooLarge { file, bytes, limit } => write!(
                f,
                "{file} announces up to {} MiB, over the --max-file-mb limit of {} MiB",
                bytes >> 20,
                limit >> 20
            ),
            Refusal::MaxPerIp => write!(f, "too many connections from one address (--max-per-ip)"),
            Refusal::MaxConnections => write!(f, "too many connections (--max-connections)"),
        }
    }
}

impl fmt::Display for ProtocolError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ProtocolError::Codec(e) => write!(f, "{e}"),
            ProtocolError::UnexpectedInit => write!(f, "unexpected init packet"),
            ProtocolError::ImeiChanged(imei) => {
                write!(f, "IMEI changed to {imei} after REPEAT INIT")
            }
            ProtocolError::Unexpected { expected, got } => {
                write!(f, "expected {expected}, got {got}")
            }
            ProtocolError::NotRepeatedInit(got) => {
                write!(f, "{got} instead of the repeated init packet")
            }
            ProtocolError::NoSyncInFlight(n) => {
                write!(f, "{n} DATA frames without the SYNC after RESUME")
            }
        }
    }
}

impl fmt::Display for Timeout {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Timeout::Init => "no init packet in time (--init-timeout)",
            Timeout::Frame => "a frame took too long to arrive (--frame-timeout)",
            Timeout::Silent => "the camera went silent (--read-timeout)",
        })
    }
}

impl fmt::Display for GiveUp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            GiveUp::NoSync { file, resumes } => write!(
                f,
                "no SYNC after {resumes} RESUMEs for {file}; partial kept for a later resume"
            ),
            GiveUp::SyncNeverMatched { file } => {
                write!(f, "SYNC never matched the RESUME for {file}")
            }
        }
    }
}
