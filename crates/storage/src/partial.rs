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

/// A partial found on disk (for sweeping and the size cap).
pub(super) struct Listed {
    pub part: PathBuf,
    pub state: PathBuf,
    pub size: u64,
    pub started_ms: i64,
}

impl Listed {
    pub fn stale(&self, max_age: std::time::Duration) -> bool {
        let age_ms = Utc::now().timestamp_millis() - self.started_ms;
        age_ms < 0 || age_ms as u128 >= max_age.as_millis()
    }

    /// Removes the partial and its state; returns how many files went.
    pub fn remove(&self) -> usize {
        fs::remove_file(&self.part).is_ok() as usize + fs::remove_file(&self.state).is_ok() as usize
    }
}

fn read_state(path: &Path) -> Option<State> {
    fsx::read_json(path, 64 * 1024)
}

/// Every partial in a `.partial` folder. A `.part` without a state is listed
/// with start time 0, so it is the first to go.
pub(super) fn list(pdir: &Path) -> Vec<Listed> {
    let Ok(entries) = fs::read_dir(pdir) else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for e in entries.flatten() {
        let p = e.path();
        if p.extension().is_none_or(|x| x != "part") {
            continue;
        }
        let state = p.with_extension("state");
        let size = fs::symlink_metadata(&p).map(|m| m.len()).unwrap_or(0);
        let started_ms = read_state(&state).map_or(0, |s| s.started_at.timestamp_millis());
        out.push(Listed {
            part: p,
            state,
            size,
            started_ms,
        });
    }
    // States without their .part (a crash between two removals): list them too.
    if let Ok(entries) = fs::read_dir(pdir) {
        for e in entries.flatten() {
            let p = e.path();
            if p.extension().is_some_and(|x| x == "state")
                && !fsx::exists(&p.with_extension("part"))
                && !fsx::exists(&p.with_extension("publish"))
            {
                out.push(Listed {
                    part: p.with_extension("part"),
                    state: p,
                    size: 0,
                    started_ms: 0,
                });
            }
        }
    }
    out
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
    /// Remove it all when dropped (a full disk, a prefix that does not match).
    discard: bool,
    finished: bool,
    /// Set when the camera offers a file already stored (same identifier,
    /// metadata time and size): only its end is fetched and compared.
    confirm: Option<Confirm>,
    /// After a resume: the last unit kept (its offset and bytes). The camera
    /// sends it again and it must match before anything new is appended, so a
    /// different file of the same name and size is never spliced on.
    expect: Option<(u64, Vec<u8>)>,
    max_bytes: u64,
}

/// Comparing the end of an offered file with the stored one.
struct Confirm {
    existing: PathBuf,
    file: fs::File,
    size: u64,
    matched: bool,
}

