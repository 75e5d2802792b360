//! The camera's own container (PTMF) end to end: the simulator's multiplexer
//! read back by the codec's demultiplexer, `verify` on container videos, and
//! conversions that keep every frame and the sound.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use common::*;
use dashcam_server::codec::container::{audio_samples, parse_chunk, ChunkKind, Summary};
use dashcam_server::codec::FileKind;
use dashcam_server::simulator::{ptmf, run_camera};

const IMEI: u64 = 350612071913857;
const BIN: &str = env!("CARGO_BIN_EXE_dashcam-server");

fn samples() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("samples")
}

/// A 440 Hz tone in A-law (the samples' sound), `secs` long.
fn tone(secs: f64) -> Vec<u8> {
    (0..(8000.0 * secs) as usize)
        .map(|i| if (i / 9) % 2 == 0 { 0x55 } else { 0xD5 ^ 0x10 })
        .collect()
}

#[test]
fn the_multiplexer_and_the_demultiplexer_agree_frame_for_frame() {
    let h265 = std::fs::read(samples().join("front.h265")).unwrap();
    let alaw = tone(3.0);
    let mut file = Vec::new();
    let m = ptmf::mux(&h265, Some(&alaw), 20, (1, 1), &mut file).unwrap();
    assert_eq!(
        (m.width, m.height),
        (320, 240),
        "size from the stream's SPS"
    );
    let aus = ptmf::access_units(&h265);
    assert_eq!(m.video_frames as usize, aus.len());
    let (mut video, mut audio, mut s) = (Vec::new(), Vec::new(), Summary::default());
    let mut at = 0;
    let mut frames = Vec::new();
    while let Some((h, p, used)) = parse_chunk(&file[at..], at as u64).unwrap() {
        assert_eq!(h.frame_rate, 20);
        s.add(&h, p);
        if h.kind.is_video() {
            frames.push((h.kind == ChunkKind::Key, p.to_vec()));
            video.extend_from_slice(p);
        } else {
            audio.extend_from_slice(audio_samples(p));
        }
        at += used;
    }
    assert_eq!(at, file.len(), "the chunks cover the file");
    assert_eq!(frames.len(), aus.len());
    for (i, (key, bytes)) in frames.iter().enumerate() {
        assert_eq!(bytes, &aus[i].bytes, "frame {i}");
        assert_eq!(*key, aus[i].key, "frame {i} kind");
    }
    assert_eq!(audio[..alaw.len()], alaw[..], "the sound, byte for byte");
    assert!(
        audio[alaw.len()..].iter().all(|&b| b == 0xD5),
        "padded with silence"
    );
    assert!(s.gaps.is_empty() && s.backwards == 0);
    // 90 frames at 20 fps: 4.5 s; 3 s of sound in 40 ms chunks: 75.
    assert_eq!((s.video_frames, s.audio_chunks), (90, 75));
    let d = s.video_duration_us().unwrap();
    assert!((4_450_000..=4_550_000).contains(&d), "{d}");
    assert_eq!(s.audio_duration_us(), Some(3_000_000));
}

#[test]
fn the_camera_format_sample_is_what_the_notes_describe() {
    let info = dashcam_server::storage::media::inspect(&samples().join("camera.h265")).unwrap();
    assert_eq!(info.container, "ptmf");
    assert_eq!(
        (info.width, info.height, info.frame_rate),
        (Some(320), Some(240), Some(20))
    );
    assert_eq!(info.video_frames, Some(60));
    assert!((info.duration_s.unwrap() - 3.0).abs() < 0.1);
    assert_eq!(
        info.audio_codec.as_deref(),
        Some("G.711 A-law, 8 kHz, mono")
    );
    assert_eq!(info.audio_duration_s, Some(3.0));
    assert!(info.problems.is_empty(), "{:?}", info.problems);
}

