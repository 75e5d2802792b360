//! Never lose a byte: resume across reconnects and restarts, limits, hostile input.

mod common;

use std::time::{Duration, Instant};

use common::*;
use dashcam_server::codec::{FileKind, Frame};
use dashcam_server::session::{End, Mode, Refusal, Timeout};
use dashcam_server::simulator::{run_camera, run_many};

const IMEI: u64 = 350612071913857;

fn partials(out: &std::path::Path) -> Vec<std::path::PathBuf> {
    all_files(out)
        .into_iter()
        .filter(|p| p.to_string_lossy().contains(".partial"))
        .collect()
}

#[test]
fn link_dropped_after_packet_k_resumes_at_k_byte_exact() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("out");
    let srv = start(&out, |_| {});
    let (k, p, b) = kind_file(tmp.path(), FileKind::VideoFront, 30 * 1024 + 100, 1);
    let mut cam = srv.sim(IMEI);
    cam.files = vec![(k, p)];
    cam.drop_after = Some(12);
    let first = run_camera(&cam).unwrap();
    assert!(!first.complete);
    assert!(matches!(srv.summary().end, End::LinkLost(_)));
    assert!(
        media(&out, IMEI).is_empty(),
        "an unfinished file must not look finished"
    );
    assert_eq!(partials(&out).len(), 2, "partial and state file kept");

    cam.drop_after = None;
    let second = run_camera(&cam).unwrap();
    assert!(second.complete, "{second:?}");
    // Packets 1..=12 are kept; packet 12 is fetched again and compared (the
    // proof that the partial is this file), then 13 on.
    assert_eq!(second.resumes, vec![("%videof".to_string(), 12)]);
    assert_eq!(second.bytes_sent as usize, b.len() - 11 * 1024);
    let f = &media(&out, IMEI)[0];
    assert_eq!(std::fs::read(f).unwrap(), b);
    assert_eq!(sidecar_of(f).resumed_from_byte, Some(11 * 1024));
    assert!(partials(&out).is_empty());
}

#[test]
fn resume_survives_a_server_restart() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("out");
    let (k, p, b) = kind_file(tmp.path(), FileKind::PhotoRear, 9 * 1024, 2);
    let mut cam;
    {
        let srv = start(&out, |_| {});
        cam = srv.sim(IMEI);
        cam.files = vec![(k, p)];
        cam.drop_after = Some(4);
        assert!(!run_camera(&cam).unwrap().complete);
        srv.summary();
        srv.shutdown();
    }
    let srv = start(&out, |_| {});
    cam.server = srv.addr.to_string();
    cam.drop_after = None;
    let r = run_camera(&cam).unwrap();
    assert!(r.complete, "{r:?}");
    assert_eq!(
        r.resumes,
        vec![("%photor".to_string(), 4)],
        "packet 4 again, then 5 on"
    );
    assert_eq!(std::fs::read(&media(&out, IMEI)[0]).unwrap(), b);
}

#[test]
fn a_partial_that_does_not_match_or_is_too_old_starts_over() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("out");
    let srv = start(&out, |_| {});
    let (k, p, _) = kind_file(tmp.path(), FileKind::VideoRear, 10 * 1024, 3);
    let mut cam = srv.sim(IMEI);
    cam.files = vec![(k, p)];
    cam.drop_after = Some(5);
    run_camera(&cam).unwrap();
    // Same identifier, different packet count: a different file.
    let (_, p2, b2) = kind_file(tmp.path(), FileKind::VideoRear, 12 * 1024, 4);
    cam.files = vec![(k, p2)];
    cam.drop_after = None;
    let r = run_camera(&cam).unwrap();
    assert_eq!(r.resumes, vec![("%videor".to_string(), 1)]);
    assert_eq!(std::fs::read(&media(&out, IMEI)[0]).unwrap(), b2);
    // The other file's partial stays, for its own resume (or the age sweep).
    assert_eq!(partials(&out).len(), 2);
    drop(srv);

    // --partial-max-age 0: even a matching partial is stale.
    let out2 = tmp.path().join("out2");
    let srv = start(&out2, |c| c.storage.partial_max_age = Duration::ZERO);
    let mut cam = srv.sim(IMEI);
    cam.files = vec![(
        k,
        kind_file(tmp.path(), FileKind::VideoRear, 10 * 1024, 5).1,
    )];
    cam.drop_after = Some(5);
    run_camera(&cam).unwrap();
    cam.drop_after = None;
    srv.summary(); // the dropped session has ended
    let r = run_camera(&cam).unwrap();
    assert_eq!(r.resumes, vec![("%videor".to_string(), 1)]);
    assert!(r.complete);
}

