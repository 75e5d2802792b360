//! The vocabulary the session shares with storage: what a file is (from the
//! device's own words), how far into it a transfer is, and why storing failed.

use std::fmt;
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::codec::FileKind;

/// Bytes in one identifier-flow packet.
pub const PACKET_BYTES: u64 = 1024;

/// `video`, `photo` or `file`: what the identifier or path says the file is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Media {
    Video,
    Photo,
    File,
}

impl Media {
    pub fn name(self) -> &'static str {
        match self {
            Media::Video => "video",
            Media::Photo => "photo",
            Media::File => "file",
        }
    }
}

/// Which camera of a DualCam took the file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Camera {
    Front,
    Rear,
}

impl Camera {
    pub fn name(self) -> &'static str {
        match self {
            Camera::Front => "front",
            Camera::Rear => "rear",
        }
    }
}

/// A file the server asks for: the identifier sent back to the device, and
/// what the device's words say about it. Device text is never a path: storage
/// derives its own name from this (see `dashcam_storage::names`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileSpec {
    /// Sent in FILE REQ: `%videof`, or the device's path exactly as it sent it.
    pub identifier: Vec<u8>,
    /// `videof` for a DualCam identifier; None for a path.
    pub kind: Option<FileKind>,
    pub extension: &'static str,
    pub media: Media,
    /// None when the path does not say.
    pub camera: Option<Camera>,
}

impl FileSpec {
    pub fn dualcam(kind: FileKind) -> FileSpec {
        FileSpec {
            identifier: kind.identifier().as_bytes().to_vec(),
            kind: Some(kind),
            extension: if kind.is_video() { "h265" } else { "jpg" },
            media: if kind.is_video() {
                Media::Video
            } else {
                Media::Photo
            },
            camera: Some(if kind.is_front() {
                Camera::Front
            } else {
                Camera::Rear
            }),
        }
    }

    /// A path from a PATH (0x000D) frame, already checked by the session.
    /// Absolute paths, `..` and spaces are fine: the path is only an identifier.
    pub fn from_path(path: &[u8]) -> FileSpec {
        let text = String::from_utf8_lossy(path);
        let lower = text.to_ascii_lowercase();
        let lower = lower.trim_end_matches('\0');
        let last = lower.rsplit(['/', '\\']).next().unwrap_or_default();
        let ext = match last.rsplit_once('.') {
            Some((s, e)) if !s.is_empty() => e,
            _ => "",
        };
        let extension = match ext {
            "mp4" => "mp4",
            "h265" => "h265",
            "jpg" | "jpeg" => "jpg",
            _ if lower.contains("picture") => "jpg",
            _ => "bin",
        };
        let media = match extension {
            "mp4" | "h265" => Media::Video,
            "jpg" => Media::Photo,
            _ => Media::File,
        };
        let camera = if lower.contains("dualcam_front") {
            Some(Camera::Front)
        } else if lower.contains("dualcam_rear") {
            Some(Camera::Rear)
        } else {
            None
        };
        FileSpec {
            identifier: path.to_vec(),
            kind: None,
            extension,
            media,
            camera,
        }
    }

    /// The identifier as text, for logs and sidecars.
    pub fn display(&self) -> String {
        String::from_utf8_lossy(&self.identifier).into_owned()
    }
}

/// What START, RESUME and SYNC count.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Unit {
    /// 1024-byte packets, 1-based (identifier flow).
    Packets,
    /// Bytes, 0-based (path flow).
    Bytes,
}

impl Unit {
    pub fn name(self) -> &'static str {
        match self {
            Unit::Packets => "packets",
            Unit::Bytes => "bytes",
        }
    }
}

/// How long a file is, as START says it: `total` packets or bytes. Every
/// conversion between the protocol's offsets and bytes on disk goes through here.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Extent {
    pub unit: Unit,
    pub total: u32,
}

impl Extent {
    pub fn new(unit: Unit, total: u32) -> Extent {
        Extent { unit, total }
    }

    /// Most bytes the file can hold (exact in bytes; the last packet may be short).
    pub fn max_bytes(self) -> u64 {
        match self.unit {
            Unit::Packets => self.total as u64 * PACKET_BYTES,
            Unit::Bytes => self.total as u64,
        }
    }

    /// The exact size when START tells it (path flow only).
    pub fn exact_bytes(self) -> Option<u64> {
        match self.unit {
            Unit::Packets => None,
            Unit::Bytes => Some(self.total as u64),
        }
    }

    /// Could a file of `size` bytes be this one?
    pub fn fits(self, size: u64) -> bool {
        match self.unit {
            Unit::Packets => size > 0 && size.div_ceil(PACKET_BYTES) == self.total as u64,
            Unit::Bytes => size == self.total as u64,
        }
    }

