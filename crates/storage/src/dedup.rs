//! Files already stored, per camera: a file with the same identifier, size and
//! SHA-256 is not stored twice. Loaded from the camera's sidecars the first
//! time the camera finishes a file in this process, then kept up to date.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Mutex;

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

#[derive(Default)]
pub(super) struct Known {
    by_imei: Mutex<HashMap<u64, Vec<Entry>>>,
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
    /// The stored file this one duplicates, if any.
    pub fn find(&self, storage: &Storage, imei: u64, sc: &Sidecar) -> Option<PathBuf> {
        let mut map = crate::lock(&self.by_imei);
        let list = map.entry(imei).or_insert_with(|| load(storage, imei));
        list.iter()
            .find(|e| e.size == sc.size_bytes && e.sha256 == sc.sha256 && e.file == sc.file)
            .filter(|e| fsx::exists(&e.path))
            .map(|e| e.path.clone())
    }

    pub fn add(&self, imei: u64, stored: &Stored) {
        if let Some(list) = crate::lock(&self.by_imei).get_mut(&imei) {
            list.push(Entry {
                file: stored.sidecar.file.clone(),
                size: stored.sidecar.size_bytes,
                sha256: stored.sidecar.sha256,
                path: stored.path.clone(),
                meta_ms: meta_ms(&stored.sidecar),
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
        let mut map = crate::lock(&self.by_imei);
        let list = map.entry(imei).or_insert_with(|| load(storage, imei));
        let extent = open.extent();
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
    }

    /// Its end differed once: that file is no longer matched by time.
    pub fn forget_time(&self, imei: u64, path: &std::path::Path) {
        if let Some(list) = crate::lock(&self.by_imei).get_mut(&imei) {
            for e in list.iter_mut().filter(|e| e.path == path) {
                e.by_time = false;
            }
        }
    }
}
