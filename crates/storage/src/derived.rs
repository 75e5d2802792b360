//! Files made from stored files: mp4 conversions, thumbnails, the gallery page.
//! Every one is written to a temp file created with `create_new` (never
//! through a link), then renamed into place, so a reader never sees half of
//! one and a planted symlink is replaced, never followed.

use std::fs;
use std::path::{Path, PathBuf};

use crate::error::{Ctx, Result};
use crate::fsx;

/// Where the gallery keeps its thumbnails, under the output folder.
pub const THUMBS: &str = ".thumbs";
/// A conversion in progress, beside its video: `<stem>.mp4.converting`.
pub const CONVERTING: &str = "mp4.converting";

/// A derived file being made: write to [`Derived::path`], then [`Derived::commit`].
/// Dropped without a commit, the temp file is removed.
#[derive(Debug)]
pub struct Derived {
    tmp: PathBuf,
    dest: PathBuf,
    /// The temp file as created: written through this, never opened again by name.
    file: fs::File,
    done: bool,
}

impl Derived {
    /// Creates the (empty) temp file for `dest`; `tmp_ext` is appended to its name.
    fn begin(dest: PathBuf, tmp_ext: &str) -> Result<Derived> {
        let mut tmp = dest.clone().into_os_string();
        tmp.push(format!(".{tmp_ext}"));
        let tmp = PathBuf::from(tmp);
        // A leftover of a run that stopped (it is ours: same name scheme).
        if fs::symlink_metadata(&tmp).is_ok_and(|m| m.is_file()) {
            let _ = fs::remove_file(&tmp);
        }
        let file = fsx::create_new(&tmp).ctx(|| format!("creating {}", tmp.display()))?;
        Ok(Derived {
            tmp,
            dest,
            file,
            done: false,
        })
    }

    /// The temp file, open for writing (as `create_new` made it).
    pub fn file(&self) -> &fs::File {
        &self.file
    }

    /// The temp file to write (an external tool may write it by name).
    pub fn path(&self) -> &Path {
        &self.tmp
    }

    /// The name it will have.
    pub fn dest(&self) -> &Path {
        &self.dest
    }

    /// Renames the temp file into place (replacing a link there, never following it).
    pub fn commit(mut self) -> Result<PathBuf> {
        if fs::symlink_metadata(&self.tmp).is_ok_and(|m| m.file_type().is_symlink()) {
            return Err(crate::StoreError::Unsafe(format!(
                "{} became a symlink",
                self.tmp.display()
            )));
        }
        crate::fsx::rename(&self.tmp, &self.dest)
            .ctx(|| format!("storing {}", self.dest.display()))?;
        self.done = true;
        Ok(self.dest.clone())
    }
}

impl Drop for Derived {
    fn drop(&mut self) {
        if !self.done {
            let _ = fs::remove_file(&self.tmp);
        }
    }
}

/// The mp4 made from a stored video: `<stem>.mp4` beside it, or
/// `<stem>.converted.mp4` when the video is itself an `.mp4`.
pub fn mp4_path(media: &Path) -> PathBuf {
    if media
        .extension()
        .is_some_and(|e| e.eq_ignore_ascii_case("mp4"))
    {
        let stem = media.file_stem().unwrap_or_default().to_string_lossy();
        media.with_file_name(format!("{stem}.converted.mp4"))
    } else {
        media.with_extension("mp4")
    }
}

/// The sidecar of a stored file or of a file derived from it: `X.json` for
/// `X.h265`, `X.mp4` and `X.converted.mp4` alike (stored names carry no dot
/// in their stem, so the suffix is never part of an original's name).
pub fn sidecar_path_of(file: &Path) -> PathBuf {
    let name = file.file_name().unwrap_or_default().to_string_lossy();
    match name.strip_suffix(".converted.mp4") {
        Some(stem) if !stem.is_empty() => file.with_file_name(format!("{stem}.json")),
        _ => file.with_extension("json"),
    }
}

/// A stored video whose first bytes are the camera's container or a raw
/// stream (by its sidecar's media info, else by sniffing): one that
/// `--convert mp4` makes an mp4 of.
pub fn is_convertible(sc: &crate::Sidecar, media: &Path) -> bool {
    if sc.media != dashcam_protocol::Media::Video {
        return false;
    }
    let kind = match &sc.media_info {
        Some(i) => i.container.clone(),
        None => crate::media::sniff_file(media)
            .map(|k| k.name().to_string())
            .unwrap_or_default(),
    };
    kind == "ptmf" || kind == "annexb"
}

/// A stored video (by its sidecar as it is on disk now) whose mp4 is not
/// made yet: with `--convert mp4`, its local copy is still needed.
pub fn awaits_conversion(media: &Path) -> bool {
    crate::read_sidecar(&sidecar_path_of(media))
        .is_some_and(|sc| sc.mp4.is_none() && is_convertible(&sc, media))
}

/// Starts the mp4 of a stored video (see [`mp4_path`]).
pub fn begin_mp4(media: &Path) -> Result<Derived> {
    Derived::begin(mp4_path(media), "converting")
}

