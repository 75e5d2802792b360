//! The field toolkit through the real binary: conversion, decode, samples.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::*;
use dashcam_server::codec::FileKind;

const BIN: &str = env!("CARGO_BIN_EXE_dashcam-server");

fn samples() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("samples")
}

fn probe(path: &Path) -> String {
    let o = Command::new("ffprobe")
        .args([
            "-v",
            "error",
            "-select_streams",
            "v:0",
            "-show_entries",
            "stream=codec_name,width,height",
            "-of",
            "csv=p=0",
        ])
        .arg(path)
        .output()
        .unwrap();
    assert!(
        o.status.success(),
        "ffprobe {}: {}",
        path.display(),
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8_lossy(&o.stdout).trim().to_string()
}

#[test]
#[cfg_attr(
    not(have_ffmpeg),
    ignore = "needs ffmpeg and ffprobe on PATH (apt install ffmpeg)"
)]
fn samples_are_real_hevc_and_jpeg() {
    assert_eq!(probe(&samples().join("front.h265")), "hevc,320,240");
    assert_eq!(probe(&samples().join("rear.h265")), "hevc,320,240");
    assert_eq!(probe(&samples().join("photo.jpg")), "mjpeg,320,240");
}

struct Child(std::process::Child);

/// The server's "listening on" log line (a few lines come before it).
fn listening_line(reader: &mut impl std::io::BufRead) -> String {
    let mut line = String::new();
    for _ in 0..8 {
        line.clear();
        reader.read_line(&mut line).unwrap();
        if line.contains("listening on") {
            break;
        }
    }
    line
}

impl Drop for Child {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Runs `serve --convert mp4` (with extra flags), sends the samples, and
/// waits for the video's conversion. Returns the output folder, the .h265
/// and its sidecar.
fn convert_run(
    extra: &[&str],
) -> (
    tempfile::TempDir,
    PathBuf,
    PathBuf,
    dashcam_server::storage::Sidecar,
) {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("out");
    let port = free_port();
    let _server = Child(
        Command::new(BIN)
            .args([
                "serve",
                "--bind",
                "127.0.0.1",
                "--port",
                &port.to_string(),
                "--convert",
                "mp4",
                "--metadata",
            ])
            .args(extra)
            .arg("--output-dir")
            .arg(&out)
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let server = format!("127.0.0.1:{port}");
    let sim = simulate_until_served(
        BIN,
        &server,
        &[
            "--imei".into(),
            "350612071913857".into(),
            "--frame-rate".into(),
            "25".into(),
            "--file".into(),
            format!("videof={}", samples().join("front.h265").display()),
            "--file".into(),
            format!("photof={}", samples().join("photo.jpg").display()),
        ],
    );
    assert!(
        sim.status.success(),
        "simulate: {}",
        String::from_utf8_lossy(&sim.stderr)
    );
    assert!(String::from_utf8_lossy(&sim.stdout).contains("sent 2 file(s)"));
    let video = media(&out, 350612071913857)
        .into_iter()
        .find(|p| p.extension().is_some_and(|e| e == "h265"))
        .expect("stored h265");
    let began = Instant::now();
    let sidecar = loop {
        let sc = sidecar_of(&video);
        if sc.mp4.is_some()
            || sc.conversion_error.is_some()
            || began.elapsed() > Duration::from_secs(120)
        {
            break sc;
        }
        std::thread::sleep(Duration::from_millis(200));
    };
    (tmp, out, video, sidecar)
}

fn duration_of(path: &std::path::Path) -> f64 {
    let dur = Command::new("ffprobe")
        .args([
            "-v",
            "error",
            "-show_entries",
            "format=duration",
            "-of",
            "csv=p=0",
        ])
        .arg(path)
        .output()
        .unwrap();
    String::from_utf8_lossy(&dur.stdout).trim().parse().unwrap()
}

#[test]
#[cfg_attr(
    not(have_ffmpeg),
    ignore = "needs ffmpeg and ffprobe on PATH (apt install ffmpeg)"
)]
fn serve_convert_mp4_turns_a_real_clip_into_playable_h264() {
    let (_tmp, out, video, sidecar) = convert_run(&[]);
    assert_eq!(sidecar.conversion_error, None);
    let mp4 = video.with_file_name(sidecar.mp4.expect("mp4 recorded in the sidecar"));
    assert_eq!(mp4, video.with_extension("mp4"));
    assert_eq!(
        std::fs::read(&video).unwrap(),
        std::fs::read(samples().join("front.h265")).unwrap(),
        "raw .h265 kept"
    );
    assert_eq!(probe(&mp4), "h264,320,240");
    // It plays: every frame decodes.
    let play = Command::new("ffmpeg")
        .args(["-v", "error", "-i"])
        .arg(&mp4)
        .args(["-f", "null", "-"])
        .output()
        .unwrap();
    assert!(
        play.status.success() && play.stderr.is_empty(),
        "{}",
        String::from_utf8_lossy(&play.stderr)
    );
    // 90 frames at the stream's own 30 fps (its VUI timing; the metadata's
    // 25 comes after it), nothing cut unless asked: 3 s.
    let secs = duration_of(&mp4);
    assert!((secs - 3.0).abs() < 0.1, "duration {secs}");
    // The photo is not converted.
    assert!(!all_files(&out)
        .iter()
        .any(|p| p.to_string_lossy().ends_with("_photof.mp4")));
}