/// Stores `file` as `%videof` with metadata (`fps`, 3 s) and returns what
/// `verify --dir` says of it.
fn stored_and_verified(tmp: &Path, name: &str, file: &Path, fps: u8) -> (bool, String) {
    let out = tmp.join(name);
    let srv = start(&out, |c| c.session.metadata = true);
    let mut cam = srv.sim(IMEI);
    cam.frame_rate = fps;
    cam.video_duration_s = 3;
    cam.files = vec![(FileKind::VideoFront, file.to_path_buf())];
    assert!(run_camera(&cam).unwrap().complete);
    srv.shutdown();
    let o = Command::new(BIN)
        .args(["verify", "--dir"])
        .arg(&out)
        .output()
        .unwrap();
    (
        o.status.success(),
        String::from_utf8_lossy(&o.stdout).into_owned(),
    )
}

#[test]
fn verify_passes_the_camera_sample_and_fails_a_broken_one() {
    let tmp = tempfile::tempdir().unwrap();
    let sample = samples().join("camera.h265");
    let (ok, text) = stored_and_verified(tmp.path(), "good", &sample, 20);
    assert!(ok, "{text}");
    assert!(
        text.contains("camera container, 320x240, 20 fps, 60 frames")
            && text.contains("sound G.711 A-law 3.00 s"),
        "{text}"
    );

    // Cut in the middle of a chunk.
    let bytes = std::fs::read(&sample).unwrap();
    let cut = write_file(tmp.path(), "cut.h265", &bytes[..bytes.len() / 2 + 7]);
    let (ok, text) = stored_and_verified(tmp.path(), "cut", &cut, 20);
    assert!(!ok && text.contains("ends inside the chunk"), "{text}");

    // The container announces nothing else, but a DualCam video has sound.
    let mut silent = Vec::new();
    let h265 = std::fs::read(samples().join("front.h265")).unwrap();
    ptmf::mux(&h265, None, 20, (320, 240), &mut silent).unwrap();
    let silent = write_file(tmp.path(), "silent.h265", &silent);
    let (ok, text) = stored_and_verified(tmp.path(), "silent", &silent, 20);
    assert!(!ok && text.contains("no audio track"), "{text}");

    // Metadata at 25 fps, the container at 20.
    let (ok, text) = stored_and_verified(tmp.path(), "rate", &sample, 25);
    assert!(
        !ok && text.contains("the container says 20 fps, the metadata 25 fps"),
        "{text}"
    );
}

fn probe(path: &Path, stream: &str, entries: &str) -> String {
    let o = Command::new("ffprobe")
        .args(["-v", "error", "-count_frames", "-select_streams", stream])
        .args(["-show_entries", entries, "-of", "csv=p=0"])
        .arg(path)
        .output()
        .unwrap();
    String::from_utf8_lossy(&o.stdout).trim().to_string()
}