impl<'s> Partial<'s> {
    pub(super) fn open(storage: &'s Storage, imei: u64, open: &OpenFile) -> Result<Partial<'s>> {
        // Over 80 lines: fresh, resumed and confirming partials are still one
        // function with flags; `Partial` as an `enum Mode` (issue 27 item 5)
        // splits it.
        let (_, pdir) = storage.camera_dirs(imei)?;
        let identity = Identity {
            identifier_hex: hex(&open.spec.identifier),
            unit: open.unit.name().to_string(),
            total: open.total,
            meta_timestamp_ms: open.meta_timestamp_ms,
        };
        let max_bytes = open.extent().max_bytes();
        // Resume a partial of the same file, if one is there and still good.
        for listed in list(&pdir) {
            let Some(state) = read_state(&listed.state) else {
                continue;
            };
            if state.identity != identity {
                continue;
            }
            // Claimed first: an older link of this camera may still be
            // letting go (and saving its state). The state is read again once
            // the partial is ours.
            if !claim_within(storage, &listed.part) {
                return Err(StoreError::Busy);
            }
            let Some(state) = read_state(&listed.state).filter(|s| s.identity == identity) else {
                storage.release(&listed.part);
                continue;
            };
            let key = listed
                .part
                .file_stem()
                .map(|s| s.to_string_lossy().into_owned())
                .unwrap_or_default();
            let mut p = Partial::new(storage, imei, &pdir, key, state);
            match p.try_resume(open) {
                Ok(Ok(())) => return Ok(p),
                Ok(Err(why)) => {
                    log::info!(
                        "[{imei}] partial {} cannot be resumed ({why}): starting over",
                        p.part_path.display()
                    );
                    p.discard = true;
                    drop(p);
                }
                Err(e) => {
                    log::info!(
                        "[{imei}] partial {} cannot be resumed ({e}): starting over",
                        p.part_path.display()
                    );
                    p.discard = true;
                    drop(p);
                }
            }
        }
        let mut p = Partial::new(
            storage,
            imei,
            &pdir,
            unique_key(&names::stem(&open.spec)),
            State {
                identity,
                started_at: Utc::now(),
                verified_bytes: 0,
                sha256: String::new(),
                crc: 0,
                crc_errors: 0,
            },
        );
        p.max_bytes = max_bytes;
        if let Some(ts) = open.meta_timestamp_ms {
            let id = open.spec.display();
            if let Some((existing, size)) = storage.known.find_by_time(storage, imei, &id, ts, open)
            {
                let file = fsx::open_read(&existing)?;
                let from = open.extent().last_unit_from(size);
                log::info!(
                    "[{imei}] {id} looks like {} (same metadata time and size): fetching its last {} bytes to confirm",
                    existing.display(),
                    size - from
                );
                p.len = from;
                p.confirm = Some(Confirm {
                    existing,
                    file,
                    size,
                    matched: true,
                });
                return Ok(p);
            }
        }
        p.start_fresh()?;
        Ok(p)
    }

    /// A new, empty partial (under this partial's unique name).
    fn start_fresh(&mut self) -> Result<()> {
        self.storage.check_space(self.max_bytes)?;
        self.storage
            .make_room_for_partial(self.imei, self.max_bytes);
        self.storage.claim(&self.part_path);
        let f = match fsx::create_new(&self.part_path) {
            // Its empty folder was just tidied away by another link of the
            // same camera: made again.
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                self.storage.camera_dirs(self.imei)?;
                fsx::create_new(&self.part_path)
            }
            r => r,
        }
        .ctx(|| format!("creating {}", self.part_path.display()))?;
        self.file = Some(f);
        self.state.started_at = Utc::now();
        self.len = 0;
        self.crc = 0;
        self.sha = Sha256::new();
        self.checkpointed = 0;
        self.save_state()
    }