    /// Every byte of the file is stored.
    pub fn is_complete(self, stored: u64) -> bool {
        match self.unit {
            Unit::Packets => stored > 0 && stored.div_ceil(PACKET_BYTES) >= self.total as u64,
            Unit::Bytes => stored == self.total as u64,
        }
    }

    /// Most bytes that can be kept for a resume: one unit short of the end, so
    /// the last packet (whose size is unknown in the identifier flow) comes again.
    pub fn keep_at_most(self) -> u64 {
        match self.unit {
            Unit::Packets => (self.total as u64).saturating_sub(1) * PACKET_BYTES,
            Unit::Bytes => (self.total as u64).saturating_sub(1),
        }
    }

    /// Offsets a resume may start at are multiples of this.
    pub fn align(self) -> u64 {
        match self.unit {
            Unit::Packets => PACKET_BYTES,
            Unit::Bytes => 1,
        }
    }

    /// The RESUME offset that continues after `stored` bytes (packet `n+1`, or bytes).
    pub fn resume_offset(self, stored: u64) -> u32 {
        match self.unit {
            Unit::Packets => (stored / PACKET_BYTES) as u32 + 1,
            Unit::Bytes => stored as u32,
        }
    }

    /// The byte a SYNC (or RESUME) offset points at, or None outside the file.
    /// In packets, 0 and 1 both mean the first packet.
    pub fn byte_of(self, offset: u32) -> Option<u64> {
        match self.unit {
            Unit::Packets if offset <= 1 => Some(0),
            Unit::Packets if offset <= self.total => Some((offset as u64 - 1) * PACKET_BYTES),
            Unit::Bytes if offset < self.total => Some(offset as u64),
            _ => None,
        }
    }

    /// Where the last unit of a file of `size` stored bytes begins: the part
    /// fetched again to confirm it is the same file.
    pub fn last_unit_from(self, size: u64) -> u64 {
        match self.unit {
            Unit::Packets => (self.total as u64).saturating_sub(1) * PACKET_BYTES,
            Unit::Bytes => size - size.min(PACKET_BYTES),
        }
    }

    /// Where a resume starts when `kept` bytes are on disk: one unit (a
    /// packet, or 1 KiB of bytes) before, so the camera sends that unit again
    /// and it is compared with what is kept before anything is appended.
    pub fn overlap_start(self, kept: u64) -> u64 {
        let from = kept.saturating_sub(PACKET_BYTES);
        from - from % self.align()
    }

    /// Is `n` file bytes a valid DATA payload at byte `stored`?
    pub fn accepts(self, stored: u64, n: u64) -> bool {
        match self.unit {
            Unit::Packets => {
                let last = stored / PACKET_BYTES + 1 == self.total as u64;
                n <= PACKET_BYTES && (last || n == PACKET_BYTES)
            }
            Unit::Bytes => stored + n <= self.total as u64,
        }
    }

    /// "packet 13 of 40" or "byte 12288 of 40960", for the unit at `stored`.
    pub fn position(self, stored: u64) -> String {
        match self.unit {
            Unit::Packets => format!("packet {} of {}", stored / PACKET_BYTES + 1, self.total),
            Unit::Bytes => format!("byte {} of {}", stored, self.total),
        }
    }

    /// "12288 of 20813 bytes" (a packet-counted file's size is known only at its end).
    pub fn kept(self, stored: u64) -> String {
        match self.unit {
            Unit::Packets => format!(
                "{} of up to {} bytes (packet {} of {})",
                stored,
                self.max_bytes(),
                stored / PACKET_BYTES,
                self.total
            ),
            Unit::Bytes => format!("{} of {} bytes", stored, self.total),
        }
    }
}

/// Why storage could not do what the session asked: each cause a variant a
/// caller (and a test) can match.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub enum StoreError {
    /// Another link of the same camera holds this file's partial.
    Busy,
    /// Too little free space (or the partials budget is spent).
    NoSpace { needed: u64, free: u64 },
    /// The file is larger than `--max-file-mb`.
    TooLarge { bytes: u64, limit: u64 },
    /// The bytes stored are not this file's (a confirm or resume check failed).
    NotSameFile(String),
    /// The bytes on disk do not give the CRC the camera sent.
    CrcMismatch { expected: u16, found: u16 },
    /// A camera or partial folder is a symlink or not a folder.
    Unsafe(String),
    /// Stopped on purpose before a step (a fault injected in tests): left
    /// exactly as a crash there would leave it.
    Interrupted(String),
    /// The write or publish step that failed, and the system's reason.
    Io {
        kind: std::io::ErrorKind,
        /// The step and the system's words, as one line for the log
        /// ("appending to index.jsonl: Permission denied (os error 13)").
        what: String,
        /// The system's error itself (its OS code, `raw_os_error`), kept as
        /// this error's `source`. Shared: a `StoreError` is cloned into a
        /// session's end.
        source: Option<Arc<std::io::Error>>,
    },
}