#[test]
#[cfg_attr(
    not(have_ffmpeg),
    ignore = "needs ffmpeg and ffprobe on PATH (apt install ffmpeg)"
)]
fn convert_trim_cuts_only_when_asked_and_the_index_records_it() {
    let (_tmp, out, video, sidecar) = convert_run(&["--convert-trim", "0.9"]);
    let mp4 = video.with_file_name(sidecar.mp4.expect("converted"));
    let secs = duration_of(&mp4);
    assert!(
        (secs - (3.0 - 0.9)).abs() < 0.15,
        "duration {secs}: the vendor's 0.9 s cut, as asked"
    );
    // The index names the media file and its mp4 on a `converted` line.
    let began = Instant::now();
    let line = loop {
        let text = std::fs::read_to_string(out.join("downloads.jsonl")).unwrap();
        let found = text
            .lines()
            .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
            .find(|v| v["event"] == "converted");
        if found.is_some() || began.elapsed() > Duration::from_secs(20) {
            break found.expect("a converted line in downloads.jsonl");
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    let rel = |p: &std::path::Path| {
        p.strip_prefix(&out)
            .unwrap()
            .to_string_lossy()
            .replace('\\', "/")
    };
    assert_eq!(line["path"], rel(&video));
    assert_eq!(line["mp4"], rel(&mp4));
    assert_eq!(line["trim_s"], 0.9);
    assert!(line["error"].is_null());
}

#[test]
fn decode_explains_packets_and_fails_clearly() {
    let o = Command::new(BIN)
        .args([
            "decode",
            "00 00 00 05 00 01 3E E1 3C 00 19 81 44 00 04 00",
            "00 01 00 06 00 00 00 20 00 00",
        ])
        .output()
        .unwrap();
    assert!(o.status.success());
    let text = String::from_utf8_lossy(&o.stdout);
    assert!(
        text.contains("IMEI:        350612071913857") && text.contains("32 packets"),
        "{text}"
    );

    let o = Command::new(BIN)
        .args(["decode", "00 04 00 10 AB"])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&o.stderr).contains("only 1 present"));
    // Bad hex is a usage error (2); bytes that are no packet, the job failed (1).
    let o = Command::new(BIN).args(["decode", "xyz"]).output().unwrap();
    assert_eq!(o.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&o.stderr).contains("bad hex"));
}

#[test]
fn simulate_exits_nonzero_when_the_server_does_not_take_the_files() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("out");
    let srv = start(&out, |c| {
        c.session.files = Some(vec![dashcam_server::codec::FileKind::VideoRear])
    });
    let o = Command::new(BIN)
        .args(["simulate", "--server", &srv.addr.to_string()])
        .arg("--file")
        .arg(format!("photof={}", samples().join("photo.jpg").display()))
        .output()
        .unwrap();
    assert_eq!(
        o.status.code(),
        Some(1),
        "{}",
        String::from_utf8_lossy(&o.stdout)
    );
}

