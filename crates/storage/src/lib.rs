//! Where bytes land. Layout under the output folder:
//!
//! ```text
//! downloads.jsonl                           one line per stored file (O_APPEND, fsynced)
//! <imei>/<YYYYMMDD_HHMMSS>_<name>.<ext>     finished, verified files
//! <imei>/<same stem>.json                   their sidecars
//! <imei>/.partial/<name>-<unique>.part      bytes verified so far (a new name per download)
//! <imei>/.partial/<name>-<unique>.state     what the partial is, and a SHA-256 of its verified prefix
//! <imei>/.partial/<name>-<unique>.publish   a publish in progress (see `publish`)
//! ```
//!
//! Nothing here is opened through a symlink, and a media file never appears
//! without its sidecar and index line: see [`publish`].

pub mod catalog;
mod dedup;
pub mod derived;
pub mod error;
mod fsx;
pub mod media;
pub mod names;
pub mod outbox;
mod partial;
pub mod publish;
pub mod retention;
pub mod sidecar;

pub use catalog::StoredFile;
pub use dashcam_protocol::FileSpec;
pub use error::StoreError;
pub use fsx::{free_space, is_no_space, open_beneath, open_regular, probe_write};
pub use media::MediaInfo;
pub use partial::Partial;
pub use publish::PublishStep;
pub use sidecar::{IndexLine, LocalRemoval, MetadataJson, Sha256Digest, Sidecar, Uploaded};

use std::collections::HashSet;
use std::fs;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::error::{Ctx, Result};

mod sidecars;
pub use sidecars::*;

const PARTIAL_DIR: &str = ".partial";
const INDEX: &str = "downloads.jsonl";

/// A lock whose holder panicked is still good: what it guards (sets of
/// busy paths, caches) stays valid, and one camera's bug must not stop the rest.
pub(crate) fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// Limits of the output folder.
#[derive(Debug, Clone)]
pub struct StorageConfig {
    /// Older unfinished downloads start over (and are removed at start-up).
    pub partial_max_age: Duration,
    /// A START that would leave less free space than this is refused.
    pub min_free_bytes: u64,
    /// All partials together stay under this; the oldest go first.
    pub max_partial_bytes: u64,
}

impl Default for StorageConfig {
    fn default() -> Self {
        StorageConfig {
            partial_max_age: Duration::from_secs(48 * 3600),
            min_free_bytes: 256 << 20,
            max_partial_bytes: 4 << 30,
        }
    }
}

/// Called before each publish step; `true` stops the publish there, as a
/// crash would (tests inject faults with it).
pub type FaultHook = Arc<dyn Fn(PublishStep) -> bool + Send + Sync>;

pub struct Storage {
    root: PathBuf,
    cfg: StorageConfig,
    /// Partials being written now: a second connection of the same camera must not share one.
    busy: Mutex<HashSet<PathBuf>>,
    /// Publishing picks a free name and takes it under this lock.
    publish_lock: Mutex<()>,
    /// Bytes in partials, all cameras (kept up to date as bytes are written).
    partial_bytes: AtomicU64,
    known: dedup::Known,
    fault: Option<FaultHook>,
}

/// A finished file, as the session reports it.
#[derive(Debug, Clone)]
pub struct Stored {
    pub path: PathBuf,
    pub sidecar_path: PathBuf,
    pub sidecar: Sidecar,
    /// Set when the same file was already stored: nothing new was written but the index line.
    pub duplicate_of: Option<PathBuf>,
}

impl Storage {
    /// Tests and tools: default limits, with this partial age.
    pub fn new(root: impl Into<PathBuf>, partial_max_age: Duration) -> Result<Storage> {
        Storage::open(
            root,
            StorageConfig {
                partial_max_age,
                ..StorageConfig::default()
            },
        )
    }

    /// Creates the output folder, proves it writable with a probe file,
    /// finishes or rolls back any publish a crash interrupted, and removes
    /// temp files and stale partials.
    pub fn open(root: impl Into<PathBuf>, cfg: StorageConfig) -> Result<Storage> {
        Storage::open_with(root, cfg, None)
    }

    pub fn open_with(
        root: impl Into<PathBuf>,
        cfg: StorageConfig,
        fault: Option<FaultHook>,
    ) -> Result<Storage> {
        let root = root.into();
        fs::create_dir_all(&root)
            .ctx(|| format!("cannot create the output folder {}", root.display()))?;
        let probe = root.join(format!(".probe-{}.tmp", std::process::id()));
        let _ = fs::remove_file(&probe);
        fsx::create_new(&probe)
            .and_then(|mut f| std::io::Write::write_all(&mut f, b"probe"))
            .and_then(|_| fs::remove_file(&probe))
            .ctx(|| format!("the output folder {} is not writable", root.display()))?;
        let s = Storage {
            root,
            cfg,
            busy: Mutex::new(HashSet::new()),
            publish_lock: Mutex::new(()),
            partial_bytes: AtomicU64::new(0),
            known: dedup::Known::default(),
            fault,
        };
        let recovered = publish::recover(&s);
        if recovered > 0 {
            log::info!("recovered {recovered} publish(es) a stop had interrupted");
        }
        let swept = s.sweep();
        if swept > 0 {
            log::info!("removed {swept} stale partial or temp file(s)");
        }
        Ok(s)
    }

