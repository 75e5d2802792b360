//! What a requested file is called on disk. Device-supplied text never becomes
//! a path: ADAS paths are checked, then reduced to a plain file name.

use crate::codec::FileKind;

/// Extensions kept from an ADAS path; anything else is stored as `.bin`.
const KNOWN_EXTENSIONS: &[&str] = &[
    "mp4", "h264", "h265", "264", "265", "hevc", "avi", "mov", "mkv", "ts", "jpg", "jpeg", "png",
    "bmp", "bin",
];
const MAX_NAME: usize = 80;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileSpec {
    /// Sent in FILE REQ / METADATA REQ: `%videof`, or the ADAS path.
    pub identifier: Vec<u8>,
    /// `videof`, or the sanitized ADAS file name without extension.
    pub name: String,
    pub extension: String,
    /// `video`, `photo` or `adas`.
    pub media: &'static str,
    /// `front`, `rear`, or None for ADAS.
    pub camera: Option<&'static str>,
}

impl FileSpec {
    pub fn dashcam(kind: FileKind) -> FileSpec {
        FileSpec {
            identifier: kind.identifier().as_bytes().to_vec(),
            name: kind.name().to_string(),
            extension: kind.extension().to_string(),
            media: if kind.is_video() { "video" } else { "photo" },
            camera: Some(if kind.is_front() { "front" } else { "rear" }),
        }
    }

    /// Checks a path from a PATH (0x000D) frame. Refused: empty, non-UTF-8,
    /// NUL or control characters, absolute paths, drive letters, `..` parts.
    pub fn adas(raw: &[u8]) -> Result<FileSpec, String> {
        let raw = raw.strip_suffix(&[0]).unwrap_or(raw);
        let path = std::str::from_utf8(raw).map_err(|_| "path is not UTF-8".to_string())?;
        if path.is_empty() {
            return Err("path is empty".into());
        }
        if path.chars().any(char::is_control) {
            return Err("path holds NUL or control characters".into());
        }
        if path.starts_with('/') || path.starts_with('\\') || path.as_bytes().get(1) == Some(&b':')
        {
            return Err("path is absolute".into());
        }
        let parts: Vec<&str> = path.split(['/', '\\']).collect();
        if parts.contains(&"..") {
            return Err("path climbs out with '..'".into());
        }
        let last = parts.last().copied().unwrap_or_default();
        let (stem, ext) = match last.rsplit_once('.') {
            Some((s, e)) if KNOWN_EXTENSIONS.contains(&e.to_ascii_lowercase().as_str()) => {
                (s, e.to_ascii_lowercase())
            }
            _ => (last, "bin".to_string()),
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
        if name.trim_matches('_').is_empty() {
            name = "adas".into();
        }
        Ok(FileSpec {
            identifier: raw.to_vec(),
            name,
            extension: ext,
            media: "adas",
            camera: None,
        })
    }

    pub fn display(&self) -> String {
        String::from_utf8_lossy(&self.identifier).into_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dashcam_names() {
        let s = FileSpec::dashcam(FileKind::PhotoRear);
        assert_eq!((s.name.as_str(), s.extension.as_str()), ("photor", "jpg"));
        assert_eq!((s.media, s.camera), ("photo", Some("rear")));
        assert_eq!(FileSpec::dashcam(FileKind::VideoFront).extension, "h265");
    }

    #[test]
    fn adas_paths_become_plain_names() {
        let s = FileSpec::adas(b"DCIM/ADAS/event 01.MP4\0").unwrap();
        assert_eq!((s.name.as_str(), s.extension.as_str()), ("event_01", "mp4"));
        assert_eq!(s.identifier, b"DCIM/ADAS/event 01.MP4");
        assert_eq!(FileSpec::adas(b"x/y.exe").unwrap().extension, "bin");
        assert_eq!(FileSpec::adas(b"dir/").unwrap().name, "adas");
        assert_eq!(FileSpec::adas(b"...jpg").unwrap().name, "adas");
    }

    #[test]
    fn hostile_adas_paths_are_refused() {
        for bad in [
            &b"../../etc/passwd"[..],
            b"a/../../b.jpg",
            b"..\\x.jpg",
            b"/etc/shadow",
            b"\\\\server\\share.jpg",
            b"C:\\x.jpg",
            b"a\0b.jpg",
            b"\xff\xfe.jpg",
            b"",
            b"line\nbreak.jpg",
        ] {
            assert!(FileSpec::adas(bad).is_err(), "{bad:?} accepted");
        }
    }
}