#[test]
fn a_silent_peer_is_dropped_after_the_read_timeout() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("out");
    let srv = start(&out, |c| {
        c.session.read_timeout = Duration::from_millis(300)
    });
    let mut raw = Raw::connect(srv.addr);
    raw.init(IMEI, &[FileKind::VideoFront]);
    let began = Instant::now();
    let got = raw.rest();
    // FILE REQ, then (no START) CLOSE and the link is closed.
    assert!(got.starts_with(
        &Frame::FileRequest {
            identifier: b"%videof"
        }
        .to_vec()
    ));
    assert!(got.ends_with(&Frame::Close.to_vec()));
    assert!(began.elapsed() < Duration::from_secs(10));
    assert_eq!(srv.summary().end, End::TimedOut(Timeout::Silent));

    // A silent peer mid-file keeps its partial for resume.
    let mut raw = Raw::connect(srv.addr);
    raw.init(IMEI, &[FileKind::VideoFront]);
    raw.expect(11);
    raw.frame(Frame::Start { total: 3, field: 0 });
    assert_eq!(raw.expect(8), Frame::Resume { offset: 1 }.to_vec());
    raw.frame(Frame::Sync { offset: 1 });
    let data = content(1024, 9);
    raw.frame(Frame::Data {
        payload: &data,
        crc: dashcam_server::codec::crc16(0, &data),
    });
    raw.rest();
    assert_eq!(srv.summary().end, End::TimedOut(Timeout::Silent));
    assert_eq!(partials(&out).len(), 2);
}

#[test]
fn a_file_over_max_file_mb_is_skipped_and_the_cameras_other_files_still_come() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("out");
    let srv = start(&out, |c| c.session.max_file_bytes = 1 << 20);
    let (k, p, _) = kind_file(tmp.path(), FileKind::VideoFront, 1024 * 1024 + 1, 6);
    let (k2, p2, photo) = kind_file(tmp.path(), FileKind::PhotoFront, 30_000, 7);
    let mut cam = srv.sim(IMEI);
    cam.files = vec![(k, p), (k2, p2)];
    let r = run_camera(&cam).unwrap();
    assert_eq!(r.ended_by, "CLOSE");
    assert_eq!(r.taken, vec!["%photof".to_string()], "{r:?}");
    assert!(
        r.resumes.iter().all(|(f, _)| f == "%photof"),
        "no RESUME for the big file: nothing of it is written"
    );
    assert_eq!(srv.summary().end, End::Completed);
    let stored = media(&out, IMEI);
    assert_eq!(stored.len(), 1);
    assert_eq!(std::fs::read(&stored[0]).unwrap(), photo);
    assert!(partials(&out).is_empty());
}

/// In the path flow a file cannot be passed over: CLOSE, with the flag to raise.
#[test]
fn a_path_flow_file_over_max_file_mb_is_refused_before_any_byte() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("out");
    let srv = start(&out, |c| c.session.max_file_bytes = 1 << 20);
    let mut cam = srv.sim(IMEI);
    cam.family = dashcam_server::codec::Family::Adas;
    cam.paths = vec![(
        b"/mnt/sd/mdas9/video/big.mp4".to_vec(),
        write_file(tmp.path(), "big.mp4", &content(1024 * 1024 + 1, 8)),
    )];
    let r = run_camera(&cam).unwrap();
    assert!(!r.complete);
    assert_eq!(r.ended_by, "CLOSE");
    assert!(r.resumes.is_empty());
    assert!(matches!(
        srv.summary().end,
        End::Refused(Refusal::TooLarge { limit: 1048576, .. })
    ));
    assert!(all_files(&out).is_empty());
}

