//! What a session is told and tells: its settings (Config, Mode), how files
//! are asked for (Flow), CRC conventions, the actions it hands storage, and its
//! counters.

use super::*;

/// Which cameras and flows the server serves (the reference's `--cam`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Per init: protocol >= 6 or bit 0x02 takes the path flow; DualCam bits the identifier flow.
    Auto,
    /// DualCam/DashCam only (`%videof` ...; the path flow on protocol >= 6).
    Dualcam,
    /// ADAS (MDAS9) only: the path flow.
    Adas,
    /// DSM only: the path flow.
    Dsm,
}

/// How files are asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Flow {
    /// FILE REQ `%videof` ...; START/RESUME/SYNC in 1024-byte packets, 1-based.
    Identifier,
    /// PATH REQ, then FILE REQ with the path; offsets in bytes, 0-based.
    Path,
}

impl Flow {
    pub fn name(self) -> &'static str {
        match self {
            Flow::Identifier => "identifier",
            Flow::Path => "path",
        }
    }
}

/// Where a device starts its CRC chain after a SYNC past the file's start.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Convention {
    /// From 0 after every SYNC (current firmware, the reference server since 0.2.5).
    Restart,
    /// From the previous packet's CRC (the document's reading, older firmware).
    Chained,
}

impl Convention {
    pub fn name(self) -> &'static str {
        match self {
            Convention::Restart => "restart",
            Convention::Chained => "chained",
        }
    }
}

#[derive(Debug, Clone)]
pub struct Config {
    pub mode: Mode,
    pub metadata: bool,
    pub metadata_timeout: Duration,
    /// A camera silent this long (no whole frame) is dropped.
    pub read_timeout: Duration,
    /// The init packet must arrive within this after the connect.
    pub init_timeout: Duration,
    /// A frame begun must be complete within this (slow senders are dropped).
    pub frame_timeout: Duration,
    /// RESUME is sent again when no SYNC comes within this.
    pub sync_timeout: Duration,
    /// RESUME resends before giving up.
    pub max_resends: u32,
    /// `--files`: the identifier-flow files wanted; reported ones first, then forced.
    pub files: Option<Vec<FileKind>>,
    /// Largest file accepted, in bytes.
    pub max_file_bytes: u64,
    pub allow: Option<HashSet<u64>>,
    /// Files asked for in one session.
    pub max_files: u32,
    /// CRC failures of one packet before its file is given up.
    pub max_crc_retries: u32,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            mode: Mode::Auto,
            metadata: false,
            metadata_timeout: Duration::from_secs(5),
            read_timeout: Duration::from_secs(120),
            init_timeout: Duration::from_secs(10),
            frame_timeout: Duration::from_secs(60),
            sync_timeout: Duration::from_secs(3),
            max_resends: 10,
            files: None,
            max_file_bytes: 512 << 20,
            allow: None,
            max_files: 1000,
            max_crc_retries: 8,
        }
    }
}

/// What the driver must do for the session, in order.
#[derive(Debug, Clone, PartialEq)]
pub enum Action {
    /// The camera's IMEI is known and admitted.
    Camera(u64),
    /// Open (or resume) the partial of a file; answer with [`Session::opened`].
    Open(OpenFile),
    /// Write the file bytes of the frame just handled, at this byte offset.
    /// `crc`: the CRC-16 chain the session checked them with, (from, to):
    /// `crc16(from, bytes) == to`, so storage, whose running CRC from 0
    /// equals `from` in an unbroken chain, need not compute it again.
    Write { offset: u64, crc: (u16, u16) },
    /// Keep only the first `len` stored bytes; answer with [`Session::rewound`]
    /// and the CRC (from 0) of what is kept.
    Rewind { len: u64 },
    /// Every byte is verified: check and publish; answer with [`Session::finished`].
    Finish(Box<FileRecord>),
    /// Stop writing the open file; keep what is stored for a later resume,
    /// with the CRC errors seen on this connection.
    Abandon { crc_errors: u32 },
    /// A file the server will not take (the camera is told; the session goes on
    /// with its other files, or ends with [`Action::End`]).
    Refused(Refusal),
    /// The session is over: send what is pending, then close the link.
    End(End),
}

/// What the driver reports after publishing a file.
#[derive(Debug, Clone, PartialEq)]
pub struct Published {
    pub path: String,
    pub size_bytes: u64,
    pub crc16: u16,
    /// The same file was already stored there: not stored again.
    pub duplicate: bool,
}

/// Counters for the summary line.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Stats {
    pub files_stored: u32,
    pub bytes_stored: u64,
    pub crc_errors: u32,
    pub files_failed: u32,
    /// Files the server already had (same identifier, size and SHA-256).
    pub files_duplicate: u32,
}
