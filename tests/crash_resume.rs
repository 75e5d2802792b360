//! A crash costs what was in flight, no more (issue 24, item 5): the server
//! binary is killed (SIGKILL) at random points of a long file sent at a
//! camera's pace; each restart resumes from what is on disk (never from 0),
//! the file completes byte-exact with its metadata, and a clean stop right
//! after a video is stored leaves no `.tmp` behind.

mod common;

use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::path::Path;
use std::sync::atomic::{AtomicU16, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::procs::*;
use common::*;
use dashcam_server::codec::FileKind;
use dashcam_server::simulator::{run_camera, SimConfig};

const IMEI: u64 = 350612071919001;

/// A relay to the server's current port that passes the camera's bytes at
/// about `rate` bytes a second (the server's answers at once), counting them.
struct Pacer {
    addr: SocketAddr,
    to_port: Arc<AtomicU16>,
    passed: Arc<AtomicU64>,
}

fn pacer(rate: u64) -> Pacer {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap();
    let to_port = Arc::new(AtomicU16::new(0));
    let passed = Arc::new(AtomicU64::new(0));
    let (port, count) = (to_port.clone(), passed.clone());
    std::thread::spawn(move || {
        for c in l.incoming() {
            let Ok(cam) = c else { continue };
            let to = SocketAddr::from(([127, 0, 0, 1], port.load(Ordering::SeqCst)));
            let Ok(srv) = TcpStream::connect(to) else {
                continue;
            };
            let (mut cam_in, mut srv_out) = (cam.try_clone().unwrap(), srv.try_clone().unwrap());
            let count = count.clone();
            std::thread::spawn(move || {
                let mut buf = [0u8; 2048];
                let pause = Duration::from_micros(2048 * 1_000_000 / rate);
                while let Ok(n) = cam_in.read(&mut buf) {
                    if n == 0 || srv_out.write_all(&buf[..n]).is_err() {
                        break;
                    }
                    count.fetch_add(n as u64, Ordering::SeqCst);
                    std::thread::sleep(pause);
                }
                let _ = srv_out.shutdown(Shutdown::Write);
            });
            let (mut srv_in, mut cam_out) = (srv, cam);
            std::thread::spawn(move || {
                let _ = std::io::copy(&mut srv_in, &mut cam_out);
                let _ = cam_out.shutdown(Shutdown::Both);
            });
        }
    });
    Pacer {
        addr,
        to_port,
        passed,
    }
}

fn start_server(out: &Path, log: &Path, pacer: &Pacer) -> Proc {
    let (p, addr) = server(out, log, &["--metadata".to_string()]);
    pacer.to_port.store(addr.port(), Ordering::SeqCst);
    p
}

/// A small pseudo-random number from the clock (the kill points differ
/// from run to run; each is printed).
fn jitter(max_ms: u64) -> u64 {
    let n = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .subsec_nanos() as u64;
    (n.wrapping_mul(6364136223846793005) >> 33) % max_ms
}

/// The packet a restarted server resumes the file at, from its log (never
/// "cannot be resumed").
fn resumed_at_packet(log: &Path) -> u32 {
    let mut j = None;
    wait_for("the resume line", || {
        let text = std::fs::read_to_string(log).unwrap_or_default();
        assert!(!text.contains("cannot be resumed"), "{text}");
        j = text
            .split_once("resuming %videof at packet ")
            .and_then(|(_, r)| r.split(' ').next()?.parse::<u32>().ok());
        j.is_some()
    });
    j.unwrap()
}

/// SIGTERM, as systemd stops it; its exit status (within 30 s).
fn stop_with_sigterm(mut child: Proc) -> std::process::ExitStatus {
    assert!(std::process::Command::new("kill")
        .args(["-TERM", &child.0.id().to_string()])
        .status()
        .unwrap()
        .success());
    let began = Instant::now();
    loop {
        if let Some(s) = child.0.try_wait().unwrap() {
            return s;
        }
        assert!(began.elapsed() < Duration::from_secs(30), "no stop");
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn a_kill_at_random_packets_resumes_from_the_disk_and_completes_byte_exact() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("out");
    let pace = pacer(100_000);
    let bytes = content(1536 * 1024 + 300, 91);
    let video = write_file(tmp.path(), "long.h265", &bytes);
    let mut cam = SimConfig::new(pace.addr.to_string(), IMEI);
    cam.files = vec![(FileKind::VideoFront, video)];
    cam.meta_time = Some(1_764_100_000);
    cam.timeout = Duration::from_secs(20);
    let mut resumed_at = 0u32;
    let mut sent_before = 0u64;
    for round in 0..4 {
        let log = tmp.path().join(format!("run{round}.log"));
        let mut srv = start_server(&out, &log, &pace);
        let cam2 = cam.clone();
        let camera = std::thread::spawn(move || run_camera(&cam2));
        let from = pace.passed.load(Ordering::SeqCst);
        let t0 = Instant::now();
        while pace.passed.load(Ordering::SeqCst) <= from + 2048 {
            assert!(
                t0.elapsed() < Duration::from_secs(20),
                "round {round}: no transfer: {}",
                std::fs::read_to_string(&log).unwrap_or_default()
            );
            std::thread::sleep(Duration::from_millis(10));
        }
        if round > 0 {
            // This start resumes where the disk says: never from 0, and at
            // most about two seconds of the camera's bytes (plus the relay's
            // buffers) lost to the kill.
            let j = resumed_at_packet(&log);
            eprintln!("round {round}: resumed at packet {j}");
            assert!(j > 0, "round {round}: started over from 0");
            assert!(
                j >= resumed_at,
                "round {round}: went back from {resumed_at} to {j}"
            );
            let sent = resumed_at as u64 * 1024 + sent_before;
            assert!(
                j as u64 * 1024 + 300 * 1024 >= sent,
                "round {round}: resumed at packet {j}, {sent} bytes had been sent"
            );
            resumed_at = j;
        }
        if round == 3 {
            // The last start: the file completes.
            let r = camera.join().unwrap().unwrap();
            assert!(r.complete, "{r:?}");
            drop(srv);
            break;
        }
        // The kill lands 2.5 to 4.5 s into this connection's transfer (the
        // state is saved every 2 s).
        let at = Duration::from_millis(2500 + jitter(2000));
        std::thread::sleep(at);
        srv.0.kill().unwrap();
        srv.0.wait().unwrap();
        sent_before = pace.passed.load(Ordering::SeqCst) - from;
        eprintln!(
            "round {round}: SIGKILL after {at:?}, {sent_before} bytes of this connection relayed"
        );
        let r = camera.join().unwrap();
        assert!(
            r.map(|r| !r.complete).unwrap_or(true),
            "not complete before the kill"
        );
    }
    // Byte-exact, with its metadata; then a video in the camera's
    // container, and a clean stop at once.
    let log = tmp.path().join("last.log");
    let srv = start_server(&out, &log, &pace);
    let stored = media(&out, IMEI);
    assert_eq!(stored.len(), 1, "stored once: {stored:?}");
    assert_eq!(std::fs::read(&stored[0]).unwrap(), bytes);
    let sc = sidecar_of(&stored[0]);
    assert!(
        sc.metadata.as_ref().is_some_and(|m| m.timestamp.is_some()),
        "{sc:?}"
    );
    let sample = Path::new(env!("CARGO_MANIFEST_DIR")).join("samples/camera.h265");
    let mut cam = SimConfig::new(pace.addr.to_string(), IMEI + 1);
    cam.files = vec![(FileKind::VideoRear, sample)];
    assert!(run_camera(&cam).unwrap().complete);
    assert!(stop_with_sigterm(srv).success());
    let left: Vec<_> = all_files(&out)
        .into_iter()
        .filter(|p| p.to_string_lossy().ends_with(".tmp"))
        .collect();
    assert!(left.is_empty(), "left after a clean stop: {left:?}");
}
