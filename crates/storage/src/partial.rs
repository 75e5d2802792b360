//! A file being received: verified bytes on disk plus a small state file, so a
//! link that dies mid-file (or a server stop, even a crash) loses nothing
//! verified. Each download gets a new partial name; the state names what the
//! file is (identifier, unit, total, metadata time) and holds the SHA-256 of
//! the verified prefix, checked against the disk before a resume.

use std::fs;
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, Ordering};

use crate::error::{Ctx, Result, StoreError};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::{fsx, names, publish, sidecar, MetadataJson, Sha256Digest, Sidecar, Storage, Stored};
use dashcam_protocol::codec::{crc16, hex};
use dashcam_protocol::session::{FileRecord, OpenFile};

mod finish;

mod listing;
use listing::read_state;
pub(super) use listing::{list, Listed};

mod open;

const WRITE_BUFFER: usize = 64 * 1024;
const CLAIM_WAIT: std::time::Duration = std::time::Duration::from_secs(5);
/// The state (verified bytes and their SHA-256) is saved after this many
/// bytes, or [`CHECKPOINT_EVERY`] after the last save, whichever comes
/// first: a crash (a kill, a power cut) loses at most a megabyte or two
/// seconds of the camera's bytes, never the file. The state is written only
/// after the bytes it names were written to the file. (Each save is a few
/// system calls: every second for 10,000 slow cameras cost a measurable
/// share of a core; two seconds halves that.)
const CHECKPOINT: u64 = 1 << 20;
const CHECKPOINT_EVERY: std::time::Duration = std::time::Duration::from_secs(2);

/// Why a partial on disk was not resumed.
enum NoResume {
    TooOld,
    NothingVerified,
    Changed,
}

impl std::fmt::Display for NoResume {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            NoResume::TooOld => "older than --partial-max-age",
            NoResume::NothingVerified => {
                "no verified byte was recorded yet (stopped within two seconds of its start)"
            }
            NoResume::Changed => "its bytes on disk are not the ones recorded (changed or cut)",
        })
    }
}

/// What a partial is: two downloads with the same identity are the same file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(super) struct Identity {
    /// The identifier in hex: paths are device text.
    identifier_hex: String,
    unit: String,
    total: u32,
    /// The metadata timestamp, when metadata is on: two photos with the same
    /// size are still two files.
    meta_timestamp_ms: Option<u64>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub(super) struct State {
    identity: Identity,
    started_at: DateTime<Utc>,
    /// Bytes verified and on disk at the last checkpoint, and their SHA-256 and CRC.
    verified_bytes: u64,
    sha256: String,
    crc: u16,
    crc_errors: u32,
}

/// Reads `len` bytes of `file` from `from`, handing each chunk to `each`.
fn read_range(
    file: &mut fs::File,
    from: u64,
    len: u64,
    mut each: impl FnMut(&[u8]),
) -> io::Result<()> {
    file.seek(SeekFrom::Start(from))?;
    let mut buf = vec![0u8; WRITE_BUFFER];
    let mut r = (&mut *file).take(len);
    loop {
        let n = r.read(&mut buf)?;
        if n == 0 {
            return Ok(());
        }
        each(&buf[..n]);
    }
}

fn digest(h: &Sha256) -> Sha256Digest {
    Sha256Digest(h.clone().finalize().into())
}

fn sha_hex(h: &Sha256) -> String {
    digest(h).hex()
}

static COUNTER: AtomicU32 = AtomicU32::new(0);

/// A name no download has had: time, process and a counter.
fn unique_key(name: &str) -> String {
    let ns = Utc::now().timestamp_nanos_opt().unwrap_or_default();
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    format!("{name}-{ns:x}-{:x}-{n:x}", std::process::id())
}