#[test]
fn serve_reads_its_settings_from_dashcam_variables_and_flags_win() {
    use std::io::BufRead;
    let tmp = tempfile::tempdir().unwrap();
    let port = free_port();
    let mut child = Child(
        Command::new(BIN)
            .args(["--mode", "dashcam"])
            .env("DASHCAM_BIND", "127.0.0.1")
            .env("DASHCAM_PORT", port.to_string())
            .env("DASHCAM_OUTPUT_DIR", tmp.path())
            .env("DASHCAM_MODE", "adas")
            .env("DASHCAM_METADATA", "1")
            .env("RUST_LOG", "info")
            .stderr(Stdio::piped())
            .spawn()
            .unwrap(),
    );
    let mut reader = std::io::BufReader::new(child.0.stderr.take().unwrap());
    // Its name, version and the options in effect come first, then the
    // absolute output folder, then the listening line.
    let mut banner = String::new();
    reader.read_line(&mut banner).unwrap();
    assert!(
        banner.contains(&format!(
            "dashcam-server {} starting",
            dashcam_server::cli::VERSION
        )) && banner.contains("mode dualcam, metadata on")
            // The version names its commit and target.
            && banner.contains(&format!("{} (commit ", env!("CARGO_PKG_VERSION")))
            && banner.contains(", x86_64-"),
        "{banner}"
    );
    let mut first = String::new();
    reader.read_line(&mut first).unwrap();
    let abs = std::fs::canonicalize(tmp.path()).unwrap();
    assert!(
        first.contains(&format!("output folder {}", abs.display())),
        "{first}"
    );
    let line = listening_line(&mut reader);
    assert!(
        line.contains(&format!("listening on 127.0.0.1:{port}")),
        "{line}"
    );
    assert!(line.contains("mode Dualcam, metadata on"), "{line}");
    assert!(line.contains(&tmp.path().display().to_string()), "{line}");
}

/// The launcher's settings are defaults: a DASHCAM_* variable already set wins.
#[cfg(unix)]
#[test]
fn run_server_sh_passes_the_environment_through_and_writes_its_log_file() {
    let tmp = tempfile::tempdir().unwrap();
    let port = free_port();
    let log = tmp.path().join("logs").join("server.log");
    let script = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("run_server.sh");
    let mut child = Child(
        Command::new("bash")
            .arg(&script)
            .args(["--bind", "127.0.0.1"])
            .env("DASHCAM_BIN", BIN)
            .env("DASHCAM_PORT", port.to_string())
            .env("DASHCAM_OUTPUT_DIR", tmp.path().join("out"))
            .env("DASHCAM_MODE", "dsm")
            .env("DASHCAM_LOG_FILE", &log)
            .env_remove("RUST_LOG")
            .stderr(Stdio::piped())
            .spawn()
            .unwrap(),
    );
    let mut reader = std::io::BufReader::new(child.0.stderr.take().unwrap());
    let line = listening_line(&mut reader);
    assert!(
        line.contains(&format!("listening on 127.0.0.1:{port} (mode Dsm")),
        "{line}"
    );
    let written = std::fs::read_to_string(&log).unwrap();
    assert!(
        written.contains(&format!("listening on 127.0.0.1:{port}")),
        "{written}"
    );
}

/// A bad --bind names the address, not "another server using the port".
#[test]
fn a_bad_bind_address_is_blamed_on_the_address() {
    let tmp = tempfile::tempdir().unwrap();
    for (bind, want) in [
        (
            "10.255.255.254",
            "--bind 10.255.255.254 is not an address of this machine",
        ),
        (
            "not an address!",
            "--bind not an address! is not an address",
        ),
    ] {
        let o = Command::new(BIN)
            .args(["serve", "--bind", bind, "--port", "0", "--output-dir"])
            .arg(tmp.path())
            .output()
            .unwrap();
        // A configuration error (README: exit status 2).
        assert_eq!(o.status.code(), Some(2));
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(err.contains(want), "{err}");
    }
}

/// `simulate` is a strict device: what no camera would send is refused
/// before connecting, with the reason.
#[test]
fn simulate_refuses_what_no_camera_sends_before_connecting() {
    let tmp = tempfile::tempdir().unwrap();
    let empty = tmp.path().join("empty.jpg");
    std::fs::write(&empty, b"").unwrap();
    let photo = samples().join("photo.jpg");
    let cases: Vec<(Vec<String>, &str)> = vec![
        (
            vec!["--file".into(), format!("photof={}", empty.display())],
            "is empty",
        ),
        (
            vec!["--file".into(), format!("photof={}", tmp.path().display())],
            "is a folder",
        ),
        (
            vec![
                "--file".into(),
                format!("photof={}", tmp.path().join("nope").display()),
            ],
            "nope",
        ),
        (
            vec![
                "--imei".into(),
                "123".into(),
                "--file".into(),
                format!("photof={}", photo.display()),
            ],
            "not an IMEI",
        ),
        (
            vec![
                "--protocol".into(),
                "7".into(),
                "--file".into(),
                format!("photof={}", photo.display()),
            ],
            "7",
        ),
        (
            // photo.jpg is 4 packets of 1024 bytes.
            vec![
                "--drop-after".into(),
                "5".into(),
                "--file".into(),
                format!("photof={}", photo.display()),
            ],
            "--drop-after 5: the largest file is sent in 4 DATA frame(s)",
        ),
    ];
    for (args, want) in cases {
        // Nothing listens on port 9: a connection attempt would say "refused".
        let o = Command::new(BIN)
            .args(["simulate", "--server", "127.0.0.1:9"])
            .args(&args)
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(!o.status.success(), "{args:?}");
        assert!(err.contains(want), "{args:?}: {err}");
        assert!(
            !err.contains("onnect"),
            "{args:?} checked only after connecting: {err}"
        );
    }
}

