//! What is stored: each camera's files with their sidecars, found in one pass
//! over the camera's folder. The one rule that pairs a sidecar with its media
//! lives here; de-duplication, the gallery, verify and convert all use it.

use std::collections::HashMap;
use std::ffi::OsString;
use std::fs;
use std::path::{Path, PathBuf};

use dashcam_protocol::FileSpec;

use super::{fsx, Sidecar};

/// A stored file: its media, its sidecar, and the derived mp4 when there is one.
#[derive(Debug, Clone)]
pub struct StoredFile {
    pub imei: u64,
    pub media: PathBuf,
    pub sidecar_path: PathBuf,
    pub sidecar: Sidecar,
}

impl From<StoredFile> for super::Stored {
    fn from(f: StoredFile) -> super::Stored {
        super::Stored {
            path: f.media,
            sidecar_path: f.sidecar_path,
            sidecar: f.sidecar,
            duplicate_of: None,
        }
    }
}

/// The extension the server gave a file: what its identifier says, as at publish.
pub(crate) fn extension_of(sc: &Sidecar) -> &'static str {
    match sc.flow {
        dashcam_protocol::session::Flow::Identifier => match sc.media {
            dashcam_protocol::Media::Video => "h265",
            _ => "jpg",
        },
        dashcam_protocol::session::Flow::Path => FileSpec::from_path(sc.file.as_bytes()).extension,
    }
}

/// Sidecars larger than this are not sidecars.
pub(crate) const MAX_SIDECAR: u64 = 4 << 20;

/// A camera folder's file names: stem -> the extensions present (dot files
/// and anything that is not a plain file left out). One `read_dir`.
pub(crate) fn listing(dir: &Path) -> HashMap<OsString, Vec<OsString>> {
    let mut by_stem: HashMap<OsString, Vec<OsString>> = HashMap::new();
    let Ok(entries) = fs::read_dir(dir) else {
        return by_stem;
    };
    for e in entries.flatten() {
        let name = PathBuf::from(e.file_name());
        if name.to_string_lossy().starts_with('.') {
            continue;
        }
        if !e.file_type().is_ok_and(|t| t.is_file()) {
            continue;
        }
        // An ADAS/DSM `.mp4`'s conversion, `X.converted.mp4`, belongs to X.
        if let Some(stem) = name
            .to_str()
            .and_then(|n| n.strip_suffix(".converted.mp4"))
            .filter(|s| !s.is_empty())
        {
            by_stem
                .entry(OsString::from(stem))
                .or_default()
                .push(OsString::from("converted.mp4"));
            continue;
        }
        let (Some(stem), Some(ext)) = (name.file_stem(), name.extension()) else {
            continue;
        };
        by_stem
            .entry(stem.to_os_string())
            .or_default()
            .push(ext.to_os_string());
    }
    by_stem
}

/// The stored file of one stem of a [`listing`]: its sidecar read, and its
/// media present. None when it has no sidecar, an unreadable one, or no media.
pub(crate) fn stored_file(
    dir: &Path,
    imei: u64,
    stem: &OsString,
    exts: &[OsString],
) -> Option<StoredFile> {
    known_file(dir, imei, stem, exts)
        .filter(|(_, present)| *present)
        .map(|(f, _)| f)
}

/// As [`stored_file`], and also a file whose local copy was removed on
/// purpose (its sidecar records the removal): still known, for de-dup.
/// With whether its media is in the folder.
pub(crate) fn known_file(
    dir: &Path,
    imei: u64,
    stem: &OsString,
    exts: &[OsString],
) -> Option<(StoredFile, bool)> {
    if !exts.iter().any(|e| e == "json") {
        return None;
    }
    let sidecar_path = dir.join(stem).with_extension("json");
    let sidecar = fsx::read_json::<Sidecar>(&sidecar_path, MAX_SIDECAR)?;
    let ext = extension_of(&sidecar);
    let mut media = dir.join(stem);
    media.as_mut_os_string().push(format!(".{ext}"));
    let present = exts.iter().any(|e| e == ext);
    let f = StoredFile {
        imei,
        media,
        sidecar_path,
        sidecar,
    };
    (present || f.removed()).then_some((f, present))
}

impl StoredFile {
    /// Its media is recorded as removed on purpose (it is not in the folder).
    fn removed(&self) -> bool {
        let name = self.media.file_name().and_then(|n| n.to_str());
        name.is_some_and(|n| self.sidecar.is_removed_locally(n))
    }
}

/// Every stored file of one camera folder, in name order. One `read_dir`; a
/// sidecar whose media is gone (or that does not parse) is left out.
pub fn camera_files(dir: &Path, imei: u64) -> Vec<StoredFile> {
    let mut out: Vec<StoredFile> = listing(dir)
        .iter()
        .filter_map(|(stem, exts)| stored_file(dir, imei, stem, exts))
        .collect();
    out.sort_by(|a, b| a.media.cmp(&b.media));
    out
}

/// As [`camera_files`], and also the files whose local copy was removed on
/// purpose (`--keep-days`, `--s3-delete-local`): with whether the media is
/// in the folder. What the gallery shows.
pub fn camera_known_files(dir: &Path, imei: u64) -> Vec<(StoredFile, bool)> {
    let mut out: Vec<(StoredFile, bool)> = listing(dir)
        .iter()
        .filter_map(|(stem, exts)| known_file(dir, imei, stem, exts))
        .collect();
    out.sort_by(|a, b| a.0.media.cmp(&b.0.media));
    out
}

/// [`camera_known_files`] of every camera under an output folder (or of
/// one camera's folder).
pub fn all_known_files(dir: &Path) -> Vec<(StoredFile, bool)> {
    let own = dir
        .file_name()
        .and_then(|n| n.to_str())
        .and_then(|n| n.parse::<u64>().ok());
    let mut out = Vec::new();
    if let Some(imei) = own {
        out.extend(camera_known_files(dir, imei));
    }
    for (imei, cam) in cameras(dir) {
        out.extend(camera_known_files(&cam, imei));
    }
    out
}

/// The camera folders under an output folder: (IMEI, folder), in IMEI order.
pub fn cameras(root: &Path) -> Vec<(u64, PathBuf)> {
    let Ok(entries) = fs::read_dir(root) else {
        return Vec::new();
    };
    let mut out: Vec<(u64, PathBuf)> = entries
        .flatten()
        .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
        .filter_map(|e| {
            let name = e.file_name().to_string_lossy().into_owned();
            let imei = name.parse::<u64>().ok()?;
            (name.bytes().all(|b| b.is_ascii_digit())).then_some((imei, e.path()))
        })
        .collect();
    out.sort();
    out
}

/// Every stored file under `dir`: an output folder (every camera) or one
/// camera's folder (its name is the IMEI).
pub fn all_files(dir: &Path) -> Vec<StoredFile> {
    let own = dir
        .file_name()
        .and_then(|n| n.to_str())
        .and_then(|n| n.parse::<u64>().ok());
    let mut out = Vec::new();
    if let Some(imei) = own {
        out.extend(camera_files(dir, imei));
    }
    for (imei, cam) in cameras(dir) {
        out.extend(camera_files(&cam, imei));
    }
    out
}
