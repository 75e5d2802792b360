//! `verify`: passes the real samples from a live camera, and fails a video of
//! random bytes, a photo that is not a JPEG, and metadata at 0/0.

mod common;

use std::io::BufRead;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use common::*;
use dashcam_server::codec::FileKind;
use dashcam_server::simulator::run_camera;

const BIN: &str = env!("CARGO_BIN_EXE_dashcam-server");
const IMEI: u64 = 350612071913857;

fn samples() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("samples")
}

#[test]
#[cfg_attr(
    not(have_ffmpeg),
    ignore = "needs ffmpeg and ffprobe on PATH (apt install ffmpeg)"
)]
fn verify_passes_the_real_samples_from_a_live_camera() {
    let tmp = tempfile::tempdir().unwrap();
    let port = free_port();
    let mut child = Command::new(BIN)
        .args(["verify", "--bind", "127.0.0.1", "--port", &port.to_string()])
        .args([
            "--timeout",
            "60",
            "--expect",
            "videof,photof",
            "--output-dir",
        ])
        .arg(tmp.path())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut err = std::io::BufReader::new(child.stderr.take().unwrap());
    let mut line = String::new();
    while !line.contains("listening on") {
        line.clear();
        assert!(
            err.read_line(&mut line).unwrap() > 0,
            "verify did not start"
        );
    }
    std::thread::spawn(move || std::io::copy(&mut err, &mut std::io::sink()));
    let mut cam = dashcam_server::simulator::SimConfig::new(format!("127.0.0.1:{port}"), IMEI);
    cam.timeout = Duration::from_secs(20);
    cam.frame_rate = 30;
    cam.video_duration_s = 3;
    cam.corrupt_packets = vec![7];
    cam.files = vec![
        (FileKind::VideoFront, samples().join("front.h265")),
        (FileKind::PhotoFront, samples().join("photo.jpg")),
    ];
    assert!(run_camera(&cam).unwrap().complete);
    let out = child.wait_with_output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}");
    assert!(
        text.contains("hevc, 90 frames at 30 fps = 3.0 s (metadata: 3 s, 30 fps)"),
        "{text}"
    );
    assert!(text.contains("JPEG 320x240"), "{text}");
    assert!(
        text.contains("1 retry"),
        "the spoiled packet is counted: {text}"
    );
    assert!(text.contains("OVERALL: PASS (2 file(s))"), "{text}");
}

/// A camera's name, the files it sends, and the position its metadata reports.
type Case = (&'static str, Vec<(FileKind, PathBuf)>, Option<(f64, f64)>);

fn verify_dir(dir: &Path) -> (bool, String) {
    let o = Command::new(BIN)
        .args(["verify", "--dir"])
        .arg(dir)
        .output()
        .unwrap();
    // A folder with files: passed (0) or a file failed (1), never 2.
    assert!(
        matches!(o.status.code(), Some(0 | 1)),
        "{:?} {}",
        o.status,
        String::from_utf8_lossy(&o.stderr)
    );
    (
        o.status.success(),
        String::from_utf8_lossy(&o.stdout).into_owned(),
    )
}

#[test]
#[cfg_attr(
    not(have_ffmpeg),
    ignore = "needs ffmpeg and ffprobe on PATH (apt install ffmpeg)"
)]
fn verify_fails_random_video_a_photo_that_is_not_jpeg_and_position_0_0() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("out");
    let srv = start(&out, |c| c.session.metadata = true);
    let cases: [Case; 4] = [
        (
            "good",
            vec![
                (FileKind::VideoRear, samples().join("rear.h265")),
                (FileKind::PhotoRear, samples().join("photo.jpg")),
            ],
            None,
        ),
        (
            "random video",
            vec![(
                FileKind::VideoFront,
                write_file(tmp.path(), "random.h265", &content(50_000, 3)),
            )],
            None,
        ),
        (
            "png photo",
            vec![(
                FileKind::PhotoFront,
                write_file(tmp.path(), "x.jpg", b"\x89PNG\r\n\x1a\nnot a jpeg at all"),
            )],
            None,
        ),
        (
            "position 0/0",
            vec![(FileKind::PhotoFront, samples().join("photo.jpg"))],
            Some((0.0, 0.0)),
        ),
    ];
    for (i, (name, files, position)) in cases.into_iter().enumerate() {
        let imei = IMEI + i as u64;
        let mut cam = srv.sim(imei);
        cam.files = files;
        cam.frame_rate = 25;
        cam.video_duration_s = 2;
        if let Some(p) = position {
            cam.position = p;
        }
        assert!(run_camera(&cam).unwrap().complete, "{name}");
        let (ok, text) = verify_dir(&out.join(imei.to_string()));
        match name {
            "good" => assert!(ok && text.contains("OVERALL: PASS (2 file(s))"), "{text}"),
            "random video" => {
                assert!(!ok, "{text}");
                assert!(text.contains("video     FAIL"), "{text}");
            }
            "png photo" => {
                assert!(!ok, "{text}");
                assert!(
                    text.contains("photo     FAIL   not a JPEG (a PNG)"),
                    "{text}"
                );
            }
            _ => {
                assert!(!ok, "{text}");
                assert!(text.contains("position 0/0 (no GPS fix)"), "{text}");
            }
        }
    }
    // The whole folder: one failure fails it all.
    let (ok, text) = verify_dir(&out);
    assert!(!ok && text.contains("OVERALL: FAIL (5 file(s))"), "{text}");
    // And a camera that never comes.
    let o = Command::new(BIN)
        .args([
            "verify",
            "--bind",
            "127.0.0.1",
            "--port",
            "0",
            "--timeout",
            "0.5",
            "--output-dir",
        ])
        .arg(tmp.path().join("none"))
        .output()
        .unwrap();
    // No camera came: the job failed (1), not a usage error (2).
    assert_eq!(o.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&o.stdout).contains("no camera connected"));
}

