//! Files already stored, per camera: a file with the same identifier, size and
//! SHA-256 is not stored twice. Seeded from the index in the start-up pass
//! that checks it (one sequential read, not a file per stored file), then
//! completed from the camera's folder the first time the camera finishes a
//! file in this process (one `read_dir`; only sidecars the index does not
//! name are read), then kept up to date.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use serde::Deserialize;

use super::{catalog, fsx, Sha256Digest, Sidecar, Storage, Stored};

#[derive(Debug, Clone)]
struct Entry {
    file: String,
    size: u64,
    sha256: Sha256Digest,
    path: PathBuf,
    /// The metadata timestamp, when the file had metadata.
    meta_ms: Option<u64>,
    /// Still trusted for the metadata fast path (false once its end differed).
    by_time: bool,
}

fn parse_ms(t: &str) -> Option<u64> {
    let ms = chrono::DateTime::parse_from_rfc3339(t)
        .ok()?
        .timestamp_millis();
    u64::try_from(ms).ok()
}

fn meta_ms(sc: &Sidecar) -> Option<u64> {
    parse_ms(sc.metadata.as_ref()?.timestamp.as_deref()?)
}

/// What de-duplication needs of one index line; the rest of the line is
/// checked as JSON but not kept.
#[derive(Deserialize)]
pub(super) struct IndexKey {
    path: Option<String>,
    imei: Option<String>,
    file: Option<String>,
    size_bytes: Option<u64>,
    sha256: Option<String>,
    duplicate_of: Option<String>,
    metadata: Option<MetaKey>,
}

#[derive(Deserialize)]
struct MetaKey {
    timestamp: Option<String>,
}

/// One camera's stored files; None until loaded from its folder.
type Camera = Arc<Mutex<Option<Vec<Entry>>>>;

/// A lock per camera: loading one camera's folder never holds up another
/// camera's file.
#[derive(Default)]
pub(super) struct Known {
    by_imei: Mutex<HashMap<u64, Camera>>,
    /// From the index at start-up: IMEI -> media file name -> its entry (the
    /// last line for a name wins). Taken by the camera's first load.
    seeded: Mutex<HashMap<u64, HashMap<String, Entry>>>,
}

fn entry_of(f: catalog::StoredFile) -> Entry {
    Entry {
        meta_ms: meta_ms(&f.sidecar),
        file: f.sidecar.file,
        size: f.sidecar.size_bytes,
        sha256: f.sidecar.sha256,
        path: f.media,
        by_time: true,
    }
}

/// The camera's list: its folder listed once; a file the index named keeps
/// the index's entry, any other sidecar (no index line: the index was
/// replaced, or the file copied in) is read.
fn load(storage: &Storage, imei: u64, mut seeded: HashMap<String, Entry>) -> Vec<Entry> {
    let dir = storage.camera_dir(imei);
    let mut out = Vec::new();
    for (stem, exts) in catalog::listing(&dir) {
        let from_index = exts.iter().find_map(|ext| {
            let mut name = stem.clone();
            name.push(".");
            name.push(ext);
            let e = seeded.remove(name.to_str()?)?;
            Some(e)
        });
        match from_index {
            Some(mut e) if exts.iter().any(|x| x == "json") => {
                e.path = dir.join(e.path.file_name().unwrap_or_default());
                out.push(e);
            }
            // Read from its sidecar; a file whose local copy was removed
            // on purpose is still known.
            _ => {
                out.extend(catalog::known_file(&dir, imei, &stem, &exts).map(|(f, _)| entry_of(f)))
            }
        }
    }
    out
}

impl Known {
    fn camera(&self, imei: u64) -> Camera {
        crate::lock(&self.by_imei).entry(imei).or_default().clone()
    }

