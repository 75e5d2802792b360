//! Where bytes land. Layout under the output folder:
//!
//! ```text
//! <imei>/<YYYYMMDD_HHMMSS>_<name>.<ext>     finished, verified files
//! <imei>/<same stem>.json                   their sidecars
//! <imei>/.partial/<name>-<hash>.part        bytes verified so far
//! <imei>/.partial/<name>-<hash>.state       what the partial is (for resume)
//! downloads.jsonl                           one line per stored file
//! ```
//!
//! A media extension appears only when a file is complete: the partial is
//! fsynced, then hard-linked to a name that did not exist (no clobbering).

mod names;
mod partial;
pub mod sidecar;

pub use names::FileSpec;
pub use partial::Partial;
pub use sidecar::{IndexLine, MetadataJson, Sidecar};

use std::collections::HashSet;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::Duration;

use anyhow::{Context, Result};

const PARTIAL_DIR: &str = ".partial";
const INDEX: &str = "downloads.jsonl";

pub struct Storage {
    root: PathBuf,
    partial_max_age: Duration,
    /// Partials being written now: a second connection of the same camera must not share one.
    busy: Mutex<HashSet<PathBuf>>,
    index: Mutex<()>,
}

/// A finished file, as the session reports it.
#[derive(Debug, Clone)]
pub struct Stored {
    pub path: PathBuf,
    pub sidecar_path: PathBuf,
    pub sidecar: Sidecar,
}

impl Storage {
    pub fn new(root: impl Into<PathBuf>, partial_max_age: Duration) -> Result<Storage> {
        let root = root.into();
        fs::create_dir_all(&root)
            .with_context(|| format!("creating output folder {}", root.display()))?;
        Ok(Storage {
            root,
            partial_max_age,
            busy: Mutex::new(HashSet::new()),
            index: Mutex::new(()),
        })
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    fn camera_dir(&self, imei: u64) -> PathBuf {
        self.root.join(imei.to_string())
    }

    fn partial_dir(&self, imei: u64) -> PathBuf {
        self.camera_dir(imei).join(PARTIAL_DIR)
    }

    /// Removes partials older than `--partial-max-age` under every camera folder.
    /// Returns how many were removed.
    pub fn sweep_stale_partials(&self) -> usize {
        let mut removed = 0;
        let Ok(cams) = fs::read_dir(&self.root) else {
            return 0;
        };
        for cam in cams.flatten() {
            let Ok(entries) = fs::read_dir(cam.path().join(PARTIAL_DIR)) else {
                continue;
            };
            for e in entries.flatten() {
                let p = e.path();
                let old = e
                    .metadata()
                    .and_then(|m| m.modified())
                    .ok()
                    .and_then(|t| t.elapsed().ok())
                    .is_some_and(|age| age > self.partial_max_age);
                if old
                    && !self
                        .busy
                        .lock()
                        .unwrap()
                        .contains(&p.with_extension("part"))
                {
                    removed += fs::remove_file(&p).is_ok() as usize;
                }
            }
        }
        removed
    }

    /// Opens the partial for one file of one camera: resumes a matching one
    /// (same identifier, unit and total, young enough), else starts over.
    pub fn begin(&self, imei: u64, open: &crate::session::OpenFile) -> Result<Partial<'_>> {
        Partial::open(self, imei, open)
    }

    fn claim(&self, part: &Path) -> bool {
        self.busy.lock().unwrap().insert(part.to_path_buf())
    }

    fn release(&self, part: &Path) {
        self.busy.lock().unwrap().remove(part);
    }

    /// Links a complete partial to its final name, writes the sidecar and the index line.
    fn publish(
        &self,
        imei: u64,
        part: &Path,
        stem: &str,
        ext: &str,
        sc: Sidecar,
    ) -> Result<Stored> {
        let dir = self.camera_dir(imei);
        for n in 0..10_000u32 {
            let name = if n == 0 {
                stem.to_string()
            } else {
                format!("{stem}_{n}")
            };
            let path = dir.join(format!("{name}.{ext}"));
            let sidecar_path = dir.join(format!("{name}.json"));
            if sidecar_path.exists() {
                continue;
            }
            match link_no_clobber(part, &path) {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => continue,
                Err(e) => {
                    return Err(e).with_context(|| format!("storing {}", path.display()));
                }
            }
            let _ = fs::remove_file(part);
            let stored = Stored {
                path,
                sidecar_path,
                sidecar: sc,
            };
            write_sidecar(&stored)?;
            self.append_index(&stored)?;
            return Ok(stored);
        }
        anyhow::bail!("no free file name for {stem}.{ext} in {}", dir.display())
    }

    fn append_index(&self, stored: &Stored) -> Result<()> {
        let rel = stored.path.strip_prefix(&self.root).unwrap_or(&stored.path);
        let line = IndexLine {
            path: rel.to_string_lossy().replace('\\', "/"),
            sidecar: stored.sidecar.clone(),
        };
        let mut text = serde_json::to_string(&line)?;
        text.push('\n');
        let _guard = self.index.lock().unwrap();
        let path = self.root.join(INDEX);
        OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
            .and_then(|mut f| f.write_all(text.as_bytes()))
            .with_context(|| format!("appending to {}", path.display()))
    }
}

/// (Re)writes a sidecar atomically: a reader never sees half a JSON.
pub fn write_sidecar(stored: &Stored) -> Result<()> {
    let tmp = stored.sidecar_path.with_extension("json.tmp");
    let mut body = serde_json::to_vec_pretty(&stored.sidecar)?;
    body.push(b'\n');
    fs::write(&tmp, body).with_context(|| format!("writing {}", tmp.display()))?;
    fs::rename(&tmp, &stored.sidecar_path)
        .with_context(|| format!("writing {}", stored.sidecar_path.display()))
}

/// Gives `part` the name `dst` only if `dst` does not exist yet.
fn link_no_clobber(part: &Path, dst: &Path) -> io::Result<()> {
    match fs::hard_link(part, dst) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => Err(e),
        Err(_) => {
            // File systems without hard links: reserve the name, then move over it.
            File::options().write(true).create_new(true).open(dst)?;
            fs::rename(part, dst)
        }
    }
}