/// `verify --dir` with a PATH of the caller's choosing.
#[cfg(unix)]
fn verify_dir_with_path(dir: &Path, path: &Path) -> (bool, String) {
    let o = Command::new(BIN)
        .args(["verify", "--dir"])
        .arg(dir)
        .env("PATH", path)
        .output()
        .unwrap();
    (
        o.status.success(),
        String::from_utf8_lossy(&o.stdout).into_owned(),
    )
}

/// A Windows box often has a bare `ffmpeg.exe` and no `ffprobe`: `verify`
/// needs only ffmpeg; with neither, the video check fails and says how to
/// get one (the photo is still checked by its structure).
#[test]
#[cfg(unix)]
#[cfg_attr(
    not(have_ffmpeg),
    ignore = "needs ffmpeg and ffprobe on PATH (apt install ffmpeg)"
)]
fn verify_needs_only_ffmpeg_and_says_how_to_get_it() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("out");
    let srv = start(&out, |c| c.session.metadata = true);
    let mut cam = srv.sim(IMEI);
    cam.files = vec![
        (FileKind::VideoRear, samples().join("rear.h265")),
        (FileKind::PhotoRear, samples().join("photo.jpg")),
    ];
    cam.frame_rate = 25;
    cam.video_duration_s = 2;
    assert!(run_camera(&cam).unwrap().complete);
    // Only ffmpeg on PATH: no ffprobe anywhere.
    let only = tmp.path().join("only-ffmpeg");
    std::fs::create_dir(&only).unwrap();
    let ffmpeg = std::env::split_paths(&std::env::var_os("PATH").unwrap())
        .map(|d| d.join("ffmpeg"))
        .find(|p| p.is_file())
        .unwrap();
    std::os::unix::fs::symlink(ffmpeg, only.join("ffmpeg")).unwrap();
    let (ok, text) = verify_dir_with_path(&out, &only);
    assert!(ok && text.contains("OVERALL: PASS (2 file(s))"), "{text}");
    assert!(text.contains("hevc, 50 frames"), "{text}");
    // Neither: the video fails with the way to get ffmpeg.
    let none = tmp.path().join("nothing");
    std::fs::create_dir(&none).unwrap();
    let (ok, text) = verify_dir_with_path(&out, &none);
    assert!(!ok, "{text}");
    assert!(
        text.contains("video     FAIL") && text.contains("apt-get install ffmpeg"),
        "{text}"
    );
    assert!(text.contains("photo     PASS"), "{text}");
}

/// Sets a stored file's received time (its sidecar's `started_at` and
/// `completed_at`), as if the server had stored it then.
fn received_at(media: &Path, when: chrono::DateTime<chrono::Utc>) {
    let side = media.with_extension("json");
    let mut v: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&side).unwrap()).unwrap();
    let t = when.to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
    v["started_at"] = t.clone().into();
    v["completed_at"] = t.into();
    std::fs::write(&side, serde_json::to_string_pretty(&v).unwrap()).unwrap();
}

/// Capture times are judged against the moment each file was received, not
/// the moment verify runs: last year's archive with sound clocks passes; a
/// capture time after the file arrived is the camera's clock ahead, said so,
/// with what to do.
#[test]
#[cfg_attr(
    not(have_ffmpeg),
    ignore = "needs ffmpeg and ffprobe on PATH (apt install ffmpeg)"
)]
fn verify_dir_judges_capture_times_against_the_receipt() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("out");
    let srv = start(&out, |c| c.session.metadata = true);
    let year_ago = chrono::Utc::now() - chrono::Duration::days(365);
    // Captured 15 minutes before it was received, a year ago.
    let mut cam = srv.sim(IMEI);
    cam.files = vec![(FileKind::PhotoFront, samples().join("photo.jpg"))];
    cam.meta_time = Some(year_ago.timestamp() - 15 * 60);
    assert!(run_camera(&cam).unwrap().complete);
    let photo = media(&out, IMEI).pop().unwrap();
    received_at(&photo, year_ago);
    let (ok, text) = verify_dir(&out);
    assert!(ok, "{text}");
    assert!(
        text.contains("15 min before it reached the server"),
        "{text}"
    );
    // Another camera's clock 2 hours ahead of its receipt, checked today.
    let mut cam = srv.sim(IMEI + 1);
    cam.files = vec![(FileKind::PhotoFront, samples().join("photo.jpg"))];
    cam.meta_time = Some(chrono::Utc::now().timestamp() + 2 * 3600);
    assert!(run_camera(&cam).unwrap().complete);
    let (ok, text) = verify_dir(&out.join((IMEI + 1).to_string()));
    assert!(!ok, "{text}");
    assert!(
        text.contains("metadata  FAIL") && text.contains("the camera's clock is 2.0 h ahead"),
        "{text}"
    );
    assert!(
        text.contains("what to do: The camera's capture time is later than"),
        "the hint under the FAIL line: {text}"
    );
    // Just received: "ago".
    let mut cam = srv.sim(IMEI + 2);
    cam.files = vec![(FileKind::PhotoFront, samples().join("photo.jpg"))];
    cam.meta_time = Some(chrono::Utc::now().timestamp() - 15 * 60);
    assert!(run_camera(&cam).unwrap().complete);
    let (ok, text) = verify_dir(&out.join((IMEI + 2).to_string()));
    assert!(ok && text.contains(", 15 min ago,"), "{text}");
}