pub struct Partial<'s> {
    storage: &'s Storage,
    imei: u64,
    key: String,
    part_path: PathBuf,
    state_path: PathBuf,
    file: Option<fs::File>,
    /// Verified bytes not yet written: one write per read from the camera
    /// (see [`Partial::idle`]), at most `WRITE_BUFFER`. Its capacity follows
    /// the camera's bursts, so a slow camera holds only a few KiB.
    pending: Vec<u8>,
    state: State,
    len: u64,
    crc: u16,
    sha: Sha256,
    checkpointed: u64,
    last_checkpoint: std::time::Instant,
    /// The state's JSON, kept between saves (no allocation per save).
    state_buf: Vec<u8>,
    /// The state file's length on disk, once known.
    state_len: Option<usize>,
    /// What the camera's bytes are for: appended, compared with a resumed
    /// partial's last unit first, or compared with a file already stored.
    mode: Mode,
    /// What dropping the partial does with what is on disk.
    fate: Fate,
    max_bytes: u64,
}

/// What a partial does with the camera's bytes.
enum Mode {
    /// Appending to its own file: a new download, or a resumed one whose
    /// repeated unit matched.
    Appending,
    /// Resumed: the camera sends the last unit kept (`tail`, at `from`)
    /// again, and it must match before anything new is appended, so a
    /// different file of the same name and size is never spliced on.
    Resuming { from: u64, tail: Vec<u8> },
    /// The camera offers a file already stored (same identifier, metadata
    /// time and size): only its end is fetched and compared; nothing is
    /// written.
    Confirming(Confirm),
}

/// What dropping a partial does with what is on disk.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Fate {
    /// Not finished: what was verified stays for a resume (nothing verified:
    /// removed).
    Keep,
    /// Worth nothing (a full disk, a prefix or CRC that does not match, a
    /// duplicate): removed.
    Discard,
    /// Finished: published, or left as a crash would leave it for the
    /// recovery pass.
    Done,
}

/// Comparing the end of an offered file with the stored one.
struct Confirm {
    existing: PathBuf,
    file: fs::File,
    size: u64,
    matched: bool,
}

impl Confirm {
    /// The camera's `bytes` at `offset` against the stored file's, with
    /// `len` bytes compared so far; returns the new count.
    fn compare(&mut self, len: u64, offset: u64, bytes: &[u8]) -> Result<u64> {
        let mut have = vec![0u8; bytes.len()];
        let same = self.file.seek(SeekFrom::Start(offset)).is_ok()
            && self.file.read_exact(&mut have).is_ok()
            && have == bytes;
        if !(same && offset == len) {
            self.matched = false;
            return Err(StoreError::NotSameFile(format!(
                "its bytes at {offset} differ from {}",
                self.existing.display()
            )));
        }
        Ok(offset + bytes.len() as u64)
    }
}

/// A resume's repeated unit (`tail`, kept at `from`) against the camera's
/// `bytes` at `offset`: an error when they differ where they overlap;
/// `Some(tail's length)` once the whole unit has been sent again and matched.
fn check_repeat(from: u64, tail: &[u8], offset: u64, bytes: &[u8]) -> Result<Option<usize>> {
    let end = from + tail.len() as u64;
    let (a, b) = (offset.max(from), (offset + bytes.len() as u64).min(end));
    if a < b {
        let got = &bytes[(a - offset) as usize..(b - offset) as usize];
        let kept = &tail[(a - from) as usize..(b - from) as usize];
        if got != kept {
            return Err(StoreError::NotSameFile(format!(
                "the bytes sent again at {from} differ from the partial's"
            )));
        }
    }
    Ok((b >= end).then_some(tail.len()))
}

impl<'s> Partial<'s> {
    fn writer(&mut self) -> io::Result<&mut fs::File> {
        self.file
            .as_mut()
            .ok_or_else(|| io::Error::other("the partial is closed"))
    }

