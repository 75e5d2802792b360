//! Unit tests of `endpoint`.

use super::*;

#[test]
fn paths_never_leave_the_output_folder() {
    let tmp = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(tmp.path().join("1/.partial")).unwrap();
    std::fs::write(tmp.path().join("1/a.jpg"), b"x").unwrap();
    std::fs::write(tmp.path().join("1/.partial/p.part"), b"x").unwrap();
    std::fs::write(tmp.path().join("index.html"), b"x").unwrap();
    assert_eq!(
        local_file(tmp.path(), "/1/a.jpg"),
        Some(tmp.path().join("1/a.jpg"))
    );
    assert_eq!(
        local_file(tmp.path(), "/"),
        Some(tmp.path().join("index.html"))
    );
    for bad in [
        "/../etc/passwd",
        "/1/%2e%2e/%2e%2e/x",
        "/1/.partial/p.part",
        "/.outbox/x",
        "/1",
        "/%00",
    ] {
        assert_eq!(local_file(tmp.path(), bad), None, "{bad}");
    }
    #[cfg(unix)]
    {
        std::os::unix::fs::symlink("/etc", tmp.path().join("2")).unwrap();
        assert_eq!(local_file(tmp.path(), "/2/passwd"), None);
    }
}

#[test]
fn byte_ranges_as_players_ask_them() {
    assert_eq!(byte_range("bytes=100-199", 1000), Ok((100, 199)));
    assert_eq!(byte_range("bytes=100-", 1000), Ok((100, 999)));
    assert_eq!(byte_range("bytes=-500", 1000), Ok((500, 999)));
    assert_eq!(byte_range("bytes=0-5000", 1000), Ok((0, 999)));
    assert_eq!(byte_range("bytes=1000-", 1000), Err(true));
    assert_eq!(byte_range("bytes=5-4", 1000), Err(true));
    assert_eq!(byte_range("bytes=0-1,5-6", 1000), Err(false));
    assert_eq!(byte_range("items=0-1", 1000), Err(false));
    assert_eq!(byte_range("bytes=x-1", 1000), Err(false));
}

#[test]
fn basic_auth_carries_the_token_as_password() {
    assert_eq!(unbase64("dTpzZWNyZXQ=").unwrap(), b"u:secret");
    assert!(constant_eq(b"abc", b"abc"));
    assert!(!constant_eq(b"abc", b"abd"));
}