/// A folder that is not there, a folder with nothing stored, a file that
/// cannot be read: one clear line and exit 2 (a usage error), not a PASS
/// and not 1 (a file that failed).
#[cfg(unix)]
#[test]
fn verify_dir_without_files_to_check_is_a_usage_error() {
    let tmp = tempfile::tempdir().unwrap();
    let run = |dir: &Path| {
        let o = Command::new(BIN)
            .args(["verify", "--dir"])
            .arg(dir)
            .output()
            .unwrap();
        (
            o.status.code(),
            String::from_utf8_lossy(&o.stderr).into_owned(),
        )
    };
    let (code, err) = run(&tmp.path().join("nowhere"));
    assert_eq!(code, Some(2), "{err}");
    assert!(
        err.contains("folder not found") && err.contains("nowhere"),
        "{err}"
    );
    std::fs::create_dir(tmp.path().join("empty")).unwrap();
    let (code, err) = run(&tmp.path().join("empty"));
    assert_eq!(code, Some(2), "{err}");
    assert!(err.contains("no stored file in"), "{err}");
    // A stored photo its reader may not read (mode 000). Root reads
    // anything, so as root verify runs as `nobody` (setpriv, util-linux).
    let out = tmp.path().join("out");
    let srv = start(&out, |_| {});
    let mut cam = srv.sim(IMEI);
    cam.files = vec![(FileKind::PhotoFront, samples().join("photo.jpg"))];
    assert!(run_camera(&cam).unwrap().complete);
    srv.shutdown();
    let photo = media(&out, IMEI).pop().unwrap();
    use std::os::unix::fs::PermissionsExt;
    for d in [
        tmp.path().to_path_buf(),
        out.clone(),
        out.join(IMEI.to_string()),
    ] {
        std::fs::set_permissions(&d, std::fs::Permissions::from_mode(0o755)).unwrap();
    }
    std::fs::set_permissions(
        photo.with_extension("json"),
        std::fs::Permissions::from_mode(0o644),
    )
    .unwrap();
    std::fs::set_permissions(&photo, std::fs::Permissions::from_mode(0o000)).unwrap();
    let root =
        std::fs::metadata("/proc/self").is_ok_and(|m| std::os::unix::fs::MetadataExt::uid(&m) == 0);
    let mut cmd = if root {
        let mut c = Command::new("setpriv");
        c.args(["--reuid=65534", "--regid=65534", "--clear-groups", BIN]);
        c
    } else {
        Command::new(BIN)
    };
    let o = cmd.args(["verify", "--dir"]).arg(&out).output().unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(2), "{err}");
    assert!(
        err.contains("cannot read") && err.contains("Permission denied"),
        "{err}"
    );
}

/// Every cause of a FAIL has its hint, `verify --explain` prints them all,
/// and the README's troubleshooting section lists each (symptom and what
/// to do), so the three never drift apart.
#[test]
fn every_fail_kind_is_explained_in_verify_and_the_readme() {
    let o = Command::new(BIN)
        .args(["verify", "--explain"])
        .output()
        .unwrap();
    assert!(o.status.success());
    let explained = String::from_utf8_lossy(&o.stdout)
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ");
    let readme =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("README.md")).unwrap();
    let section = readme
        .split("## Troubleshooting")
        .nth(1)
        .expect("a Troubleshooting section in the README");
    let section = section.split("\n## ").next().unwrap();
    let flat = section.split_whitespace().collect::<Vec<_>>().join(" ");
    for (cause, seen, todo) in dashcam_server::tools::verify::CAUSES {
        assert!(!todo.is_empty(), "{cause:?} has no hint");
        assert!(
            explained.contains(seen) && explained.contains(todo),
            "--explain lacks {cause:?}"
        );
        assert!(
            flat.contains(seen),
            "the README lacks the symptom of {cause:?}: {seen}"
        );
        assert!(
            flat.contains(todo),
            "the README lacks what to do for {cause:?}: {todo}"
        );
    }
}