    /// Notes one index line read at start-up (duplicates and events are not
    /// stored files and are skipped).
    pub fn seed(&self, key: IndexKey) {
        let (Some(path), Some(imei), Some(file), Some(size), Some(sha)) =
            (key.path, key.imei, key.file, key.size_bytes, key.sha256)
        else {
            return;
        };
        if key.duplicate_of.is_some() {
            return;
        }
        let (Ok(imei_n), Some(sha256)) = (imei.parse::<u64>(), Sha256Digest::parse(&sha)) else {
            return;
        };
        // "<imei>/<name>": only a plain name in the camera's own folder.
        let Some((folder, name)) = path.split_once('/') else {
            return;
        };
        if folder != imei || name.is_empty() || name.contains(['/', '\\']) || name.starts_with('.')
        {
            return;
        }
        let entry = Entry {
            meta_ms: key
                .metadata
                .and_then(|m| m.timestamp)
                .and_then(|t| parse_ms(&t)),
            file,
            size,
            sha256,
            path: PathBuf::from(name),
            by_time: true,
        };
        crate::lock(&self.seeded)
            .entry(imei_n)
            .or_default()
            .insert(name.to_string(), entry);
    }

    /// Runs `f` on the camera's list, loading it from its folder first if needed.
    fn with<T>(&self, storage: &Storage, imei: u64, f: impl FnOnce(&mut Vec<Entry>) -> T) -> T {
        let cam = self.camera(imei);
        let mut guard = crate::lock(&cam);
        if guard.is_none() {
            let seeded = crate::lock(&self.seeded).remove(&imei).unwrap_or_default();
            *guard = Some(load(storage, imei, seeded));
        }
        f(guard.get_or_insert_with(Vec::new))
    }

    /// Loads every camera folder's list ahead of the first file (a start-up
    /// thread); a camera that finishes a file meanwhile waits only for its own.
    pub fn warm_up(&self, storage: &Storage) {
        for (imei, _) in catalog::cameras(storage.root()) {
            self.with(storage, imei, |_| ());
        }
        crate::lock(&self.seeded).clear();
    }

    /// The stored file this one duplicates, if any.
    pub fn find(&self, storage: &Storage, imei: u64, sc: &Sidecar) -> Option<PathBuf> {
        self.with(storage, imei, |list| {
            list.iter()
                .find(|e| e.size == sc.size_bytes && e.sha256 == sc.sha256 && e.file == sc.file)
                .filter(|e| fsx::exists(&e.path) || crate::removed_on_purpose(&e.path))
                .map(|e| e.path.clone())
        })
    }

    pub fn add(&self, imei: u64, stored: &Stored) {
        let cam = self.camera(imei);
        let mut guard = crate::lock(&cam);
        if let Some(list) = guard.as_mut() {
            list.push(Entry {
                meta_ms: meta_ms(&stored.sidecar),
                file: stored.sidecar.file.clone(),
                size: stored.sidecar.size_bytes,
                sha256: stored.sidecar.sha256,
                path: stored.path.clone(),
                by_time: true,
            });
        }
    }

    /// A stored file with this identifier and metadata time whose size fits
    /// the START: (its path, its size).
    pub fn find_by_time(
        &self,
        storage: &Storage,
        imei: u64,
        file: &str,
        ts_ms: u64,
        open: &dashcam_protocol::session::OpenFile,
    ) -> Option<(PathBuf, u64)> {
        let extent = open.extent();
        self.with(storage, imei, |list| {
            list.iter()
                .find(|e| {
                    e.by_time
                        && e.file == file
                        && e.meta_ms == Some(ts_ms)
                        && e.size > 0
                        && extent.fits(e.size)
                })
                .filter(|e| fsx::exists(&e.path))
                .map(|e| (e.path.clone(), e.size))
        })
    }

    /// Its end differed once: that file is no longer matched by time.
    pub fn forget_time(&self, imei: u64, path: &std::path::Path) {
        let cam = self.camera(imei);
        let mut guard = crate::lock(&cam);
        if let Some(list) = guard.as_mut() {
            for e in list.iter_mut().filter(|e| e.path == path) {
                e.by_time = false;
            }
        }
    }
}
