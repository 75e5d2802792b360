//! The HTTP endpoint against abusive clients (issue 24, item 4), on the
//! server binary: oversized request lines and headers are refused (414,
//! 431) with the server's memory flat; clients that never send a request,
//! or pipeline and never read, are cut off; `/healthz` answers all the
//! while; planted symlinks are never read or written through; a blank or
//! short token is refused at start.

mod common;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::time::{Duration, Instant};

use common::procs::*;
use common::*;

/// The server with its HTTP endpoint on loopback; (process, endpoint).
fn serve_http(out: &Path, log: &Path, extra: &[&str]) -> (Proc, SocketAddr) {
    let http: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
    let mut flags = vec!["--http-bind".to_string(), http.to_string()];
    flags.extend(extra.iter().map(|s| s.to_string()));
    let (p, _) = server(out, log, &flags);
    wait_port(http, "the HTTP endpoint");
    (p, http)
}

/// One request on a new connection; (status, body). Bounded at 10 s.
fn get(addr: SocketAddr, path: &str) -> (u16, Vec<u8>) {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut out = Vec::new();
    let _ = s.read_to_end(&mut out);
    let text = String::from_utf8_lossy(&out);
    let code = text
        .split(' ')
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    let body = out
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .map_or(Vec::new(), |i| out[i + 4..].to_vec());
    (code, body)
}

/// `/healthz` answers 200 within a second.
fn healthy_fast(addr: SocketAddr) {
    let t = Instant::now();
    let (code, _) = get(addr, "/healthz");
    assert_eq!(code, 200);
    assert!(t.elapsed() < Duration::from_secs(1), "{:?}", t.elapsed());
}

#[cfg(target_os = "linux")]
fn rss_kib(pid: u32) -> u64 {
    let s = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    s.lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap()
}

/// Sends `head_start`, then up to `filler` bytes of `unit` (stopping when
/// the server closes), and returns the status the server answered.
fn flood(addr: SocketAddr, head_start: &[u8], unit: &[u8], filler: usize) -> u16 {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    s.set_write_timeout(Some(Duration::from_secs(10))).unwrap();
    s.write_all(head_start).unwrap();
    let chunk: Vec<u8> = unit.iter().copied().cycle().take(64 << 10).collect();
    let mut sent = 0;
    while sent < filler {
        if s.write_all(&chunk).is_err() {
            break;
        }
        sent += chunk.len();
    }
    let mut out = Vec::new();
    let _ = s.read_to_end(&mut out);
    String::from_utf8_lossy(&out)
        .split(' ')
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0)
}

#[test]
fn a_blank_or_short_token_is_refused_at_start() {
    let tmp = tempfile::tempdir().unwrap();
    for token in ["", " ", "short-token"] {
        let out = std::process::Command::new(BIN)
            .args(["serve", "--port", "0", "--http-bind", "0.0.0.0:0"])
            .args(["--http-token", token, "--output-dir"])
            .arg(tmp.path().join("o"))
            .output()
            .unwrap();
        assert!(!out.status.success(), "{token:?} was taken");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains("--http-token"), "{token:?}: {err}");
        assert!(err.contains("16"), "{token:?}: {err}");
    }
}

#[cfg(target_os = "linux")]
#[test]
fn oversized_heads_are_refused_and_the_memory_stays_flat() {
    let tmp = tempfile::tempdir().unwrap();
    let (p, http) = serve_http(&tmp.path().join("out"), &tmp.path().join("s.log"), &[]);
    healthy_fast(http);
    let before = rss_kib(p.0.id());
    // A 64 MB request line, and a million header lines.
    assert_eq!(flood(http, b"GET /", b"a", 64 << 20), 414);
    assert_eq!(
        flood(http, b"GET / HTTP/1.1\r\n", b"X-A: b\r\n", 8 << 20),
        431
    );
    healthy_fast(http);
    let after = rss_kib(p.0.id());
    assert!(
        after < before + 16 * 1024,
        "the server grew from {before} to {after} KiB"
    );
    let (_, metrics) = get(http, "/metrics");
    let m = String::from_utf8_lossy(&metrics);
    assert!(m.contains("dashcam_http_refused_total 2"), "{m}");
}