#[test]
#[cfg_attr(
    not(have_ffmpeg),
    ignore = "needs ffmpeg and ffprobe on PATH (apt install ffmpeg)"
)]
fn a_converted_camera_clip_keeps_every_frame_and_its_sound() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("out");
    let port = free_port();
    let mut server = Command::new(BIN)
        .args(["serve", "--bind", "127.0.0.1", "--port", &port.to_string()])
        .arg("--output-dir")
        .arg(&out)
        .args(["--metadata", "--convert", "mp4", "--gallery", "false"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let sim = simulate_until_served(
        BIN,
        &format!("127.0.0.1:{port}"),
        &[
            "--frame-rate".into(),
            "20".into(),
            "--duration".into(),
            "3".into(),
            "--file".into(),
            format!("videof={}", samples().join("camera.h265").display()),
        ],
    );
    assert!(
        sim.status.success(),
        "{}",
        String::from_utf8_lossy(&sim.stderr)
    );
    let video = media(&out, IMEI)
        .into_iter()
        .find(|p| p.extension().is_some_and(|e| e == "h265"))
        .expect("stored");
    wait_for("the conversion", || {
        let sc = sidecar_of(&video);
        sc.mp4.is_some() || sc.conversion_error.is_some()
    });
    let _ = server.kill();
    let _ = server.wait();
    let sc = sidecar_of(&video);
    assert_eq!(sc.conversion_error, None);
    let mp4 = video.with_file_name(sc.mp4.unwrap());
    assert_eq!(
        probe(&mp4, "v:0", "stream=codec_name,nb_read_frames"),
        "h264,60",
        "every frame"
    );
    assert_eq!(probe(&mp4, "a:0", "stream=codec_name"), "aac", "the sound");
    let v: f64 = probe(&mp4, "v:0", "stream=duration").parse().unwrap();
    let a: f64 = probe(&mp4, "a:0", "stream=duration").parse().unwrap();
    assert!(
        (v - 3.0).abs() < 0.1 && (a - v).abs() < 0.1,
        "video {v} s, sound {a} s"
    );
    // The index (moov) is up front: a browser plays it before it is all loaded.
    let head = std::fs::read(&mp4).unwrap();
    let moov = head.windows(4).position(|w| w == b"moov").unwrap();
    let mdat = head.windows(4).position(|w| w == b"mdat").unwrap();
    assert!(moov < mdat, "+faststart");
}

/// The camera's sample clip (20 fps) stored for each IMEI, without conversion.
fn clips_stored(out: &Path, imeis: &[u64]) {
    let srv = start(out, |c| c.session.metadata = true);
    for &imei in imeis {
        let mut cam = srv.sim(imei);
        cam.frame_rate = 20;
        cam.files = vec![(FileKind::VideoFront, samples().join("camera.h265"))];
        assert!(run_camera(&cam).unwrap().complete);
    }
    srv.shutdown();
}

/// `serve --convert mp4` on `out` (gallery off), with `extra` flags, on
/// the port `port`.
fn serve_converting_on(
    port: u16,
    out: &Path,
    extra: &[&str],
    stderr: Stdio,
) -> std::process::Child {
    Command::new(BIN)
        .args(["serve", "--bind", "127.0.0.1", "--port", &port.to_string()])
        .arg("--output-dir")
        .arg(out)
        .args(["--convert", "mp4", "--gallery", "false"])
        .args(extra)
        .stdout(Stdio::null())
        .stderr(stderr)
        .spawn()
        .unwrap()
}

/// SIGTERM, as systemd stops it; the server must exit 0.
#[cfg(unix)]
fn stop_gracefully(server: &mut std::process::Child) {
    assert!(Command::new("kill")
        .args(["-TERM", &server.id().to_string()])
        .status()
        .unwrap()
        .success());
    assert!(server.wait().unwrap().success());
}

/// [`serve_converting_on`] a free port.
fn serve_converting(out: &Path, extra: &[&str], stderr: Stdio) -> std::process::Child {
    serve_converting_on(free_port(), out, extra, stderr)
}

/// A conversion a crash interrupted (its `.mp4.converting` left behind) is
/// done at the next start; `dashcam-server convert` does what is missing.
#[test]
#[cfg_attr(
    not(have_ffmpeg),
    ignore = "needs ffmpeg and ffprobe on PATH (apt install ffmpeg)"
)]
fn a_killed_conversion_is_finished_after_a_restart_and_convert_does_the_rest() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("out");
    clips_stored(&out, &[IMEI, IMEI + 1]);
    let a = media(&out, IMEI).remove(0);
    let b = media(&out, IMEI + 1).remove(0);
    // A crash in the middle of converting the first.
    let leftover = a.with_extension("mp4.converting");
    std::fs::write(&leftover, b"half an mp4").unwrap();

    // `convert --imei` does one camera, with a line per file.
    let o = Command::new(BIN)
        .args(["convert", "--output-dir"])
        .arg(&out)
        .args(["--imei", &(IMEI + 1).to_string()])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&o.stdout);
    assert!(o.status.success(), "{text}");
    assert!(
        text.contains("1 video(s) to convert") && text.contains("[1/1]"),
        "{text}"
    );
    assert!(sidecar_of(&b).mp4.is_some());
    assert!(sidecar_of(&a).mp4.is_none());

    // The next start with --convert mp4 finishes the interrupted one.
    let http = format!("127.0.0.1:{}", free_port());
    let mut server = serve_converting(&out, &["--http-bind", &http], Stdio::null());
    wait_for("the interrupted conversion", || {
        sidecar_of(&a).mp4.is_some()
    });
    // /metrics counts it.
    wait_for("the conversion counted", || {
        ureq::get(&format!("http://{http}/metrics"))
            .call()
            .ok()
            .and_then(|r| r.into_string().ok())
            .is_some_and(|t| {
                t.lines().any(|l| l == "dashcam_conversions_total 1")
                    && t.lines().any(|l| l == "dashcam_conversion_queue 0")
            })
    });
    let _ = server.kill();
    let _ = server.wait();
    assert!(!leftover.exists(), "the half-written mp4 is gone");
    let mp4 = a.with_file_name(sidecar_of(&a).mp4.unwrap());
    assert_eq!(probe(&mp4, "v:0", "stream=nb_read_frames"), "60");
}