/// A full table: connections still before their init packet make room
/// (the oldest is closed); when every connection is a camera past its
/// init, a new link gets CLOSE at once.
#[test]
fn over_max_connections_new_links_get_close_at_once() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("out");
    let srv = start(&out, |c| c.max_connections = Some(2));
    let (k, p, _) = kind_file(tmp.path(), FileKind::PhotoFront, 10, 7);
    // Two idle sockets: the first camera evicts the older one and is served.
    let mut idle: Vec<Raw> = (0..2).map(|_| Raw::connect(srv.addr)).collect();
    wait_for("the two idle connections", || srv.connections() == 2);
    let mut cam = srv.sim(IMEI);
    cam.files = vec![(k, p)];
    let began = Instant::now();
    assert!(run_camera(&cam).unwrap().complete);
    assert!(began.elapsed() < Duration::from_secs(5));
    assert!(idle[0].rest().is_empty(), "the oldest idle one was closed");
    drop(idle);
    wait_for("the idle ones to go", || srv.connections() == 0);
    // Two cameras past their init (each offers a photo, then waits):
    // never evicted; the third link gets CLOSE at once.
    let held: Vec<Raw> = (0..2)
        .map(|i| {
            let mut r = Raw::connect(srv.addr);
            r.init(IMEI + 1 + i, &[FileKind::PhotoFront]);
            r.expect(4);
            r
        })
        .collect();
    wait_for("the two cameras", || srv.connections() == 2);
    let mut third = Raw::connect(srv.addr);
    let began = Instant::now();
    assert_eq!(third.rest(), Frame::Close.to_vec());
    assert!(began.elapsed() < Duration::from_secs(5));
    drop(held);
    // Once they are gone, cameras are served again.
    let began = Instant::now();
    while !run_camera(&cam).unwrap().complete {
        assert!(
            began.elapsed() < Duration::from_secs(20),
            "never served again"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn the_allow_list_turns_other_imeis_away_before_any_request() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("out");
    let srv = start(&out, |c| {
        c.session.allow = Some([IMEI].into_iter().collect())
    });
    let mut raw = Raw::connect(srv.addr);
    raw.init(111_111_111_111_111, &[FileKind::VideoFront]);
    assert_eq!(raw.rest(), Frame::Close.to_vec());
    assert_eq!(srv.summary().end, End::NotAllowed);
    let (k, p, _) = kind_file(tmp.path(), FileKind::PhotoFront, 10, 8);
    let mut cam = srv.sim(IMEI);
    cam.files = vec![(k, p)];
    assert!(run_camera(&cam).unwrap().complete);
    assert_eq!(media(&out, IMEI).len(), 1);
    assert!(!out.join("111111111111111").exists());
}

/// Each hostile input on its own connection, while a real camera uploads.
#[test]
#[allow(
    clippy::too_many_lines,
    reason = "one scenario read top to bottom: its steps share the server and camera they set up"
)]
fn hostile_input_is_closed_logged_and_harmless() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("out");
    let srv = start(&out, |c| {
        c.session.mode = Mode::Auto;
        c.session.sync_timeout = Duration::from_millis(50);
    });
    let (k, p, b) = kind_file(tmp.path(), FileKind::VideoFront, 200 * 1024, 9);
    let mut cam = srv.sim(IMEI);
    cam.files = vec![(k, p)];
    cam.max_write = 4096;
    let good = std::thread::spawn(move || run_camera(&cam).unwrap());

    let bad = 999_000_000_000_001u64;
    let mut random = content(64 * 1024, 77);
    random[0] = 0x17; // not a camera's 00 00
    type Script = Box<dyn Fn(&mut Raw)>;
    let cases: Vec<(&str, Script)> = vec![
        (
            "http",
            Box::new(|r| r.send(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")),
        ),
        ("random", Box::new(move |r| r.send(&random))),
        (
            "truncated init",
            Box::new(|r| {
                r.send(&[0, 0, 0, 5, 0, 1, 0x3E]);
                let _ = r.s.shutdown(std::net::Shutdown::Write);
            }),
        ),
        (
            "length 0xFFFF",
            Box::new(move |r| {
                r.init(bad, &[FileKind::VideoFront]);
                r.expect(11);
                r.send(&[0, 1, 0xFF, 0xFF]);
            }),
        ),
        (
            "DATA before any request",
            Box::new(move |r| {
                r.init(bad, &[]);
                r.send(
                    &Frame::Data {
                        payload: &[1, 2, 3],
                        crc: 0,
                    }
                    .to_vec(),
                );
            }),
        ),
        (
            "START with 4 billion packets",
            Box::new(move |r| {
                r.init(bad, &[FileKind::VideoFront]);
                r.expect(11);
                r.frame(Frame::Start {
                    total: 4_000_000_000,
                    field: 0,
                });
                // Over --max-file-mb: skipped (REPEAT INIT); offered again: CLOSE.
                assert_eq!(r.expect(2), [0, 9]);
                r.init(bad, &[FileKind::VideoFront]);
            }),
        ),
        (
            "SYNC outside the file",
            Box::new(move |r| {
                r.init(bad, &[FileKind::VideoFront]);
                r.expect(11);
                r.frame(Frame::Start {
                    total: 10,
                    field: 0,
                });
                r.expect(8);
                r.frame(Frame::Sync { offset: 11 });
            }),
        ),
        (
            "path with NUL inside",
            Box::new(move |r| {
                r.init_settings(bad, 0x0200_0000);
                r.expect(6);
                r.frame(Frame::Path {
                    path: b"a\0/../../b.jpg",
                });
            }),
        ),
        (
            "path not printable ASCII",
            Box::new(move |r| {
                r.init_settings(bad, 0x0200_0000);
                r.expect(6);
                r.frame(Frame::Path {
                    path: b"\xC0\xAF\xC0\xAF.jpg",
                });
            }),
        ),
        (
            "path over 255 bytes",
            Box::new(move |r| {
                r.init_settings(bad, 0x0200_0000);
                r.expect(6);
                r.frame(Frame::Path { path: &[b'a'; 300] });
            }),
        ),
        (
            "path frame over the bound",
            Box::new(move |r| {
                r.init_settings(bad, 0x0200_0000);
                r.expect(6);
                r.send(&[0, 0x0D, 0x20, 0x00]);
            }),
        ),
        (
            "metadata over 4 KiB",
            Box::new(move |r| {
                r.init(bad, &[FileKind::VideoFront]);
                r.expect(11);
                r.send(&[0, 0x0B, 0x10, 0x01]);
            }),
        ),
    ];
    for (name, script) in &cases {
        let mut raw = Raw::connect(srv.addr);
        script(&mut raw);
        let rest = raw.rest();
        if *name != "truncated init" {
            assert!(
                rest.ends_with(&Frame::Close.to_vec()),
                "{name}: link must end with CLOSE, got {rest:02X?}"
            );
        }
    }
    let mut ends = Vec::new();
    for _ in 0..cases.len() + 1 {
        ends.push(srv.summary().end);
    }
    // The real camera, the one that offered nothing (CLOSE before its DATA),
    // and the one whose only file was over --max-file-mb (skipped, then CLOSE).
    assert_eq!(
        ends.iter().filter(|e| **e == End::Completed).count(),
        3,
        "{ends:?}"
    );
    assert!(ends.iter().all(|e| !matches!(e, End::Storage(_))));
    let report = good.join().unwrap();
    assert!(report.complete);
    assert_eq!(std::fs::read(&media(&out, IMEI)[0]).unwrap(), b);
    let stray: Vec<_> = all_files(&out)
        .into_iter()
        .filter(|p| !p.starts_with(out.join(IMEI.to_string())) && !p.ends_with("downloads.jsonl"))
        .collect();
    assert!(stray.is_empty(), "hostile peers left files: {stray:?}");
}

#[test]
fn a_packet_that_keeps_failing_is_given_up_with_its_partial_kept() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("out");
    let srv = start(&out, |c| c.session.max_crc_retries = 2);
    let mut raw = Raw::connect(srv.addr);
    raw.init(IMEI, &[FileKind::PhotoFront, FileKind::VideoFront]);
    assert_eq!(
        raw.expect(11),
        Frame::FileRequest {
            identifier: b"%videof"
        }
        .to_vec()
    );
    raw.frame(Frame::Start { total: 3, field: 0 });
    raw.expect(8);
    raw.frame(Frame::Sync { offset: 1 });
    let d = content(1024, 1);
    raw.frame(Frame::Data {
        payload: &d,
        crc: dashcam_server::codec::crc16(0, &d),
    });
    // Two failures are retried; the third gives the file up.
    for _ in 0..2 {
        raw.frame(Frame::Data {
            payload: &d,
            crc: 0xBEEF,
        });
        assert_eq!(raw.expect(8), Frame::Resume { offset: 2 }.to_vec());
        raw.frame(Frame::Sync { offset: 2 });
    }
    raw.frame(Frame::Data {
        payload: &d,
        crc: 0xBEEF,
    });
    // The file is given up, the session goes on: REPEAT INIT, and the failed
    // file is not asked again while the camera still reports it.
    assert_eq!(raw.expect(2), [0x00, 0x09]);
    raw.init(IMEI, &[FileKind::PhotoFront, FileKind::VideoFront]);
    assert_eq!(
        raw.expect(11),
        Frame::FileRequest {
            identifier: b"%photof"
        }
        .to_vec()
    );
    raw.frame(Frame::Status { code: 0x11 });
    assert_eq!(raw.rest(), Frame::Close.to_vec());
    assert_eq!(srv.summary().end, End::DeviceStatus(0x11));
    assert_eq!(partials(&out).len(), 2);
}

