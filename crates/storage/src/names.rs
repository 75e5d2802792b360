//! What a requested file is called on disk. Device-supplied text never becomes
//! a path: only a sanitized last component of a device path names the file.

use dashcam_protocol::FileSpec;

const MAX_NAME: usize = 80;

/// FNV-1a: a stable short hash of device text for names (not for security).
pub fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, &b| {
        (h ^ b as u64).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

/// The plain name a file is stored under: `videof`, or the sanitized last
/// component of the device's path (with a short hash of the whole path when
/// sanitizing changed it or the path has folders).
pub fn stem(spec: &FileSpec) -> String {
    if let Some(kind) = spec.kind {
        return kind.name().to_string();
    }
    let path = spec.identifier.as_slice();
    let text = String::from_utf8_lossy(path);
    let last = text.rsplit(['/', '\\']).next().unwrap_or_default();
    let stem = match last.rsplit_once('.') {
        Some((s, _)) if !s.is_empty() => s,
        _ => last,
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
        name = "file".into();
    }
    // The same last component in two folders (front and rear), or two names
    // that sanitize alike, must not meet: a short hash of the whole path.
    if last.len() != path.len() || name != stem {
        name = format!("{name}-{:06x}", fnv1a(path) & 0xFF_FFFF);
    }
    name
}

#[cfg(test)]
mod tests {
    use super::*;
    use dashcam_protocol::codec::FileKind;

    #[test]
    fn dualcam_names() {
        assert_eq!(stem(&FileSpec::dualcam(FileKind::PhotoRear)), "photor");
        assert_eq!(stem(&FileSpec::dualcam(FileKind::VideoFront)), "videof");
    }

    #[test]
    fn only_the_last_part_of_a_path_names_the_file() {
        let s = stem(&FileSpec::from_path(b"/mnt/sd/mdas9/video/event 01.MP4"));
        assert!(s.starts_with("event_01-"), "{s}");
        assert_eq!(stem(&FileSpec::from_path(b"x.exe")), "x");
        let front = stem(&FileSpec::from_path(b"/sd/dualcam_front/0001.h265"));
        let rear = stem(&FileSpec::from_path(b"/sd/dualcam_rear/0001.h265"));
        assert_ne!(front, rear);
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
            b"dsm/picture/231020/231452.jpg\0",
        ] {
            let s = stem(&FileSpec::from_path(bad));
            assert!(
                s.chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_'),
                "{bad:?} -> {s}"
            );
            assert!(!s.is_empty() && s.len() <= MAX_NAME + 7);
        }
    }
}
