//! Files already stored, per camera: a file with the same identifier, size and
//! SHA-256 is not stored twice. Loaded from the camera's sidecars the first
//! time the camera finishes a file in this process, then kept up to date.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

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

fn meta_ms(sc: &Sidecar) -> Option<u64> {
    let t = sc.metadata.as_ref()?.timestamp.as_deref()?;
    let ms = chrono::DateTime::parse_from_rfc3339(t)
        .ok()?
        .timestamp_millis();
    u64::try_from(ms).ok()
}

/// One camera's stored files; None until loaded from its folder.
type Camera = Arc<Mutex<Option<Vec<Entry>>>>;

/// A lock per camera: loading one camera's folder (10,000 sidecars take a
/// few hundred milliseconds) never holds up another camera's file.
#[derive(Default)]
pub(super) struct Known {
    by_imei: Mutex<HashMap<u64, Camera>>,
}

fn load(storage: &Storage, imei: u64) -> Vec<Entry> {
    catalog::camera_files(&storage.camera_dir(imei), imei)
        .into_iter()
        .map(|f| Entry {
            meta_ms: meta_ms(&f.sidecar),
            file: f.sidecar.file,
            size: f.sidecar.size_bytes,
            sha256: f.sidecar.sha256,
            path: f.media,
            by_time: true,
        })
        .collect()
}

impl Known {
    fn camera(&self, imei: u64) -> Camera {
        crate::lock(&self.by_imei).entry(imei).or_default().clone()
    }

    /// Runs `f` on the camera's list, loading it from its folder first if needed.
    fn with<T>(&self, storage: &Storage, imei: u64, f: impl FnOnce(&mut Vec<Entry>) -> T) -> T {
        let cam = self.camera(imei);
        let mut guard = crate::lock(&cam);
        f(guard.get_or_insert_with(|| load(storage, imei)))
    }

    /// Loads every camera folder's list ahead of the first file (a start-up
    /// thread); a camera that finishes a file meanwhile waits only for its own.
    pub fn warm_up(&self, storage: &Storage) {
        for (imei, _) in catalog::cameras(storage.root()) {
            self.with(storage, imei, |_| ());
        }
    }

    /// The stored file this one duplicates, if any.
    pub fn find(&self, storage: &Storage, imei: u64, sc: &Sidecar) -> Option<PathBuf> {
        self.with(storage, imei, |list| {
            list.iter()
                .find(|e| e.size == sc.size_bytes && e.sha256 == sc.sha256 && e.file == sc.file)
                .filter(|e| fsx::exists(&e.path))
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