/// The launcher edited as a technician would: `true` and `yes` for switches,
/// a folder name with a space (quoted), the conversion switched on.
#[test]
fn run_server_sh_takes_a_technicians_edits() {
    let tmp = tempfile::tempdir().unwrap();
    let port = free_port();
    let script = std::fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("run_server.sh"),
    )
    .unwrap();
    let edited = script
        .replace("\nPORT=5000\n", &format!("\nPORT={port}\n"))
        .replace(
            "\nOUTPUT_DIR=downloads\n",
            "\nOUTPUT_DIR=\"my downloads\"\n",
        )
        .replace("\nMETADATA=0\n", "\nMETADATA=true\n")
        .replace("\nCONVERT=0\n", "\nCONVERT=Yes\n");
    assert_ne!(edited, script);
    let launcher = tmp.path().join("run_server.sh");
    std::fs::write(&launcher, edited).unwrap();
    let mut child = Child(
        Command::new("bash")
            .arg(&launcher)
            .args(["--bind", "127.0.0.1"])
            .env("DASHCAM_BIN", BIN)
            .env_remove("DASHCAM_PORT")
            .env_remove("DASHCAM_OUTPUT_DIR")
            .env_remove("DASHCAM_METADATA")
            .env_remove("DASHCAM_CONVERT")
            .env_remove("RUST_LOG")
            .stderr(Stdio::piped())
            .spawn()
            .unwrap(),
    );
    let mut reader = std::io::BufReader::new(child.0.stderr.take().unwrap());
    let line = listening_line(&mut reader);
    assert!(line.contains(&format!("127.0.0.1:{port}")), "{line}");
    assert!(line.contains("metadata on, output my downloads"), "{line}");
    assert!(tmp.path().join("my downloads").is_dir());
    let log = std::fs::read_to_string(tmp.path().join("logs/dashcam-server.log")).unwrap();
    assert!(log.contains("convert mp4"), "{log}");
}

/// `convert` of a raw stream of 50 frames at 25 fps (its headers say so;
/// no metadata) keeps all 50 and lasts 2 s: no default cut, the stream's own
/// rate before `--fps`. A folder that is not there is a usage error (2).
#[test]
#[cfg_attr(
    not(have_ffmpeg),
    ignore = "needs ffmpeg and ffprobe on PATH (apt install ffmpeg)"
)]
fn convert_keeps_every_frame_of_a_raw_stream_at_its_own_rate() {
    let tmp = tempfile::tempdir().unwrap();
    let clip = tmp.path().join("fifty.h265");
    let made = Command::new("ffmpeg")
        .args([
            "-v",
            "error",
            "-f",
            "lavfi",
            "-i",
            "testsrc=size=320x240:rate=25",
        ])
        .args([
            "-frames:v",
            "50",
            "-c:v",
            "libx265",
            "-x265-params",
            "log-level=none",
        ])
        .args(["-pix_fmt", "yuv420p", "-f", "hevc"])
        .arg(&clip)
        .status()
        .unwrap();
    assert!(made.success());
    let out = tmp.path().join("out");
    let srv = start(&out, |_| {});
    let mut cam = srv.sim(350612071913857);
    cam.metadata = false;
    cam.files = vec![(FileKind::VideoFront, clip)];
    assert!(
        dashcam_server::simulator::run_camera(&cam)
            .unwrap()
            .complete
    );
    srv.shutdown();
    let o = Command::new(BIN)
        .args(["convert", "--output-dir"])
        .arg(&out)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let video = media(&out, 350612071913857)
        .into_iter()
        .find(|p| p.extension().is_some_and(|e| e == "h265"))
        .unwrap();
    let mp4 = video.with_extension("mp4");
    let frames = Command::new("ffprobe")
        .args(["-v", "error", "-count_frames", "-select_streams", "v:0"])
        .args(["-show_entries", "stream=nb_read_frames", "-of", "csv=p=0"])
        .arg(&mp4)
        .output()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&frames.stdout).trim(), "50");
    let secs = duration_of(&mp4);
    assert!((secs - 2.0).abs() < 0.05, "2 s at 25 fps, not {secs}");
    let o = Command::new(BIN)
        .args(["convert", "--output-dir"])
        .arg(tmp.path().join("nowhere"))
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&o.stderr).contains("folder not found"));
}
