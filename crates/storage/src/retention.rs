//! `--keep-days`: local media older than N days is removed (its sidecar
//! stays: the record of what the camera sent, and of the removal, so the
//! file stays known and is not stored again if a camera offers it again).
//! Only stored media (a file with its sidecar, and a converted mp4) is ever
//! removed; partials, the index and the outbox are not media.
//!
//! A sweep lists each camera folder once and looks only at file times: a
//! sidecar is read only for a file old enough to go (a file already removed
//! costs nothing but its sidecar's name in the listing).

use std::fs;
use std::path::Path;
use std::time::SystemTime;

use crate::catalog;

/// Removes media under `root` last modified before `cutoff`, except those
/// `keep` holds on to (an upload still waiting) and, with `only_uploaded`
/// (S3 on), those whose sidecar does not record their upload. Returns
/// (files, bytes).
pub fn remove_older_than(
    root: &Path,
    cutoff: SystemTime,
    only_uploaded: bool,
    keep: impl Fn(&Path) -> bool,
) -> (usize, u64) {
    let (mut files, mut bytes) = (0, 0);
    for (_, dir) in catalog::cameras(root) {
        for (stem, exts) in catalog::listing(&dir) {
            if !exts.iter().any(|e| e == "json") {
                continue;
            }
            for ext in exts.iter().filter(|e| *e != "json") {
                let mut name = stem.clone();
                name.push(".");
                name.push(ext);
                let m = dir.join(name);
                let Ok(meta) = fs::symlink_metadata(&m) else {
                    continue;
                };
                let old = meta.is_file() && meta.modified().is_ok_and(|t| t < cutoff);
                if !old || keep(&m) {
                    continue;
                }
                // Its sidecar decides: only the media or mp4 it names goes.
                match crate::remove_local(&m, "keep-days", only_uploaded) {
                    Ok(None) => log::debug!("--keep-days: {} is not uploaded yet", m.display()),
                    Ok(Some(n)) => {
                        files += 1;
                        bytes += n;
                        log::info!("--keep-days: removed {}", m.display());
                    }
                    Err(e) => log::warn!("--keep-days: cannot remove {}: {e}", m.display()),
                }
            }
        }
    }
    (files, bytes)
}