/// The gallery shows a camera video with a thumbnail from its first key
/// frame, what is inside it, and plays its mp4 (with sound) in the page.
#[test]
#[cfg_attr(
    not(have_ffmpeg),
    ignore = "needs ffmpeg and ffprobe on PATH (apt install ffmpeg)"
)]
fn the_gallery_shows_and_plays_a_camera_video() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("out");
    let srv = start(&out, |c| c.session.metadata = true);
    let mut cam = srv.sim(IMEI);
    cam.frame_rate = 20;
    cam.files = vec![(FileKind::VideoRear, samples().join("camera.h265"))];
    assert!(run_camera(&cam).unwrap().complete);
    srv.shutdown();
    let video = media(&out, IMEI).remove(0);
    let o = Command::new(BIN)
        .args(["convert", "--output-dir"])
        .arg(&out)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stdout));
    assert_eq!(dashcam_server::tools::gallery::build(&out).unwrap(), 1);
    let stem = video.file_stem().unwrap().to_string_lossy().into_owned();
    let thumb = out
        .join(".thumbs")
        .join(IMEI.to_string())
        .join(format!("{stem}.jpg"));
    assert!(thumb.is_file(), "a thumbnail from the first key frame");
    assert_eq!(probe(&thumb, "v:0", "stream=codec_name"), "mjpeg");
    let html = std::fs::read_to_string(out.join("index.html")).unwrap();
    assert!(
        html.contains("ptmf, 320x240, 20 fps, 60 frames")
            && html.contains("sound: G.711 A-law, 8 kHz, mono, 3.00 s"),
        "the container's facts on the card"
    );
    assert!(html.contains(&format!(
        "<video class=\"clip\" controls preload=\"none\" width=\"320\" src=\"{IMEI}/{stem}.mp4\""
    )));
    assert!(html.contains("<td>camera</td><td>rear</td>"));
}

/// A multi-file run whose clips differ: each file's metadata matches its own
/// clip (--file-meta), so verify passes both.
#[test]
#[cfg_attr(
    not(have_ffmpeg),
    ignore = "needs ffmpeg and ffprobe on PATH (apt install ffmpeg)"
)]
fn per_file_metadata_matches_each_clip() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("out");
    let srv = start(&out, |c| c.session.metadata = true);
    let mut cam = srv.sim(IMEI);
    cam.files = vec![
        (FileKind::VideoFront, samples().join("camera.h265")),
        (FileKind::VideoRear, samples().join("front.h265")),
    ];
    cam.file_meta = vec![(b"%videof".to_vec(), 20, 3), (b"%videor".to_vec(), 30, 3)];
    assert!(run_camera(&cam).unwrap().complete);
    srv.shutdown();
    let o = Command::new(BIN)
        .args(["verify", "--dir"])
        .arg(&out)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&o.stdout);
    assert!(o.status.success(), "{text}");
    assert!(
        text.contains("(metadata: 3 s, 20 fps)") && text.contains("(metadata: 3 s, 30 fps)"),
        "{text}"
    );
}