    /// Writes what is pending.
    fn flush_pending(&mut self) -> io::Result<()> {
        if self.pending.is_empty() {
            return Ok(());
        }
        let file = self
            .file
            .as_mut()
            .ok_or_else(|| io::Error::other("the partial is closed"))?;
        if let Err(e) = file.write_all(&self.pending) {
            if fsx::is_no_space(&e) {
                // A full disk: this partial goes, so every other camera keeps working.
                self.fate = Fate::Discard;
            }
            return Err(e);
        }
        self.pending.clear();
        Ok(())
    }

    /// The camera has nothing more buffered. A slow camera's bytes are written
    /// now, and memory a burst left behind is given back; a fast camera's
    /// gather into writes of up to 64 KiB.
    pub fn idle(&mut self, fast: bool) -> io::Result<()> {
        if fast {
            return Ok(());
        }
        let burst = self.pending.len();
        self.flush_pending()?;
        let keep = (burst * 2).max(4096);
        if self.pending.capacity() > 2 * keep {
            self.pending.shrink_to(keep);
        }
        Ok(())
    }

    /// Bytes stored (and verified).
    pub fn stored(&self) -> u64 {
        self.len
    }

    pub fn started_at(&self) -> DateTime<Utc> {
        self.state.started_at
    }

    /// Appends verified bytes; `offset` must be what is stored. Bytes that
    /// should repeat what is kept (a resume's overlap, or the end of a file
    /// already stored) and do not: [`StoreError::NotSameFile`].
    pub fn write_at(&mut self, offset: u64, bytes: &[u8]) -> Result<()> {
        self.write_chained(offset, bytes, None)
    }

    /// [`Partial::write_at`] for bytes the session checked with its CRC
    /// chain `(from, to)` (`crc16(from, bytes) == to`): when the file's CRC
    /// from 0 is `from` (an unbroken chain from the start), it becomes `to`
    /// without a second pass over the bytes; otherwise it is computed.
    pub fn write_checked(&mut self, offset: u64, bytes: &[u8], crc: (u16, u16)) -> Result<()> {
        self.write_chained(offset, bytes, Some(crc))
    }

    fn write_chained(
        &mut self,
        offset: u64,
        bytes: &[u8],
        chain: Option<(u16, u16)>,
    ) -> Result<()> {
        match &mut self.mode {
            Mode::Confirming(c) => {
                self.len = c.compare(self.len, offset, bytes)?;
                return Ok(());
            }
            Mode::Resuming { from, tail } => {
                let from = *from;
                match check_repeat(from, tail, offset, bytes) {
                    Ok(None) => {}
                    Ok(Some(matched)) => {
                        log::info!(
                            "[{}] the {matched} bytes sent again at {from} match the partial: the same file, resuming",
                            self.imei,
                        );
                        self.mode = Mode::Appending;
                    }
                    Err(e) => {
                        // Not compared again: the session starts the file over.
                        self.mode = Mode::Appending;
                        return Err(e);
                    }
                }
            }
            Mode::Appending => {}
        }
        if offset != self.len {
            return Err(StoreError::failed(
                io::ErrorKind::InvalidInput,
                format!("write at {offset} but {} bytes are stored", self.len),
            ));
        }
        self.writer().ctx(|| "the partial")?;
        if self.pending.len() + bytes.len() > WRITE_BUFFER {
            self.flush_pending()?;
        }
        if bytes.len() >= WRITE_BUFFER {
            self.pending.extend_from_slice(bytes);
            self.flush_pending()?;
        } else {
            self.pending.extend_from_slice(bytes);
        }
        self.len += bytes.len() as u64;
        self.crc = match chain {
            Some((from, to)) if from == self.crc => to,
            _ => crc16(self.crc, bytes),
        };
        self.sha.update(bytes);
        self.storage.add_partial_bytes(bytes.len() as i64);
        if self.len - self.checkpointed >= CHECKPOINT
            || self.last_checkpoint.elapsed() >= CHECKPOINT_EVERY
        {
            self.checkpoint()?;
        }
        Ok(())
    }