#[test]
fn two_hundred_cameras_at_once_byte_exact() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("out");
    let srv = start(&out, |_| {});
    let (k, p, b) = kind_file(tmp.path(), FileKind::VideoFront, 64 * 1024, 10);
    let mut cam = srv.sim(IMEI);
    cam.files = vec![(k, p)];
    cam.max_write = 3000;
    cam.timeout = Duration::from_secs(60);
    let report = run_many(&cam, 200);
    eprintln!("200 cameras: {report}");
    assert!(
        report.failures.is_empty(),
        "{:?}",
        &report.failures[..report.failures.len().min(5)]
    );
    for i in 0..200 {
        let stored = media(&out, IMEI + i);
        assert_eq!(stored.len(), 1, "camera {i}");
        assert_eq!(std::fs::read(&stored[0]).unwrap(), b, "camera {i}");
    }
}

#[cfg(unix)]
#[test]
fn sigterm_stops_the_server_keeping_partials_and_exits_0() {
    use std::process::Command;
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("out");
    let port = free_port();
    let log = tmp.path().join("server.log");
    let mut child = Command::new(env!("CARGO_BIN_EXE_dashcam-server"))
        .args(["serve", "--bind", "127.0.0.1", "--port", &port.to_string()])
        .arg("--output-dir")
        .arg(&out)
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .unwrap();
    let addr: std::net::SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    let began = Instant::now();
    let mut raw = loop {
        match std::net::TcpStream::connect(addr) {
            Ok(s) => {
                s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
                break Raw { s };
            }
            Err(_) if began.elapsed() < Duration::from_secs(20) => {
                std::thread::sleep(Duration::from_millis(50))
            }
            Err(e) => panic!("server did not start: {e}"),
        }
    };
    raw.init(IMEI, &[FileKind::VideoFront]);
    raw.expect(11);
    raw.frame(Frame::Start {
        total: 10,
        field: 0,
    });
    raw.expect(8);
    raw.frame(Frame::Sync { offset: 1 });
    let d = content(4 * 1024, 3);
    let mut crc = 0;
    for chunk in d.chunks(1024) {
        crc = dashcam_server::codec::crc16(crc, chunk);
        raw.frame(Frame::Data {
            payload: chunk,
            crc,
        });
    }
    // A spoiled packet 5: its RESUME proves packets 1-4 were taken.
    raw.frame(Frame::Data {
        payload: &d[..1024],
        crc: 0,
    });
    assert_eq!(raw.expect(8), Frame::Resume { offset: 5 }.to_vec());
    Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    let status = child.wait().unwrap();
    assert!(status.success(), "exit status {status:?}");
    raw.rest();
    let part = partials(&out)
        .into_iter()
        .find(|p| p.extension().is_some_and(|e| e == "part"))
        .expect("partial kept");
    assert_eq!(std::fs::read(part).unwrap(), d);
    // The count is the links open when the stop came: this camera's. A
    // stop is said once, and is no camera's error: no warning, no session
    // counted as failed.
    let text = std::fs::read_to_string(&log).unwrap();
    let said = "stopping: 1 camera(s) connected, partials kept";
    assert_eq!(text.matches(said).count(), 1, "{text}");
    let (closing, stopped) = (
        text.find(said).unwrap(),
        text.find("server stopped").expect("server stopped"),
    );
    assert!(closing < stopped);
    let after = &text[closing..];
    assert!(
        !after.contains("WARN") && !after.contains("ERROR"),
        "{after}"
    );
    assert!(after.contains("0 session(s) ended in error"), "{after}");
    assert!(
        after.contains("server shutting down"),
        "the camera's session end says why: {after}"
    );
}