    fn new(storage: &'s Storage, imei: u64, pdir: &Path, key: String, state: State) -> Partial<'s> {
        Partial {
            storage,
            imei,
            part_path: pdir.join(format!("{key}.part")),
            state_path: pdir.join(format!("{key}.state")),
            key,
            file: None,
            state,
            len: 0,
            crc: 0,
            sha: Sha256::new(),
            checkpointed: 0,
            last_checkpoint: std::time::Instant::now(),
            state_buf: Vec::new(),
            state_len: None,
            pending: Vec::new(),
            discard: false,
            finished: false,
            confirm: None,
            expect: None,
            max_bytes: 0,
        }
    }

    /// Young enough, and the verified prefix on disk hashes to the state's
    /// SHA-256: keep it (cut to what may be kept). The partial's time is
    /// never refreshed here.
    fn try_resume(&mut self, open: &OpenFile) -> Result<std::result::Result<(), NoResume>> {
        let age = Utc::now() - self.state.started_at;
        if age.num_milliseconds() < 0
            || age.to_std().unwrap_or_default() > self.storage.cfg.partial_max_age
        {
            return Ok(Err(NoResume::TooOld));
        }
        let verified = self.state.verified_bytes;
        let mut file = fsx::open_rw(&self.part_path)?;
        if verified == 0 {
            return Ok(Err(NoResume::NothingVerified));
        }
        if file.metadata()?.len() < verified {
            return Ok(Err(NoResume::Changed));
        }
        let extent = open.extent();
        let keep = verified.min(extent.keep_at_most());
        let keep = keep - keep % extent.align();
        if keep == 0 {
            return Ok(Err(NoResume::NothingVerified));
        }
        // The last unit kept is fetched again and compared (see `expect`).
        let overlap = extent.overlap_start(keep);
        // One pass: the hash of the whole verified prefix, and the CRC and
        // hash of what is kept.
        let mut sha = Sha256::new();
        let (mut kept_sha, mut kept_crc) = (None, 0u16);
        let mut crc = 0u16;
        let mut buf = vec![0u8; WRITE_BUFFER];
        let mut pos = 0u64;
        file.seek(SeekFrom::Start(0))?;
        while pos < verified {
            if pos == overlap {
                kept_sha = Some(sha.clone());
                kept_crc = crc;
            }
            let want = ((verified - pos) as usize).min(buf.len());
            let want = if pos < overlap {
                want.min((overlap - pos) as usize)
            } else {
                want
            };
            file.read_exact(&mut buf[..want])?;
            sha.update(&buf[..want]);
            crc = crc16(crc, &buf[..want]);
            pos += want as u64;
        }
        if pos == overlap {
            kept_sha = Some(sha.clone());
            kept_crc = crc;
        }
        if sha_hex(&sha) != self.state.sha256 || crc != self.state.crc {
            return Ok(Err(NoResume::Changed));
        }
        let Some(kept_sha) = kept_sha else {
            return Ok(Err(NoResume::Changed));
        };
        let mut tail = vec![0u8; (keep - overlap) as usize];
        file.seek(SeekFrom::Start(overlap))?;
        file.read_exact(&mut tail)?;
        let old_len = file.metadata()?.len();
        if old_len != overlap {
            file.set_len(overlap)?;
            self.storage
                .add_partial_bytes(overlap as i64 - old_len as i64);
        }
        file.seek(SeekFrom::Start(overlap))?;
        self.file = Some(file);
        self.len = overlap;
        self.crc = kept_crc;
        self.sha = kept_sha;
        self.checkpointed = overlap;
        self.expect = (!tail.is_empty()).then_some((overlap, tail));
        Ok(Ok(()))
    }

    fn save_state(&mut self) -> Result<()> {
        self.state.verified_bytes = self.len;
        // The hex digest and the JSON into buffers this partial keeps: a
        // slow camera saves its state every 2 s, with no allocation.
        digest(&self.sha).write_hex(&mut self.state.sha256);
        self.state.crc = self.crc;
        let mut body = std::mem::take(&mut self.state_buf);
        body.clear();
        serde_json::to_writer(&mut body, &self.state).ctx(|| "partial state")?;
        // Written in place (no new file, no rename per checkpoint: creating
        // a file costs more than the megabyte it records). Padded with spaces
        // (valid after JSON) to the file's length, so it is never cut; a
        // state torn by a power cut fails to parse and the file starts over.
        let known = self.state_len;
        let written = match fsx::open_rw(&self.state_path) {
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                fsx::create_new(&self.state_path).map(|f| (f, Some(0)))
            }
            r => r.map(|f| (f, known)),
        }
        .and_then(|(mut f, known)| {
            let old = match known {
                Some(n) => n,
                None => f.metadata()?.len() as usize,
            };
            if body.len() < old {
                body.resize(old, b' ');
            }
            f.write_all(&body)?;
            Ok(body.len())
        });
        let r = match written {
            Ok(n) => {
                self.state_len = Some(n);
                Ok(())
            }
            Err(e) => Err(e).ctx(|| format!("writing {}", self.state_path.display())),
        };
        self.state_buf = body;
        r
    }

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
                self.discard = true;
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
        if let Some(c) = &mut self.confirm {
            let mut have = vec![0u8; bytes.len()];
            let same = c.file.seek(SeekFrom::Start(offset)).is_ok()
                && c.file.read_exact(&mut have).is_ok()
                && have == bytes;
            if !(same && offset == self.len) {
                c.matched = false;
                return Err(StoreError::NotSameFile(format!(
                    "its bytes at {offset} differ from {}",
                    c.existing.display()
                )));
            }
            self.len = offset + bytes.len() as u64;
            return Ok(());
        }
        if let Some((from, tail)) = &self.expect {
            let end = from + tail.len() as u64;
            let (a, b) = (offset.max(*from), (offset + bytes.len() as u64).min(end));
            if a < b {
                let got = &bytes[(a - offset) as usize..(b - offset) as usize];
                let kept = &tail[(a - from) as usize..(b - from) as usize];
                if got != kept {
                    let from = *from;
                    self.expect = None;
                    return Err(StoreError::NotSameFile(format!(
                        "the bytes sent again at {from} differ from the partial's"
                    )));
                }
            }
            if b >= end {
                log::info!(
                    "[{}] the {} bytes sent again at {from} match the partial: the same file, resuming",
                    self.imei,
                    tail.len()
                );
                self.expect = None;
            }
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
        if let Some(c) = &mut self.confirm {
            if len == 0 {
                // Not the stored file after all: download it whole.
                self.confirm = None;
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
            self.expect = None;
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

    /// `finish` of a file already stored, of which only the end was fetched
    /// again: a duplicate recorded when the end matches, else not the same
    /// file (downloaded whole next time).
    fn finish_confirm(mut self, c: Confirm, record: &FileRecord, remote: &str) -> Result<Stored> {
        self.finished = true;
        if c.matched && self.len == c.size {
            // The stored file's own digests: from its sidecar, or
            // computed again when the sidecar is gone.
            let stored_sc: Option<Sidecar> =
                fsx::read_json(&c.existing.with_extension("json"), 4 << 20);
            let (sha, crc) = match stored_sc {
                Some(old) => (old.sha256, old.crc16),
                None => {
                    let (mut sha, mut crc) = (Sha256::new(), 0u16);
                    let mut f = c.file;
                    read_range(&mut f, 0, c.size, |b| {
                        sha.update(b);
                        crc = crc16(crc, b);
                    })?;
                    (digest(&sha), crc)
                }
            };
            let mut sc = self.sidecar(record, remote, sha);
            sc.crc16 = crc;
            sc.size_bytes = c.size;
            return publish::record_duplicate(self.storage, self.imei, &c.existing, sc);
        }
        self.storage.known.forget_time(self.imei, &c.existing);
        Err(StoreError::NotSameFile(format!(
            "its last bytes differ from {}; it will be downloaded whole next time",
            c.existing.display()
        )))
    }

    /// The camera's CRC over the end of the file (from `record.check.from`)
    /// against the bytes stored; a mismatch discards the partial.
    fn check_device_crc(&mut self, file: &mut fs::File, record: &FileRecord) -> Result<()> {
        let check = record.check;
        let device_crc = if check.from == 0 {
            self.crc
        } else {
            let mut crc = 0u16;
            let len = self.len.saturating_sub(check.from);
            read_range(file, check.from, len, |b| crc = crc16(crc, b))?;
            crc
        };
        if device_crc != check.crc {
            self.discard = true;
            log::warn!(
                "[{}] the stored bytes from offset {} have CRC 0x{device_crc:04X}, the camera's chain says 0x{:04X}: discarded",
                self.imei,
                check.from,
                check.crc
            );
            return Err(StoreError::CrcMismatch {
                expected: check.crc,
                found: device_crc,
            });
        }
        Ok(())
    }

    /// Checks the camera's CRC over the end of the file, then publishes the
    /// file with its sidecar and index line (or, when the same file is
    /// already stored, only an index line that says so).
    pub fn finish(mut self, record: &FileRecord, remote: &str) -> Result<Stored> {
        if let Some(c) = self.confirm.take() {
            return self.finish_confirm(c, record, remote);
        }
        // The whole file is verified: say so in the state first, so a stop
        // during the publish leaves a partial that resumes at its end.
        self.checkpoint()?;
        let mut file = self
            .file
            .take()
            .ok_or_else(|| io::Error::other("the partial is closed"))?;
        self.check_device_crc(&mut file, record)?;
        let mut sc = self.sidecar(record, remote, digest(&self.sha));
        // What is inside, by its first bytes (a container's chunk headers only).
        match crate::media::inspect(&self.part_path) {
            Ok(info) => sc.media_info = Some(info),
            Err(e) => log::warn!("[{}] could not look inside the file: {e}", self.imei),
        }
        if record.start_field != 0 {
            log::info!(
                "[{}] START's field 0x{:04X} {} the file's CRC-16 0x{:04X} (a diagnostic only)",
                self.imei,
                record.start_field,
                if record.start_field == self.crc {
                    "matches"
                } else {
                    "differs from"
                },
                self.crc
            );
        }
        if let Some(existing) = self.storage.known.find(self.storage, self.imei, &sc) {
            drop(file);
            let stored = publish::record_duplicate(self.storage, self.imei, &existing, sc)?;
            self.discard = true;
            return Ok(stored);
        }
        if let Err(e) = self.storage.fault(publish::PublishStep::SyncPartial) {
            self.finished = true;
            return Err(e);
        }
        file.sync_all()?;
        drop(file);
        let meta_time = record
            .metadata
            .as_ref()
            .and_then(|(_, m)| m.timestamp_ms)
            .and_then(sidecar::from_millis);
        let name_time = meta_time.unwrap_or(self.state.started_at);
        let stem = format!(
            "{}_{}",
            name_time.format("%Y%m%d_%H%M%S"),
            names::stem(&record.spec)
        );
        let size = self.len;
        let result = publish::publish(
            self.storage,
            self.imei,
            &self.key,
            &stem,
            record.spec.extension,
            sc,
        );
        match result {
            Ok(stored) => {
                self.finished = true;
                self.storage.add_partial_bytes(-(size as i64));
                Ok(stored)
            }
            Err(e) => {
                // Stopped part-way (a crash, in tests): leave everything as a
                // crash would, for the recovery pass.
                self.finished = true;
                Err(e)
            }
        }
    }

    fn sidecar(&self, record: &FileRecord, remote: &str, sha256: Sha256Digest) -> Sidecar {
        Sidecar {
            imei: self.imei.to_string(),
            file: record.spec.display(),
            family: record.family,
            flow: record.flow,
            media: record.spec.media,
            camera: record.spec.camera,
            size_bytes: self.len,
            unit: record.unit,
            start_total: record.start_total,
            start_field: (record.start_field != 0).then_some(record.start_field),
            data_frames: record.data_frames,
            crc16: self.crc,
            sha256,
            crc_errors: self.state.crc_errors + record.crc_errors,
            crc_convention: record.convention,
            protocol_id: record.protocol_id,
            remote_addr: remote.to_string(),
            started_at: sidecar::rfc3339(self.state.started_at),
            completed_at: sidecar::rfc3339(Utc::now()),
            resumed_from_byte: record.resumed_from,
            metadata: record
                .metadata
                .as_ref()
                .map(|(raw, m)| MetadataJson::new(record.family, raw, m)),
            media_info: None,
            mp4: None,
            conversion_error: None,
            duplicate_of: None,
            removed_locally: Vec::new(),
            uploaded: Vec::new(),
        }
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
        if self.confirm.is_some() {
            // Nothing was written: nothing to keep or remove.
            return;
        }
        if !self.finished && (self.discard || self.len == 0) {
            self.file = None;
            let size = fs::symlink_metadata(&self.part_path).map_or(0, |m| m.len());
            let _ = fs::remove_file(&self.part_path);
            let _ = fs::remove_file(&self.state_path);
            self.storage.add_partial_bytes(-(size as i64));
            self.storage.release(&self.part_path);
            return self.storage.tidy_camera_dir(self.imei);
        } else if !self.finished {
            let flushed = self.flush_pending();
            self.file = None;
            if let Err(e) = flushed {
                log::warn!("{}: could not flush the partial: {e}", self.imei);
                return self.storage.release(&self.part_path);
            }
            if let Err(e) = self.save_state() {
                log::warn!("{}: could not save partial state: {e:#}", self.imei);
            }
        }
        self.storage.release(&self.part_path);
    }
}
