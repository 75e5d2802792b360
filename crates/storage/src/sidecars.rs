//! A stored file's sidecar on disk: written atomically, changed by
//! read-modify-write one at a time, read back; and the local copy removed on
//! purpose (recorded in its sidecar first).

use super::*;

/// (Re)writes a sidecar atomically: a reader never sees half a JSON.
pub(crate) fn write_sidecar(stored: &Stored) -> Result<()> {
    write_sidecar_at(&stored.sidecar_path, &stored.sidecar)
}

pub(super) fn write_sidecar_at(path: &Path, sc: &Sidecar) -> Result<()> {
    let mut body = serde_json::to_vec_pretty(sc)?;
    body.push(b'\n');
    publish::write_atomic(path, &body)
}

/// One sidecar update at a time in this process: the converter's mp4 and a
/// local removal, each a read-modify-write, never undo each other.
static SIDECAR_UPDATES: Mutex<()> = Mutex::new(());

/// Changes a stored file's sidecar as it is on disk now (not as some thread
/// remembers it) and writes it back atomically (when it changed); returns it.
/// Nothing is written when `change` fails.
pub fn update_sidecar(
    path: &Path,
    change: impl FnOnce(&mut Sidecar) -> Result<()>,
) -> Result<Sidecar> {
    let _one = lock(&SIDECAR_UPDATES);
    let mut sc: Sidecar = read_sidecar(path).ok_or_else(|| {
        StoreError::failed(
            std::io::ErrorKind::NotFound,
            format!("{}: no readable sidecar to update", path.display()),
        )
    })?;
    let before = sc.clone();
    change(&mut sc)?;
    if sc != before {
        write_sidecar_at(path, &sc)?;
    }
    Ok(sc)
}

/// Removes a stored file's local copy on purpose (`why`: `keep-days`,
/// `uploaded`): its sidecar records the removal first, so the file stays
/// known and a camera that offers it again is not stored twice. Only the
/// media or the mp4 its sidecar names is removed, and nothing when the
/// sidecar cannot say so. Returns the bytes freed.
///
/// With `only_uploaded`, a file the sidecar does not record as uploaded is
/// kept: Ok(None).
pub fn remove_local(media: &Path, why: &str, only_uploaded: bool) -> Result<Option<u64>> {
    let name = media
        .file_name()
        .and_then(|n| n.to_str())
        .ok_or_else(|| {
            StoreError::failed(
                std::io::ErrorKind::InvalidInput,
                format!("{}: not a stored file's name", media.display()),
            )
        })?
        .to_string();
    let meta = fs::symlink_metadata(media).ctx(|| media.display())?;
    if !meta.is_file() {
        return Err(StoreError::failed(
            std::io::ErrorKind::InvalidInput,
            format!("{}: not a plain file", media.display()),
        ));
    }
    let mut kept = false;
    let sidecar = derived::sidecar_path_of(media);
    update_sidecar(&sidecar, |sc| {
        let stem = sidecar.file_stem().and_then(|s| s.to_str()).unwrap_or("");
        let own = format!("{stem}.{}", catalog::extension_of(sc));
        if name != own && sc.mp4.as_deref() != Some(name.as_str()) {
            return Err(StoreError::failed(
                std::io::ErrorKind::InvalidInput,
                format!(
                    "{}: not the media or mp4 its sidecar names",
                    media.display()
                ),
            ));
        }
        if only_uploaded && !sc.is_uploaded(&name) {
            kept = true;
            return Ok(());
        }
        if !sc.is_removed_locally(&name) {
            sc.removed_locally.push(LocalRemoval {
                file: name.clone(),
                at: dashcam_protocol::time::rfc3339(chrono::Utc::now()),
                why: why.to_string(),
            });
        }
        Ok(())
    })?;
    if kept {
        return Ok(None);
    }
    fs::remove_file(media).ctx(|| format!("removing {}", media.display()))?;
    Ok(Some(meta.len()))
}

/// A stored file's sidecar as it is on disk now (bounded, never through a
/// symlink); None when it is missing or not a sidecar.
pub fn read_sidecar(path: &Path) -> Option<Sidecar> {
    fsx::read_json(path, catalog::MAX_SIDECAR)
}

/// Whether this stored file's local copy was removed on purpose (its sidecar
/// `sc` says so, and it is gone).
pub fn removed_on_purpose_by(media: &Path, sc: &Sidecar) -> bool {
    !fsx::exists(media)
        && media
            .file_name()
            .and_then(|n| n.to_str())
            .is_some_and(|n| sc.is_removed_locally(n))
}

/// [`removed_on_purpose_by`] its sidecar on disk.
pub fn removed_on_purpose(media: &Path) -> bool {
    !fsx::exists(media)
        && read_sidecar(&derived::sidecar_path_of(media))
            .is_some_and(|sc| removed_on_purpose_by(media, &sc))
}