/// A camera that keeps reporting a file after every REPEAT INIT: --max-files bounds the session.
#[test]
fn max_files_bounds_a_session() {
    use dashcam_server::codec::InitPacket;
    use dashcam_server::session::Config;
    let tmp = tempfile::tempdir().unwrap();
    let init = InitPacket {
        protocol_id: 5,
        imei: IMEI,
        settings: InitPacket::settings_for(&[FileKind::PhotoFront]),
    };
    let mut input = init.encode().to_vec();
    for _ in 0..10 {
        input.extend(one_packet_file_then_init(&init, b"again and again"));
    }
    let cfg = Config {
        max_files: 3,
        ..Config::default()
    };
    let (summary, sent, _) = session_over_bytes(&cfg, tmp.path(), &input);
    assert_eq!(summary.end, End::Completed);
    // The same bytes three times: stored once, then known.
    assert_eq!((summary.stored, summary.already_had), (1, 2));
    let mut want = Vec::new();
    for _ in 0..3 {
        want.extend(
            Frame::FileRequest {
                identifier: b"%photof",
            }
            .to_vec(),
        );
        want.extend(Frame::Resume { offset: 1 }.to_vec());
        want.extend([0x00, 0x09]);
    }
    want.extend(Frame::Close.to_vec());
    assert_eq!(sent, want);
}