/// A temp file beside a stored file (`<stem>.<name>.tmp`), removed when the
/// guard drops: a converter's intermediate files.
pub fn scratch(media: &Path, name: &str) -> Result<Derived> {
    let stem = media.file_stem().unwrap_or_default().to_string_lossy();
    Derived::begin(media.with_file_name(format!("{stem}.{name}")), "tmp")
}

/// A conversion that a stop interrupted: `<stem>.mp4.converting` beside `media`.
pub fn leftover_conversion(media: &Path) -> Option<PathBuf> {
    let mut tmp = mp4_path(media).into_os_string();
    tmp.push(".converting");
    let tmp = PathBuf::from(tmp);
    fs::symlink_metadata(&tmp)
        .is_ok_and(|m| m.is_file())
        .then_some(tmp)
}

/// What the gallery has for a stored file's thumbnail.
#[derive(Debug)]
pub enum Thumbnail {
    /// Made before.
    Ready(PathBuf),
    /// Tried before and failed (the marker names why); retried by `retry`.
    Failed,
    /// To be made: write the JPEG to [`Derived::path`], then commit.
    Make(Derived),
}

fn thumb_dir(root: &Path, imei: u64) -> Result<PathBuf> {
    let base = root.join(THUMBS);
    fsx::ensure_dir(&base).ctx(|| format!("thumbnail folder {}", base.display()))?;
    let dir = base.join(imei.to_string());
    fsx::ensure_dir(&dir).ctx(|| format!("thumbnail folder {}", dir.display()))?;
    Ok(dir)
}

/// The thumbnail of `media` (a stored file of camera `imei`). With `retry`, a
/// thumbnail that failed before is tried again (its cause may be gone).
pub fn thumbnail(root: &Path, imei: u64, media: &Path, retry: bool) -> Result<Thumbnail> {
    let stem = media.file_stem().unwrap_or_default().to_string_lossy();
    let dir = thumb_dir(root, imei)?;
    let thumb = dir.join(format!("{stem}.jpg"));
    if fs::symlink_metadata(&thumb).is_ok_and(|m| m.is_file()) {
        return Ok(Thumbnail::Ready(thumb));
    }
    let marker = dir.join(format!("{stem}.none"));
    if fsx::exists(&marker) {
        if !retry {
            return Ok(Thumbnail::Failed);
        }
        let _ = fs::remove_file(&marker);
    }
    Ok(Thumbnail::Make(Derived::begin(thumb, "tmp")?))
}

/// Remembers that `media` gave no thumbnail, so a rebuild does not try again.
pub fn thumbnail_failed(root: &Path, imei: u64, media: &Path) {
    let stem = media.file_stem().unwrap_or_default().to_string_lossy();
    if let Ok(dir) = thumb_dir(root, imei) {
        let _ = fsx::create_new(&dir.join(format!("{stem}.none")));
    }
}

/// Writes a page (the gallery) under the output folder, atomically.
pub fn write_page(root: &Path, name: &str, html: &[u8]) -> Result<PathBuf> {
    let dest = root.join(name);
    crate::publish::write_replace(&dest, html, false)?;
    Ok(dest)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn derived_files_belong_to_their_originals_sidecar() {
        for f in [
            "/o/1/a.h265",
            "/o/1/a.mp4",
            "/o/1/a.converted.mp4",
            "/o/1/a.jpg",
        ] {
            assert_eq!(
                sidecar_path_of(Path::new(f)),
                Path::new("/o/1/a.json"),
                "{f}"
            );
        }
        assert_eq!(
            sidecar_path_of(Path::new("/o/1/.converted.mp4")),
            Path::new("/o/1/.converted.json")
        );
    }

    #[test]
    fn mp4_names_never_meet_the_video() {
        assert_eq!(mp4_path(Path::new("/o/1/a.h265")), Path::new("/o/1/a.mp4"));
        assert_eq!(
            mp4_path(Path::new("/o/1/a.mp4")),
            Path::new("/o/1/a.converted.mp4")
        );
    }

    #[cfg(unix)]
    #[test]
    fn a_planted_symlink_is_replaced_never_followed() {
        let tmp = tempfile::tempdir().unwrap();
        let outside = tmp.path().join("outside.jpg");
        fs::write(&outside, b"keep me").unwrap();
        let root = tmp.path().join("out");
        fs::create_dir_all(root.join(THUMBS).join("7")).unwrap();
        let media = root.join("7").join("x.jpg");
        let planted = root.join(THUMBS).join("7").join("x.jpg.tmp");
        std::os::unix::fs::symlink(&outside, &planted).unwrap();
        // The temp name is taken by a link: refused, nothing written through it.
        assert!(thumbnail(&root, 7, &media, false).is_err());
        fs::remove_file(&planted).unwrap();
        let dest = root.join(THUMBS).join("7").join("x.jpg");
        std::os::unix::fs::symlink(&outside, &dest).unwrap();
        // A link where the thumbnail goes is not "ready"; the new one replaces it.
        let Thumbnail::Make(d) = thumbnail(&root, 7, &media, false).unwrap() else {
            panic!("a symlink is not a thumbnail");
        };
        fs::write(d.path(), b"thumb").unwrap();
        d.commit().unwrap();
        assert_eq!(fs::read(&outside).unwrap(), b"keep me");
        assert!(!fs::symlink_metadata(&dest)
            .unwrap()
            .file_type()
            .is_symlink());
    }
}