    /// Reads every camera's stored files into the de-duplication lists (a
    /// start-up thread: one pass over the folder, a lock per camera).
    pub fn warm_up(&self) {
        self.known.warm_up(self);
    }

    /// Sets (or clears) the hook called before each publish step.
    pub fn set_fault(&mut self, fault: Option<FaultHook>) {
        self.fault = fault;
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    pub fn config(&self) -> &StorageConfig {
        &self.cfg
    }

    fn camera_dir(&self, imei: u64) -> PathBuf {
        self.root.join(imei.to_string())
    }

    fn index_path(&self) -> PathBuf {
        self.root.join(INDEX)
    }

    /// The camera's folder and its `.partial`, created, never symlinks.
    fn camera_dirs(&self, imei: u64) -> Result<(PathBuf, PathBuf)> {
        let dir = self.camera_dir(imei);
        // The output folder removed or renamed while running: made again
        // (said once per time it happens), and the cameras keep being served.
        if !fsx::exists(&self.root) {
            fsx::ensure_dir(&self.root)
                .ctx(|| format!("the output folder {} (made again)", self.root.display()))?;
            log::warn!(
                "the output folder {} was gone: made again",
                self.root.display()
            );
        }
        fsx::ensure_dir(&dir).ctx(|| format!("camera folder {}", dir.display()))?;
        let pdir = dir.join(PARTIAL_DIR);
        fsx::ensure_dir(&pdir).ctx(|| format!("partial folder {}", pdir.display()))?;
        Ok((dir, pdir))
    }

    /// Every camera folder's `.partial` (symlinked ones are skipped).
    fn partial_dirs(&self) -> Vec<PathBuf> {
        let Ok(cams) = fs::read_dir(&self.root) else {
            return Vec::new();
        };
        cams.flatten()
            .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
            .map(|e| e.path().join(PARTIAL_DIR))
            .filter(|p| fs::symlink_metadata(p).is_ok_and(|m| m.is_dir()))
            .collect()
    }

    /// Removes temp files, partials older than `--partial-max-age`, and
    /// counts what partials hold. Returns how many files were removed.
    pub fn sweep(&self) -> usize {
        let mut removed = 0;
        let mut total = 0;
        if let Ok(entries) = fs::read_dir(&self.root) {
            for e in entries.flatten() {
                if e.file_name().to_string_lossy().ends_with(".tmp") {
                    removed += fs::remove_file(e.path()).is_ok() as usize;
                }
            }
        }
        for pdir in self.partial_dirs() {
            let cam = pdir.parent().map(Path::to_path_buf).unwrap_or_default();
            if let Ok(entries) = fs::read_dir(&cam) {
                for e in entries.flatten() {
                    if e.file_name().to_string_lossy().ends_with(".tmp") {
                        removed += fs::remove_file(e.path()).is_ok() as usize;
                    }
                }
            }
            for p in partial::list(&pdir) {
                if lock(&self.busy).contains(&p.part) {
                    total += p.size;
                    continue;
                }
                if p.stale(self.cfg.partial_max_age) {
                    removed += p.remove();
                } else {
                    total += p.size;
                }
            }
            if let Ok(entries) = fs::read_dir(&pdir) {
                for e in entries.flatten() {
                    if e.file_name().to_string_lossy().ends_with(".tmp") {
                        removed += fs::remove_file(e.path()).is_ok() as usize;
                    }
                }
            }
            // A camera that never stored anything leaves no folder behind.
            if let Some(imei) = cam
                .file_name()
                .and_then(|n| n.to_str())
                .and_then(|n| n.parse::<u64>().ok())
            {
                self.tidy_camera_dir(imei);
            }
        }
        self.partial_bytes.store(total, Ordering::Relaxed);
        removed
    }

    /// Refuses a file that would leave less than `--min-free-mb` free.
    fn check_space(&self, need: u64) -> Result<()> {
        let Some(free) = fsx::free_space(&self.root) else {
            return Ok(());
        };
        if free < need.saturating_add(self.cfg.min_free_bytes) {
            return Err(StoreError::NoSpace {
                needed: need + self.cfg.min_free_bytes,
                free,
            });
        }
        Ok(())
    }

    /// Keeps all partials under `--max-partials-gb` with room for `need`
    /// more bytes for camera `imei`, removing idle partials, oldest first,
    /// shared fairly. The rule: a camera's share is the cap divided by the
    /// cameras holding partials (counting the one asking). A camera holding
    /// more than its share may only give up its own partials; otherwise it
    /// may also take room from cameras holding more than their share. A
    /// camera within its share never loses a resumable partial to another.
    /// When no partial may go, the new one starts anyway (logged):
    /// `--min-free-mb` still guards the disk.
    fn make_room_for_partial(&self, imei: u64, need: u64) {
        let cap = self.cfg.max_partial_bytes;
        if self
            .partial_bytes
            .load(Ordering::Relaxed)
            .saturating_add(need)
            <= cap
        {
            return;
        }
        let mut all: Vec<(u64, partial::Listed)> = self
            .partial_dirs()
            .iter()
            .filter_map(|d| {
                let owner = d.parent()?.file_name()?.to_str()?.parse::<u64>().ok()?;
                Some(partial::list(d).into_iter().map(move |p| (owner, p)))
            })
            .flatten()
            .collect();
        all.sort_by_key(|(_, p)| p.started_ms);
        let mut held: std::collections::HashMap<u64, u64> = std::collections::HashMap::new();
        held.insert(imei, 0);
        for (owner, p) in &all {
            *held.entry(*owner).or_default() += p.size;
        }
        let share = cap / held.len() as u64;
        let asker_over = held[&imei] > share;
        let mut total: u64 = held.values().sum();
        for (owner, p) in all {
            if total.saturating_add(need) <= cap {
                break;
            }
            let allowed = owner == imei || (!asker_over && held[&owner] > share);
            if !allowed || lock(&self.busy).contains(&p.part) {
                continue;
            }
            log::warn!(
                "[{imei}] partials over --max-partials-gb: removing {} ({} bytes, camera {owner}: over its share of {share} bytes or its own)",
                p.part.display(),
                p.size
            );
            total -= p.size;
            *held.entry(owner).or_default() -= p.size;
            p.remove();
            if owner != imei {
                self.tidy_camera_dir(owner);
            }
        }
        if total.saturating_add(need) > cap {
            log::warn!(
                "[{imei}] partials over --max-partials-gb ({total} bytes held, {need} more asked): no partial may be removed under the fair-share rule, starting anyway"
            );
        }
        self.partial_bytes.store(total, Ordering::Relaxed);
    }

    /// A camera folder that holds nothing but an empty `.partial` (a camera
    /// that never stored a file) is removed. Only empty folders are removed
    /// (`rmdir`): a file that appears meanwhile keeps them.
    pub(crate) fn tidy_camera_dir(&self, imei: u64) {
        let dir = self.camera_dir(imei);
        let Ok(entries) = fs::read_dir(&dir) else {
            return;
        };
        let names: Vec<_> = entries.flatten().map(|e| e.file_name()).take(2).collect();
        if names.iter().any(|n| n != PARTIAL_DIR) {
            return;
        }
        let pdir = dir.join(PARTIAL_DIR);
        if fs::symlink_metadata(&pdir).is_ok_and(|m| m.is_dir()) && fs::remove_dir(&pdir).is_err() {
            return;
        }
        if fs::remove_dir(&dir).is_ok() {
            log::debug!(
                "[{imei}] removed {}: the camera stored nothing",
                dir.display()
            );
        }
    }

    pub(crate) fn add_partial_bytes(&self, n: i64) {
        if n >= 0 {
            self.partial_bytes.fetch_add(n as u64, Ordering::Relaxed);
        } else {
            let n = n.unsigned_abs();
            let _ = self
                .partial_bytes
                .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |v| {
                    Some(v.saturating_sub(n))
                });
        }
    }

