//! File-system primitives for the output folder: nothing is opened through a
//! symlink (`O_NOFOLLOW` on Unix), temp files are `create_new`, and folders are
//! fsynced after a rename so the rename survives a power cut.

use std::fs::{self, File, OpenOptions};
use std::io;
use std::path::Path;
use std::time::{Duration, Instant};

#[cfg(unix)]
fn no_follow(o: &mut OpenOptions) -> &mut OpenOptions {
    use std::os::unix::fs::OpenOptionsExt;
    o.custom_flags(libc::O_NOFOLLOW)
}

#[cfg(not(unix))]
fn no_follow(o: &mut OpenOptions) -> &mut OpenOptions {
    o
}

/// Refuses a path whose last component is a symlink (for platforms without
/// `O_NOFOLLOW`, and for clearer errors everywhere).
fn refuse_symlink(path: &Path) -> io::Result<()> {
    match fs::symlink_metadata(path) {
        Ok(m) if m.file_type().is_symlink() => Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("{} is a symlink: refused", path.display()),
        )),
        _ => Ok(()),
    }
}

/// Opens an existing file for reading and writing, never through a symlink.
pub fn open_rw(path: &Path) -> io::Result<File> {
    refuse_symlink(path)?;
    no_follow(OpenOptions::new().read(true).write(true)).open(path)
}

/// Opens an existing file for reading, never through a symlink.
pub fn open_read(path: &Path) -> io::Result<File> {
    refuse_symlink(path)?;
    no_follow(OpenOptions::new().read(true)).open(path)
}

/// Creates a file that must not exist yet (no symlink can be there either).
pub fn create_new(path: &Path) -> io::Result<File> {
    no_follow(OpenOptions::new().read(true).write(true).create_new(true)).open(path)
}

/// Opens (creating) a file for appending, never through a symlink.
pub fn open_append(path: &Path) -> io::Result<File> {
    refuse_symlink(path)?;
    no_follow(OpenOptions::new().append(true).create(true)).open(path)
}

/// Creates `dir` if needed; an existing symlink there is refused.
pub fn ensure_dir(dir: &Path) -> io::Result<()> {
    match fs::symlink_metadata(dir) {
        Ok(m) if m.file_type().is_symlink() => Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!(
                "{} is a symlink: refused (nothing is written through links)",
                dir.display()
            ),
        )),
        Ok(m) if m.is_dir() => Ok(()),
        Ok(_) => Err(io::Error::new(
            io::ErrorKind::AlreadyExists,
            format!("{} exists and is not a folder", dir.display()),
        )),
        Err(e) if e.kind() == io::ErrorKind::NotFound => match fs::create_dir(dir) {
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => ensure_dir(dir),
            r => r,
        },
        Err(e) => Err(e),
    }
}

/// How long a rename waits for another program to let go of a file.
pub const HELD_OPEN_WAIT: Duration = Duration::from_secs(10);

/// Renames `from` over `to`. On Windows a file another program holds open
/// (an antivirus scanning a new file, a viewer showing it) cannot be renamed
/// or replaced until it lets go: tried again for up to [`HELD_OPEN_WAIT`],
/// then an error that says so. `from` stays where it was, so nothing is lost:
/// a partial stays resumable, a temp file is tried again next time.
pub fn rename(from: &Path, to: &Path) -> io::Result<()> {
    rename_with(from, to, HELD_OPEN_WAIT, |a, b| fs::rename(a, b))
}

/// Windows' "in use" answers: ERROR_ACCESS_DENIED (a pending delete, or a
/// handle without FILE_SHARE_DELETE), ERROR_SHARING_VIOLATION and
/// ERROR_LOCK_VIOLATION. Never on Unix, where an open file can be renamed.
fn held_open(e: &io::Error) -> bool {
    cfg!(windows) && matches!(e.raw_os_error(), Some(5 | 32 | 33))
}

fn rename_with(
    from: &Path,
    to: &Path,
    wait: Duration,
    mut rename: impl FnMut(&Path, &Path) -> io::Result<()>,
) -> io::Result<()> {
    rename_retrying(from, to, wait, &mut rename, held_open)
}

fn rename_retrying(
    from: &Path,
    to: &Path,
    wait: Duration,
    rename: &mut dyn FnMut(&Path, &Path) -> io::Result<()>,
    in_use: fn(&io::Error) -> bool,
) -> io::Result<()> {
    let start = Instant::now();
    let mut pause = Duration::from_millis(10);
    loop {
        match rename(from, to) {
            Ok(()) => return Ok(()),
            Err(e) if in_use(&e) && start.elapsed() < wait => {
                std::thread::sleep(pause.min(wait.saturating_sub(start.elapsed())));
                pause = (pause * 2).min(Duration::from_millis(500));
            }
            Err(e) if in_use(&e) => {
                return Err(io::Error::new(
                    e.kind(),
                    format!(
                        "{} or {} is held open by another program (an antivirus, a viewer?) \
                         for {} s: not renamed, {} kept ({e})",
                        from.display(),
                        to.display(),
                        wait.as_secs(),
                        from.display()
                    ),
                ))
            }
            Err(e) => return Err(e),
        }
    }
}