impl StoreError {
    /// The step `what` failed with the system's error `e`, kept as the
    /// source (a full disk is [`StoreError::NoSpace`]).
    pub fn io(what: impl fmt::Display, e: std::io::Error) -> StoreError {
        if is_no_space(&e) {
            return StoreError::NoSpace { needed: 0, free: 0 };
        }
        StoreError::Io {
            kind: e.kind(),
            what: format!("{what}: {e}"),
            source: Some(Arc::new(e)),
        }
    }

    /// A step that failed with no system error behind it.
    pub fn failed(kind: std::io::ErrorKind, what: impl Into<String>) -> StoreError {
        StoreError::Io {
            kind,
            what: what.into(),
            source: None,
        }
    }
}

/// Equal when the cause is: the same variant with the same words (an I/O
/// error's source is not compared; its kind and words are).
impl PartialEq for StoreError {
    fn eq(&self, other: &StoreError) -> bool {
        use StoreError::*;
        match (self, other) {
            (Busy, Busy) => true,
            (NoSpace { needed: a, free: b }, NoSpace { needed: c, free: d }) => (a, b) == (c, d),
            (TooLarge { bytes: a, limit: b }, TooLarge { bytes: c, limit: d }) => (a, b) == (c, d),
            (NotSameFile(a), NotSameFile(b))
            | (Unsafe(a), Unsafe(b))
            | (Interrupted(a), Interrupted(b)) => a == b,
            (
                CrcMismatch {
                    expected: a,
                    found: b,
                },
                CrcMismatch {
                    expected: c,
                    found: d,
                },
            ) => (a, b) == (c, d),
            (
                Io {
                    kind: a, what: b, ..
                },
                Io {
                    kind: c, what: d, ..
                },
            ) => (a, b) == (c, d),
            _ => false,
        }
    }
}

impl Eq for StoreError {}

/// ENOSPC or a quota: the disk is full for this process.
pub fn is_no_space(e: &std::io::Error) -> bool {
    matches!(
        e.kind(),
        std::io::ErrorKind::StorageFull | std::io::ErrorKind::QuotaExceeded
    )
}

impl fmt::Display for StoreError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StoreError::Busy => write!(f, "the file is being received on another link"),
            StoreError::NoSpace { needed: 0, .. } => write!(f, "no space left on the disk"),
            StoreError::NoSpace { needed, free } => write!(
                f,
                "not enough free space: {needed} bytes needed, {free} free (--min-free-mb)"
            ),
            StoreError::TooLarge { bytes, limit } => write!(
                f,
                "{bytes} bytes is more than --max-file-mb allows ({limit} bytes)"
            ),
            StoreError::NotSameFile(why) => write!(f, "not the same file: {why}"),
            StoreError::CrcMismatch { expected, found } => write!(
                f,
                "the stored bytes give CRC 0x{found:04X}, the camera's is 0x{expected:04X}"
            ),
            StoreError::Unsafe(why) => write!(f, "refused: {why}"),
            StoreError::Interrupted(what) => f.write_str(what),
            StoreError::Io { what, .. } => f.write_str(what),
        }
    }
}

impl std::error::Error for StoreError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            StoreError::Io {
                source: Some(e), ..
            } => Some(&**e),
            _ => None,
        }
    }
}

impl From<serde_json::Error> for StoreError {
    fn from(e: serde_json::Error) -> StoreError {
        StoreError::io("JSON", std::io::Error::from(e))
    }
}

impl From<std::io::Error> for StoreError {
    fn from(e: std::io::Error) -> StoreError {
        StoreError::io("I/O error", e)
    }
}

#[cfg(test)]
mod tests;

#[cfg(test)]
mod store_error_tests {
    use super::StoreError;
    use std::error::Error as _;

    #[test]
    fn an_io_error_keeps_the_systems_error_as_its_source() {
        let os = std::io::Error::from_raw_os_error(13);
        let e = StoreError::io("appending to index.jsonl", os);
        // One whole line for the log...
        assert!(
            e.to_string().starts_with("appending to index.jsonl: "),
            "{e}"
        );
        // ...and the OS error itself for a program.
        let src = e.source().expect("a source");
        let io = src.downcast_ref::<std::io::Error>().expect("an io::Error");
        assert_eq!(io.raw_os_error(), Some(13));
        // A clone (a session's end keeps one) keeps it too; equality is by
        // the cause's kind and words.
        assert_eq!(e.clone(), e);
        assert!(e.clone().source().is_some());
        // A full disk is its own cause.
        let full = std::io::Error::from(std::io::ErrorKind::StorageFull);
        assert_eq!(
            StoreError::io("writing", full),
            StoreError::NoSpace { needed: 0, free: 0 }
        );
    }
}
