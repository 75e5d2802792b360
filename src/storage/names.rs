//! What a requested file is called on disk. Device-supplied text never becomes
//! a path: only a sanitized last component of a device path names the file.

use crate::codec::FileKind;

const MAX_NAME: usize = 80;

/// A file the server asks for: the identifier sent back to the device, and the
/// plain name storage gives it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileSpec {
    /// Sent in FILE REQ: `%videof`, or the device's path exactly as it sent it.
    pub identifier: Vec<u8>,
    /// `videof`, or the sanitized last component of the path (with a short hash).
    pub name: String,
    pub extension: &'static str,
    /// `video`, `photo` or `file`.
    pub media: &'static str,
    /// `front`, `rear`, or None when the path does not say.
    pub camera: Option<&'static str>,
}

/// FNV-1a: a stable short hash of device text for names (not for security).
pub fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, &b| {
        (h ^ b as u64).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

impl FileSpec {
    pub fn dualcam(kind: FileKind) -> FileSpec {
        FileSpec {
            identifier: kind.identifier().as_bytes().to_vec(),
            name: kind.name().to_string(),
            extension: if kind.is_video() { "h265" } else { "jpg" },
            media: if kind.is_video() { "video" } else { "photo" },
            camera: Some(if kind.is_front() { "front" } else { "rear" }),
        }
    }

    /// A path from a PATH (0x000D) frame, already checked by the session
    /// (printable ASCII, at most 255 bytes). Absolute paths, `..` and spaces
    /// are fine: the path is only an identifier.
    pub fn from_path(path: &[u8]) -> FileSpec {
        let text = String::from_utf8_lossy(path);
        let lower = text.to_ascii_lowercase();
        let last = text.rsplit(['/', '\\']).next().unwrap_or_default();
        let (stem, ext) = match last.rsplit_once('.') {
            Some((s, e)) if !s.is_empty() => (s, e.to_ascii_lowercase()),
            _ => (last, String::new()),
        };
        let extension = match ext.as_str() {
            "mp4" => "mp4",
            "h265" => "h265",
            "jpg" | "jpeg" => "jpg",
            _ if lower.contains("picture") => "jpg",
            _ => "bin",
        };
        let media = match extension {
            "mp4" | "h265" => "video",
            "jpg" => "photo",
            _ => "file",
        };
        let camera = if lower.contains("dualcam_front") {
            Some("front")
        } else if lower.contains("dualcam_rear") {
            Some("rear")
        } else {
            None
        };
        let mut name: String = stem
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                    c
                } else {
                    '_'
                }
            })
            .take(MAX_NAME)
            .collect();
        let trimmed = name.trim_matches('_');
        if trimmed.is_empty() {
            name = "file".into();
        }
        // The same last component in two folders (front and rear), or two names
        // that sanitize alike, must not meet: a short hash of the whole path.
        if last.len() != path.len() || name != stem {
            name = format!("{name}-{:06x}", fnv1a(path) & 0xFF_FFFF);
        }
        FileSpec {
            identifier: path.to_vec(),
            name,
            extension,
            media,
            camera,
        }
    }

    pub fn display(&self) -> String {
        String::from_utf8_lossy(&self.identifier).into_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dualcam_names() {
        let s = FileSpec::dualcam(FileKind::PhotoRear);
        assert_eq!((s.name.as_str(), s.extension), ("photor", "jpg"));
        assert_eq!((s.media, s.camera), ("photo", Some("rear")));
        assert_eq!(FileSpec::dualcam(FileKind::VideoFront).extension, "h265");
    }

    #[test]
    fn paths_are_identifiers_and_only_the_last_part_names_the_file() {
        let s = FileSpec::from_path(b"/mnt/sd/mdas9/video/event 01.MP4");
        assert_eq!(s.identifier, b"/mnt/sd/mdas9/video/event 01.MP4");
        assert!(s.name.starts_with("event_01-"), "{}", s.name);
        assert_eq!((s.extension, s.media), ("mp4", "video"));
        let pic = FileSpec::from_path(b"/sd/dsm/picture/0001");
        assert_eq!((pic.extension, pic.media), ("jpg", "photo"));
        assert_eq!(FileSpec::from_path(b"x.exe").extension, "bin");
        assert_eq!(FileSpec::from_path(b"x.exe").name, "x");
        assert_eq!(FileSpec::from_path(b"clip.h265").extension, "h265");
        let front = FileSpec::from_path(b"/sd/dualcam_front/0001.h265");
        let rear = FileSpec::from_path(b"/sd/dualcam_rear/0001.h265");
        assert_ne!(front.name, rear.name);
        assert_eq!((front.camera, rear.camera), (Some("front"), Some("rear")));
    }

    #[test]
    fn hostile_paths_never_leave_the_folder() {
        for bad in [
            &b"../../etc/passwd"[..],
            b"a/../../b.jpg",
            b"..\\x.jpg",
            b"/etc/shadow",
            b"\\\\server\\share.jpg",
            b"C:\\x.jpg",
            b"..",
            b"/",
            b"...jpg",
        ] {
            let s = FileSpec::from_path(bad);
            assert!(
                s.name
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_'),
                "{bad:?} -> {}",
                s.name
            );
            assert!(!s.name.is_empty() && s.name.len() <= MAX_NAME + 7);
            assert_eq!(s.identifier, bad, "sent back unchanged");
        }
    }
}