/// Clients that never send a request, or pipeline and never read: each is
/// cut off, and `/healthz` answers within a second all the while.
#[test]
fn idle_and_pipelining_clients_are_cut_off_and_healthz_answers() {
    let tmp = tempfile::tempdir().unwrap();
    let (_p, http) = serve_http(&tmp.path().join("out"), &tmp.path().join("s.log"), &[]);
    // 200 connections that send nothing: more than the table holds.
    let idle: Vec<TcpStream> = (0..200)
        .map(|_| TcpStream::connect(http).unwrap())
        .collect();
    healthy_fast(http);
    // Two clients pipeline thousands of requests and never read.
    let hogs: Vec<TcpStream> = (0..2)
        .map(|_| {
            let mut s = TcpStream::connect(http).unwrap();
            s.set_write_timeout(Some(Duration::from_secs(2))).unwrap();
            let req = b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n".repeat(20_000);
            let _ = s.write_all(&req);
            s
        })
        .collect();
    let began = Instant::now();
    // /healthz answers throughout, until both hogs were cut for not reading
    // (the write deadline: 10 s and the answer's time at the floor rate).
    loop {
        healthy_fast(http);
        let (_, metrics) = get(http, "/metrics");
        let m = String::from_utf8_lossy(&metrics).into_owned();
        let cut = m
            .lines()
            .find_map(|l| l.strip_prefix("dashcam_http_timeouts_total "))
            .and_then(|v| v.parse::<u64>().ok())
            .unwrap_or(0);
        if cut >= 2 {
            break;
        }
        assert!(
            began.elapsed() < Duration::from_secs(40),
            "the hogs were not cut: {m}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    // The idle ones are all closed by now (evicted, or 10 s without a head).
    for mut s in idle {
        s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        let mut b = Vec::new();
        let _ = s.read_to_end(&mut b);
        let t = String::from_utf8_lossy(&b);
        assert!(t.is_empty() || t.starts_with("HTTP/1.1 408"), "{t}");
    }
    drop(hogs);
    healthy_fast(http);
}

/// A symlink planted where the health probe writes is never written
/// through, and a media read racing a symlink swap never returns what the
/// link points at.
#[cfg(unix)]
#[test]
fn planted_symlinks_are_never_read_or_written_through() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("out");
    let outside = tmp.path().join("outside");
    std::fs::create_dir_all(&outside).unwrap();
    std::fs::write(outside.join("precious"), b"do not truncate").unwrap();
    std::fs::write(outside.join("a.jpg"), b"SECRET").unwrap();
    let (p, http) = serve_http(&out, &tmp.path().join("s.log"), &[]);
    let probe = out.join(format!(".healthz-{}.tmp", p.0.id()));
    std::os::unix::fs::symlink(outside.join("precious"), &probe).unwrap();
    healthy_fast(http);
    assert_eq!(
        std::fs::read(outside.join("precious")).unwrap(),
        b"do not truncate"
    );
    assert!(!probe.exists(), "the planted link is gone with the probe");
    // A camera folder swapped with a link to `outside` as fast as it goes.
    let cam = out.join("350612071918000");
    let real = out.join("real");
    std::fs::create_dir_all(&real).unwrap();
    std::fs::write(real.join("a.jpg"), b"camera").unwrap();
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let swapper = {
        let (stop, cam, real, outside) = (stop.clone(), cam.clone(), real.clone(), outside.clone());
        std::thread::spawn(move || {
            let link = cam.with_extension("link");
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                let _ = std::fs::remove_file(&link);
                std::os::unix::fs::symlink(&outside, &link).unwrap();
                std::fs::rename(&link, &cam).ok();
                let _ = std::fs::remove_file(&cam);
                let _ = std::fs::remove_dir(&cam);
                std::fs::create_dir(&cam).ok();
                std::fs::copy(real.join("a.jpg"), cam.join("a.jpg")).ok();
                let _ = std::fs::remove_file(cam.join("a.jpg"));
                let _ = std::fs::remove_dir(&cam);
            }
        })
    };
    let (mut served, mut leaked) = (0, 0);
    let began = Instant::now();
    while began.elapsed() < Duration::from_secs(3) {
        let (code, body) = get(http, "/350612071918000/a.jpg");
        if code == 200 {
            served += 1;
        }
        if body == b"SECRET" {
            leaked += 1;
        }
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    swapper.join().unwrap();
    eprintln!("symlink swap: {served} requests served the real file");
    assert!(served > 0, "the race was never on: the test proves nothing");
    assert_eq!(
        leaked, 0,
        "{leaked} answers read through the link ({served} served)"
    );
}

/// One request with extra header lines; (status, headers, body).
fn get_with(addr: SocketAddr, path: &str, extra: &str) -> (u16, String, Vec<u8>) {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: x\r\n{extra}Connection: close\r\n\r\n"
    )
    .unwrap();
    let mut out = Vec::new();
    let _ = s.read_to_end(&mut out);
    let split = out
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .unwrap_or(out.len());
    let head = String::from_utf8_lossy(&out[..split]).into_owned();
    let code = head
        .split(' ')
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    let body = out.get(split + 4..).unwrap_or_default().to_vec();
    (code, head, body)
}