/// A bug that panics a camera's thread must not cost the server a slot:
/// with one connection allowed (and one per address), the next camera is
/// served as if nothing happened.
#[test]
fn a_panicking_camera_thread_gives_its_slot_back() {
    use dashcam_server::net::server::Server;
    use dashcam_server::storage::PublishStep;
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::Arc;

    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("out");
    let mut cfg = config(&out);
    cfg.max_connections = Some(1);
    cfg.max_per_ip = 1;
    let armed = Arc::new(AtomicBool::new(true));
    let hook = {
        let armed = armed.clone();
        Arc::new(move |step: PublishStep| {
            if step == PublishStep::SyncPartial && armed.swap(false, Ordering::SeqCst) {
                panic!("injected panic before {step:?}");
            }
            false
        })
    };
    let srv = start_server(Server::bind(cfg).unwrap().fault_hook(hook));
    let (k, p, bytes) = kind_file(tmp.path(), FileKind::PhotoFront, 5000, 41);
    let mut cam = srv.sim(IMEI);
    cam.files = vec![(k, p)];
    assert!(
        !run_camera(&cam).unwrap().complete,
        "the first try panicked"
    );
    assert!(
        matches!(srv.summary().end, End::Internal(ref what) if what.contains("injected panic")),
        "the panic is reported"
    );
    // The same camera again, through the one slot: served, byte-exact.
    let again = run_camera(&cam).unwrap();
    assert!(again.complete, "{again:?}");
    assert_eq!(srv.summary().end, End::Completed);
    let stored = media(&out, IMEI);
    assert_eq!(stored.len(), 1);
    assert_eq!(std::fs::read(&stored[0]).unwrap(), bytes);
    // And another camera after it.
    let mut other = srv.sim(IMEI + 1);
    other.files = vec![kind_file(tmp.path(), FileKind::PhotoRear, 3000, 42)]
        .into_iter()
        .map(|(k, p, _)| (k, p))
        .collect();
    assert!(run_camera(&other).unwrap().complete);
    srv.shutdown();
}