/// Makes a rename or a new name in `dir` durable.
pub fn sync_dir(dir: &Path) -> io::Result<()> {
    #[cfg(unix)]
    {
        File::open(dir)?.sync_all()
    }
    #[cfg(not(unix))]
    {
        // Windows cannot open a folder as a file; NTFS journals renames.
        let _ = dir;
        Ok(())
    }
}

/// Reads a small JSON file (a state, a sidecar) of at most `limit` bytes,
/// never through a symlink; None when it is missing or not that JSON.
pub fn read_json<T: serde::de::DeserializeOwned>(path: &Path, limit: u64) -> Option<T> {
    use std::io::Read;
    let mut text = Vec::new();
    open_regular(path)
        .ok()?
        .take(limit)
        .read_to_end(&mut text)
        .ok()?;
    serde_json::from_slice(&text).ok()
}

/// Opens a plain file for reading: never through a symlink, never blocking
/// on a FIFO or a device (`O_NOFOLLOW | O_NONBLOCK` on Unix), and only when
/// what it opened is a regular file. Anything planted under the output folder
/// (a FIFO, a device, a folder, a link) is refused at once.
pub fn open_regular(path: &Path) -> io::Result<File> {
    refuse_symlink(path)?;
    #[cfg(unix)]
    let f = {
        use std::os::unix::fs::OpenOptionsExt;
        OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK)
            .open(path)?
    };
    #[cfg(not(unix))]
    let f = File::open(path)?;
    if !f.metadata()?.is_file() {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("{} is not a plain file: refused", path.display()),
        ));
    }
    Ok(f)
}

/// Opens `rel` (plain `/`-separated names) for reading beneath the folder
/// `root`, one name at a time from the folder's own descriptor (`openat`,
/// `O_NOFOLLOW` at every step, `O_NONBLOCK` at the last), so a symlink
/// swapped in anywhere on the way, at any moment, is never followed; only a
/// regular file is returned. Names are checked by the caller's rules
/// ([`crate::under_root`]); this adds the race-free open.
#[cfg(unix)]
pub fn open_beneath(root: &Path, rel: &str) -> io::Result<File> {
    use rustix::fs::{openat, Mode, OFlags, CWD};
    let parts: Vec<&str> = rel.split('/').collect();
    if parts
        .iter()
        .any(|p| p.is_empty() || *p == "." || *p == ".." || p.contains('\0'))
    {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "not a plain relative path",
        ));
    }
    let dir_flags = OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC;
    let mut dir = openat(CWD, root, dir_flags, Mode::empty())?;
    let (last, folders) = parts.split_last().expect("split gives one part at least");
    for name in folders {
        dir = openat(&dir, *name, dir_flags, Mode::empty())?;
    }
    let fd = openat(
        &dir,
        *last,
        OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::NONBLOCK | OFlags::CLOEXEC,
        Mode::empty(),
    )?;
    let f = File::from(fd);
    if !f.metadata()?.is_file() {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "not a plain file",
        ));
    }
    Ok(f)
}

/// Windows: no symlink is created by the server, and creating one needs
/// rights a camera's files never have; each name on the way is checked, then
/// the file opened as a plain file.
#[cfg(not(unix))]
pub fn open_beneath(root: &Path, rel: &str) -> io::Result<File> {
    let mut p = root.to_path_buf();
    for name in rel.split('/') {
        if name.is_empty() || name == "." || name == ".." {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "not a plain relative path",
            ));
        }
        p.push(name);
        refuse_symlink(&p)?;
    }
    open_regular(&p)
}

/// Writes a small file beneath `root` (the health probe): created new,
/// never through a symlink, then removed. The name must be a plain name.
pub fn probe_write(root: &Path, name: &str) -> io::Result<()> {
    use std::io::Write;
    let p = root.join(name);
    // A stale probe (a kill between create and remove) or anything planted
    // under that name goes first; a symlink is removed, never followed.
    match fs::symlink_metadata(&p) {
        Ok(m) if m.is_dir() => {
            return Err(io::Error::new(
                io::ErrorKind::AlreadyExists,
                format!("{} is a folder", p.display()),
            ))
        }
        Ok(_) => fs::remove_file(&p)?,
        Err(_) => {}
    }
    let mut f = create_new(&p)?;
    let r = f.write_all(b"ok").and_then(|_| f.sync_all());
    drop(f);
    fs::remove_file(&p)?;
    r
}

/// Whether a path exists at all (a dangling symlink counts).
pub fn exists(path: &Path) -> bool {
    fs::symlink_metadata(path).is_ok()
}