    /// Bytes all partials hold now (an estimate kept as bytes are written).
    pub fn partial_bytes(&self) -> u64 {
        self.partial_bytes.load(Ordering::Relaxed)
    }

    /// Opens the partial for one file of one camera: resumes a matching one
    /// (same identifier, unit, total and metadata time; young enough; its
    /// verified prefix unchanged on disk), else starts a new one.
    pub fn begin(
        &self,
        imei: u64,
        open: &dashcam_protocol::session::OpenFile,
    ) -> Result<Partial<'_>> {
        Partial::open(self, imei, open)
    }

    fn claim(&self, part: &Path) -> bool {
        lock(&self.busy).insert(part.to_path_buf())
    }

    fn release(&self, part: &Path) {
        lock(&self.busy).remove(part);
    }

    fn fault(&self, step: PublishStep) -> Result<()> {
        if self.fault.as_ref().is_some_and(|f| f(step)) {
            return Err(StoreError::Interrupted(format!(
                "stopped before {step:?} (injected fault)"
            )));
        }
        Ok(())
    }
}

/// The file or folder `rel` names under `root`: `rel` is `/`-separated
/// plain names, none of them `..` or starting with a dot (but for
/// `dot_folder` as the first one, e.g. the gallery's `.thumbs`), and no step
/// of the way is a symlink. None for anything else: a name from a job file
/// or a URL never leaves the output folder.
pub fn under_root(root: &Path, rel: &str, dot_folder: Option<&str>) -> Option<PathBuf> {
    if rel.is_empty() || rel.contains(['\\', '\0']) {
        return None;
    }
    let mut p = root.to_path_buf();
    for (i, c) in Path::new(rel).components().enumerate() {
        match c {
            std::path::Component::Normal(n)
                if !n.to_string_lossy().starts_with('.')
                    || (i == 0 && dot_folder.is_some_and(|d| n == d)) =>
            {
                p.push(n)
            }
            _ => return None,
        }
        if fs::symlink_metadata(&p).is_ok_and(|m| m.file_type().is_symlink()) {
            return None;
        }
    }
    Some(p)
}