/// A stop while a video converts: the conversion finishes (its "converted"
/// line) before "server stopped", and the videos not started are left for
/// the next start, said so.
#[cfg(unix)]
#[test]
#[cfg_attr(
    not(have_ffmpeg),
    ignore = "needs ffmpeg and ffprobe on PATH (apt install ffmpeg)"
)]
fn a_stop_waits_for_the_running_conversion_before_server_stopped() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("out");
    clips_stored(&out, &[IMEI, IMEI + 1, IMEI + 2]);
    let log = tmp.path().join("server.log");
    let mut server = serve_converting(&out, &[], std::fs::File::create(&log).unwrap().into());
    // Stopped as soon as the first of the three is being converted.
    wait_for("the conversion to begin", || {
        std::fs::read_dir(out.join(IMEI.to_string())).is_ok_and(|d| {
            d.flatten()
                .any(|e| e.file_name().to_string_lossy().contains(".mp4.converting"))
        }) || std::fs::read_to_string(&log).is_ok_and(|t| t.contains("] converted "))
    });
    stop_gracefully(&mut server);
    let text = std::fs::read_to_string(&log).unwrap();
    let converted = text
        .rfind("] converted ")
        .expect("the running conversion finished");
    let stopped = text.find("server stopped").expect("server stopped");
    assert!(converted < stopped, "{text}");
    assert!(
        sidecar_of(&media(&out, IMEI)[0]).mp4.is_some(),
        "the first video's mp4 is finished, not abandoned"
    );
}

/// A camera that sends a stored video again is told it is stored, and that
/// is all: the video is not converted a second time, and the stored file's
/// sidecar is not replaced by the second download's record (which named
/// itself as the duplicate of the file it described).
#[cfg(unix)]
#[test]
#[cfg_attr(
    not(have_ffmpeg),
    ignore = "needs ffmpeg and ffprobe on PATH (apt install ffmpeg)"
)]
fn a_video_sent_again_is_not_converted_again_and_keeps_its_sidecar() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("out");
    let log = tmp.path().join("server.log");
    let port = free_port();
    let mut server =
        serve_converting_on(port, &out, &[], std::fs::File::create(&log).unwrap().into());
    let send = || {
        let sim = simulate_until_served(
            BIN,
            &format!("127.0.0.1:{port}"),
            &[
                "--file".into(),
                format!("videof={}", samples().join("camera.h265").display()),
            ],
        );
        assert!(sim.status.success());
    };
    send();
    let video = media(&out, IMEI)
        .into_iter()
        .find(|p| p.extension().is_some_and(|e| e == "h265"))
        .expect("stored");
    wait_for("the conversion", || sidecar_of(&video).mp4.is_some());
    let sidecar = std::fs::read(video.with_extension("json")).unwrap();
    send();
    let text = || std::fs::read_to_string(&log).unwrap();
    assert!(text().contains("not stored again"), "{}", text());
    // A stop waits for a running conversion and names any left queued.
    stop_gracefully(&mut server);
    let text = text();
    assert_eq!(text.matches("] converted ").count(), 1, "{text}");
    assert!(!text.contains("left unconverted"), "{text}");
    assert_eq!(
        String::from_utf8(std::fs::read(video.with_extension("json")).unwrap()).unwrap(),
        String::from_utf8(sidecar).unwrap(),
        "the stored file's sidecar is unchanged"
    );
    assert_eq!(sidecar_of(&video).duplicate_of, None);
}