    /// Flushes and records the verified length and hash in the state.
    fn checkpoint(&mut self) -> io::Result<()> {
        self.flush_pending()?;
        self.checkpointed = self.len;
        self.last_checkpoint = std::time::Instant::now();
        self.save_state().map_err(io::Error::other)
    }

    /// Keeps the first `len` bytes; returns their CRC from 0.
    pub fn rewind(&mut self, len: u64) -> io::Result<u16> {
        if let Mode::Confirming(c) = &mut self.mode {
            if len == 0 {
                // Not the stored file after all: download it whole.
                self.mode = Mode::Appending;
                self.start_fresh().map_err(io::Error::other)?;
                return Ok(0);
            }
            let mut crc = 0u16;
            read_range(&mut c.file, 0, len, |b| crc = crc16(crc, b))?;
            c.matched &= len <= self.len;
            self.len = len;
            return Ok(crc);
        }
        if len == 0 {
            // Starting over: nothing kept is compared any more.
            self.mode = Mode::Appending;
        }
        if len == self.len {
            return Ok(self.crc);
        }
        if len > self.len {
            return Err(io::Error::other(format!(
                "cannot keep {len} bytes: only {} are stored",
                self.len
            )));
        }
        self.flush_pending()?;
        let f = self.writer()?;
        f.set_len(len)?;
        let mut crc = 0u16;
        let mut sha = Sha256::new();
        read_range(f, 0, len, |b| {
            crc = crc16(crc, b);
            sha.update(b);
        })?;
        f.seek(SeekFrom::Start(len))?;
        self.storage.add_partial_bytes(len as i64 - self.len as i64);
        self.len = len;
        self.crc = crc;
        self.sha = sha;
        self.checkpointed = self.checkpointed.min(len);
        self.save_state().map_err(io::Error::other)?;
        Ok(crc)
    }

    /// Keeps what is stored for a later resume, with this connection's CRC errors.
    pub fn abandon(mut self, crc_errors: u32) {
        self.state.crc_errors += crc_errors;
    }
}

fn claim_within(storage: &Storage, part: &Path) -> bool {
    // A reconnecting camera's older link may still be letting go of the partial.
    let deadline = std::time::Instant::now() + CLAIM_WAIT;
    while !storage.claim(part) {
        if std::time::Instant::now() > deadline {
            return false;
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    true
}

impl Drop for Partial<'_> {
    /// Not finished: keep what was verified (and say so in the state), or
    /// remove it when it is worth nothing.
    fn drop(&mut self) {
        if matches!(self.mode, Mode::Confirming(_)) {
            // Nothing was written: nothing to keep or remove.
            return;
        }
        match self.fate {
            Fate::Discard => self.remove(),
            Fate::Keep if self.len == 0 => self.remove(),
            Fate::Keep => self.keep(),
            Fate::Done => self.storage.release(&self.part_path),
        }
    }
}

impl Partial<'_> {
    /// Dropped worth nothing: the partial and its state go.
    fn remove(&mut self) {
        self.file = None;
        let size = fs::symlink_metadata(&self.part_path).map_or(0, |m| m.len());
        let _ = fs::remove_file(&self.part_path);
        let _ = fs::remove_file(&self.state_path);
        self.storage.add_partial_bytes(-(size as i64));
        self.storage.release(&self.part_path);
        self.storage.tidy_camera_dir(self.imei);
    }

    /// Dropped unfinished: what was verified is flushed and recorded.
    fn keep(&mut self) {
        let flushed = self.flush_pending();
        self.file = None;
        if let Err(e) = flushed {
            log::warn!("{}: could not flush the partial: {e}", self.imei);
            return self.storage.release(&self.part_path);
        }
        if let Err(e) = self.save_state() {
            log::warn!("{}: could not save partial state: {e:#}", self.imei);
        }
        self.storage.release(&self.part_path);
    }
}