/// With metadata on, a camera offers again a file the server stored but whose
/// sidecar was deleted: recognised (its digests computed again), not a panic.
#[test]
fn a_stored_file_whose_sidecar_is_gone_is_recognised_when_offered_again() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("out");
    let srv = start(&out, |c| c.session.metadata = true);
    let (k, p, bytes) = kind_file(tmp.path(), FileKind::VideoFront, 10 * 1024 + 77, 43);
    let mut cam = srv.sim(IMEI);
    cam.meta_time = Some(1_764_000_000);
    cam.files = vec![(k, p)];
    assert!(run_camera(&cam).unwrap().complete);
    assert_eq!(srv.summary().end, End::Completed);
    let stored = media(&out, IMEI);
    std::fs::remove_file(stored[0].with_extension("json")).unwrap();
    let mut cam = srv.sim(IMEI);
    cam.meta_time = Some(1_764_000_000);
    cam.files = vec![(k, tmp.path().join(format!("{}-43.bin", k.name())))];
    let r = run_camera(&cam).unwrap();
    assert!(r.complete, "{r:?}");
    let s = srv.summary();
    assert_eq!(s.end, End::Completed);
    assert_eq!(media(&out, IMEI), stored, "stored once");
    assert_eq!(std::fs::read(&stored[0]).unwrap(), bytes);
    srv.shutdown();
}

/// Two different photos with the same capture time and packet count: the
/// partial of the first is resumed for the second, its overlap check fails,
/// and the file starts over in the same session. The second photo is stored
/// byte-exact with its metadata (named by its capture time), not with
/// `metadata: null` under the server's time.
#[test]
fn a_partial_failing_its_overlap_check_keeps_the_metadata_of_its_file() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("out");
    let srv = start(&out, |c| c.session.metadata = true);
    // An ADAS camera (path flow, bytes) whose one DATA frame after the
    // resume both repeats the kept overlap and completes the file.
    let path = b"/mnt/sd/mdas9/picture/0001.jpg".to_vec();
    let mut cam = srv.sim(IMEI);
    cam.family = dashcam_server::codec::Family::Adas;
    cam.chunk = 8000;
    cam.meta_time = Some(1_764_000_000);
    cam.paths = vec![(
        path.clone(),
        write_file(tmp.path(), "a.jpg", &content(10_000, 61)),
    )];
    cam.drop_after = Some(1);
    run_camera(&cam).unwrap();
    srv.summary();
    let kept = partials(&out);
    assert!(
        kept.iter()
            .any(|p| p.extension().is_some_and(|x| x == "part")),
        "the first photo's partial is kept: {kept:?}"
    );
    let b2 = content(10_000, 62);
    cam.paths = vec![(path, write_file(tmp.path(), "b.jpg", &b2))];
    cam.drop_after = None;
    let r = run_camera(&cam).unwrap();
    assert!(r.complete, "{r:?}");
    let stored = media(&out, IMEI);
    assert_eq!(stored.len(), 1);
    assert_eq!(std::fs::read(&stored[0]).unwrap(), b2);
    let sc = sidecar_of(&stored[0]);
    let m = sc.metadata.expect("the photo's metadata is kept");
    assert!(m.timestamp.is_some(), "{m:?}");
    srv.shutdown();
}