/// Bytes free for this user on the file system holding `path` (`statvfs`
/// on Unix, `GetDiskFreeSpaceExW` on Windows, through `fs4`: no unsafe code
/// here, and the same check on both systems).
pub fn free_space(path: &Path) -> Option<u64> {
    fs4::available_space(path).ok()
}

/// The disk is full (ENOSPC), or a quota is exhausted: the protocol crate's
/// rule, which `StoreError` uses too.
pub use dashcam_protocol::file::is_no_space;

#[cfg(test)]
mod tests {
    use super::*;

    /// Windows itself (run under Wine by .ci/dist-check): a program holding
    /// the target open without FILE_SHARE_DELETE (a viewer, an antivirus)
    /// blocks a plain rename; ours goes through once it lets go.
    #[cfg(windows)]
    #[test]
    fn a_rename_over_a_file_held_open_goes_through_once_it_is_let_go() {
        use std::os::windows::fs::OpenOptionsExt;
        let tmp = tempfile::tempdir().unwrap();
        let (from, to) = (tmp.path().join("a.json.tmp"), tmp.path().join("a.json"));
        fs::write(&from, b"new").unwrap();
        fs::write(&to, b"old").unwrap();
        const FILE_SHARE_READ: u32 = 1;
        let held = OpenOptions::new()
            .read(true)
            .share_mode(FILE_SHARE_READ)
            .open(&to)
            .unwrap();
        let e = fs::rename(&from, &to).unwrap_err();
        assert!(held_open(&e), "a plain rename is refused while held: {e:?}");
        let (f, t) = (from.clone(), to.clone());
        let renaming = std::thread::spawn(move || rename(&f, &t));
        // Let the rename be refused once or more before the file is let go
        // (it passes either way: what is asserted is that it ends renamed).
        std::thread::sleep(Duration::from_millis(200));
        drop(held);
        renaming.join().unwrap().unwrap();
        assert_eq!(fs::read(&to).unwrap(), b"new");
        assert!(!from.exists());
    }

    /// A file held open for a while is renamed once it is let go; one held
    /// for good fails with a line that says why, and the source stays.
    #[test]
    fn a_rename_waits_for_a_file_held_open_then_says_why() {
        let tmp = tempfile::tempdir().unwrap();
        let (from, to) = (tmp.path().join("a.part"), tmp.path().join("a.h265"));
        fs::write(&from, b"video").unwrap();
        let busy = || io::Error::from_raw_os_error(32);
        let is_busy: fn(&io::Error) -> bool = |e| e.raw_os_error() == Some(32);
        let mut tries = 0;
        let mut held_three_times = |a: &Path, b: &Path| {
            tries += 1;
            if tries <= 3 {
                Err(busy())
            } else {
                fs::rename(a, b)
            }
        };
        rename_retrying(
            &from,
            &to,
            Duration::from_secs(5),
            &mut held_three_times,
            is_busy,
        )
        .unwrap();
        assert_eq!(tries, 4);
        assert_eq!(fs::read(&to).unwrap(), b"video");

        fs::write(&from, b"again").unwrap();
        let started = Instant::now();
        let e = rename_retrying(
            &from,
            &to,
            Duration::from_millis(200),
            &mut |_: &Path, _: &Path| Err(busy()),
            is_busy,
        )
        .unwrap_err();
        assert!(started.elapsed() >= Duration::from_millis(200));
        assert!(
            e.to_string().contains("held open by another program"),
            "{e}"
        );
        assert_eq!(fs::read(&from).unwrap(), b"again", "the source is kept");
        // Any other error is said at once.
        let e = rename_retrying(
            &from,
            &to,
            Duration::from_secs(5),
            &mut |_: &Path, _: &Path| Err(io::Error::from_raw_os_error(2)),
            is_busy,
        )
        .unwrap_err();
        assert_eq!(e.raw_os_error(), Some(2));
    }

    #[cfg(unix)]
    #[test]
    fn symlinks_are_never_followed() {
        let tmp = tempfile::tempdir().unwrap();
        let outside = tmp.path().join("outside");
        std::fs::write(&outside, b"secret").unwrap();
        let link = tmp.path().join("link");
        std::os::unix::fs::symlink(&outside, &link).unwrap();
        assert!(open_rw(&link).is_err());
        assert!(open_read(&link).is_err());
        assert!(open_append(&link).is_err());
        assert!(create_new(&link).is_err());
        let dlink = tmp.path().join("dlink");
        std::os::unix::fs::symlink(tmp.path(), &dlink).unwrap();
        assert!(ensure_dir(&dlink)
            .unwrap_err()
            .to_string()
            .contains("symlink"));
        assert_eq!(std::fs::read(&outside).unwrap(), b"secret");
        assert!(free_space(tmp.path()).unwrap() > 0);
    }
}