/// `/cameras` in a headless chromium: its DOM `shows` each text, and it
/// renders (a screenshot, kept in `DASHCAM_SCREENSHOT_DIR` when set).
fn cameras_page_in_a_browser(http: SocketAddr, tmp: &Path, shows: &[&str]) {
    let url = format!("http://{http}/cameras");
    let dom = std::process::Command::new("chromium")
        .args(["--headless", "--no-sandbox", "--disable-gpu"])
        .args(["--virtual-time-budget=3000", "--dump-dom"])
        .arg(&url)
        .stderr(std::process::Stdio::null())
        .output()
        .unwrap();
    let dom = String::from_utf8_lossy(&dom.stdout);
    assert!(
        shows.iter().all(|s| dom.contains(s)),
        "the page in the browser shows {shows:?}: {dom}"
    );
    let shot = tmp.join("cameras.png");
    let o = std::process::Command::new("chromium")
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--hide-scrollbars",
        ])
        .args(["--virtual-time-budget=3000", "--window-size=1100,420"])
        .arg(format!("--screenshot={}", shot.display()))
        .arg(&url)
        .stderr(std::process::Stdio::null())
        .output()
        .unwrap();
    assert!(o.status.success());
    let png = std::fs::read(&shot).expect("a screenshot");
    assert!(
        png.starts_with(b"\x89PNG") && png.len() > 5_000,
        "{} bytes",
        png.len()
    );
    if let Ok(dir) = std::env::var("DASHCAM_SCREENSHOT_DIR") {
        std::fs::copy(&shot, Path::new(&dir).join("cameras.png")).unwrap();
    }
}

/// `/cameras` while a camera sends: `/api/cameras` names it with its file
/// and progress, the page in headless Chromium shows them (a screenshot is
/// taken), and once the file is stored the camera is listed as seen with
/// its last file; the stored media answers a `Range` request with 206 and
/// exactly those bytes, so the gallery's players seek.
#[test]
#[cfg_attr(
    not(have_chromium),
    ignore = "needs chromium on PATH (apt install chromium)"
)]
fn the_cameras_page_shows_a_camera_sending_and_media_answers_ranges() {
    use dashcam_server::codec::{crc16, FileKind, Frame};
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("out");
    // The camera port is the one `server` waited on (the log's "listening"
    // line may not be written yet when the HTTP port answers).
    let http: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
    let (_p, addr) = server(
        &out,
        &tmp.path().join("s.log"),
        &["--http-bind".to_string(), http.to_string()],
    );
    wait_port(http, "the HTTP endpoint");
    let imei = 350612071913857u64;
    let video = content(40 * 1024, 21);
    let packets: Vec<&[u8]> = video.chunks(1024).collect();
    let mut raw = Raw::connect(addr);
    raw.init(imei, &[FileKind::VideoFront]);
    assert_eq!(raw.expect(11), b"\x00\x08\x00\x07%videof");
    raw.frame(Frame::Start {
        total: 40,
        field: 0,
    });
    assert_eq!(raw.expect(8), Frame::Resume { offset: 1 }.to_vec());
    raw.frame(Frame::Sync { offset: 1 });
    let mut crc = 0;
    let mut frames = Vec::new();
    for p in &packets {
        crc = crc16(crc, p);
        frames.push(Frame::Data { payload: p, crc }.to_vec());
    }
    // 15 of 40 packets, then the camera pauses.
    raw.send(&frames[..15].concat());
    let api = || {
        let (code, _, body) = get_with(http, "/api/cameras", "");
        assert_eq!(code, 200);
        serde_json::from_slice::<serde_json::Value>(&body).unwrap()
    };
    wait_for("15 packets on the page", || {
        api()["connected"][0]["bytes"] == 15 * 1024
    });
    let now = api();
    let c = &now["connected"][0];
    assert_eq!(c["imei"], imei.to_string());
    assert_eq!(c["file"], "%videof");
    assert_eq!(c["family"], "dualcam");
    assert_eq!(c["protocol"], 5);
    assert_eq!(c["percent"], 37.5);
    // The page in a browser, while the camera is paused mid-file.
    cameras_page_in_a_browser(http, tmp.path(), &[&imei.to_string(), "%videof", "37.5%"]);
    // The rest: stored, and the camera is listed as seen with its file.
    raw.send(&frames[15..].concat());
    assert_eq!(raw.expect(2), [0, 9], "REPEAT INIT once stored");
    raw.init(imei, &[]);
    assert_eq!(raw.rest(), [0, 0, 0, 0]);
    wait_for("the camera seen", || {
        api()["recent"][0]["last_file"]
            .as_str()
            .is_some_and(|f| f.ends_with("videof.h265"))
    });
    let stored = media(&out, imei);
    let name = stored[0].file_name().unwrap().to_str().unwrap();
    let (code, head, body) = get_with(http, &format!("/{imei}/{name}"), "Range: bytes=100-199\r\n");
    assert_eq!(code, 206, "{head}");
    assert_eq!(body, video[100..200].to_vec());
    assert!(
        head.contains(&format!("Content-Range: bytes 100-199/{}", video.len())),
        "{head}"
    );
    assert!(head.contains("Accept-Ranges: bytes"), "{head}");
    let (code, _, body) = get_with(http, &format!("/{imei}/{name}"), "");
    assert_eq!((code, body.len()), (200, video.len()));
    let (code, head, _) = get_with(http, &format!("/{imei}/{name}"), "Range: bytes=999999-\r\n");
    assert_eq!(code, 416, "{head}");
}
