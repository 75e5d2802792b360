//! As devices behave in the field (PROTOCOL-NOTES, third edition, "What real
//! devices were seen doing"): resumes that never splice two files, reconnects
//! that never throw a good partial away, queued files that all arrive in one
//! session, and the real sessions' byte vectors replayed.

mod common;

use common::*;
use dashcam_server::codec::{crc16, FileKind, Frame};
use dashcam_server::session::End;
use dashcam_server::simulator::run_camera;

const IMEI: u64 = 350612071913857;

/// Default settings (no metadata): a photo drops at packet 20 of 40, and the
/// camera's next `%photof` is another photo of 40 packets. The server must
/// not append the new photo's end to the old one's start: it fetches the
/// partial's last packet again, sees it differ, and downloads the new photo
/// whole in the same session.
#[test]
fn a_resume_never_splices_two_photos_of_the_same_name_and_size() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("out");
    let srv = start(&out, |_| {});
    let old = content(40 * 1024, 1);
    let new = content(40 * 1024, 2);
    let mut cam = srv.sim(IMEI);
    cam.metadata = false;
    cam.files = vec![(
        FileKind::PhotoFront,
        write_file(tmp.path(), "old.jpg", &old),
    )];
    cam.drop_after = Some(20);
    assert!(!run_camera(&cam).unwrap().complete);
    srv.summary();
    cam.drop_after = None;
    cam.files = vec![(
        FileKind::PhotoFront,
        write_file(tmp.path(), "new.jpg", &new),
    )];
    let r = run_camera(&cam).unwrap();
    assert!(r.complete, "{r:?}");
    // RESUME at the partial's last packet (20), then, as it differed, from 1.
    assert_eq!(
        r.resumes,
        vec![("%photof".to_string(), 20), ("%photof".to_string(), 1)]
    );
    assert_eq!(srv.summary().end, End::Completed, "no CLOSE");
    let stored = media(&out, IMEI);
    assert_eq!(stored.len(), 1);
    assert_eq!(std::fs::read(&stored[0]).unwrap(), new, "spliced");
}

/// The same with the path flow (bytes): the overlap is the last 1 KiB kept.
#[test]
fn a_path_flow_resume_never_splices_either() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("out");
    let srv = start(&out, |_| {});
    let old = content(30_000, 3);
    let new = content(30_000, 4);
    let mut cam = srv.sim(IMEI);
    cam.family = dashcam_server::codec::Family::Adas;
    cam.metadata = false;
    cam.paths = vec![(
        b"/sd/mdas9/picture/1.jpg".to_vec(),
        write_file(tmp.path(), "o", &old),
    )];
    cam.drop_after = Some(15);
    assert!(!run_camera(&cam).unwrap().complete);
    srv.summary();
    cam.drop_after = None;
    cam.paths = vec![(
        b"/sd/mdas9/picture/1.jpg".to_vec(),
        write_file(tmp.path(), "n", &new),
    )];
    let r = run_camera(&cam).unwrap();
    assert!(r.complete, "{r:?}");
    assert_eq!(r.resumes.last().unwrap().1, 0, "started over: {r:?}");
    assert_eq!(std::fs::read(&media(&out, IMEI)[0]).unwrap(), new);
}

/// The same file comes back: the overlap matches and the download goes on
/// from where it was, costing one packet.
#[test]
fn a_resume_of_the_same_file_costs_one_packet() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("out");
    let srv = start(&out, |_| {});
    let bytes = content(40 * 1024 + 500, 5);
    let mut cam = srv.sim(IMEI);
    cam.files = vec![(FileKind::VideoRear, write_file(tmp.path(), "v", &bytes))];
    cam.drop_after = Some(20);
    let first = run_camera(&cam).unwrap();
    srv.summary();
    cam.drop_after = None;
    let r = run_camera(&cam).unwrap();
    assert!(r.complete);
    assert_eq!(r.resumes, vec![("%videor".to_string(), 20)]);
    // 41 packets in all; 20 on the first link, 22 (packet 20 again, 21..41) on the second.
    assert_eq!(first.bytes_sent + r.bytes_sent, bytes.len() as u64 + 1024);
    assert_eq!(std::fs::read(&media(&out, IMEI)[0]).unwrap(), bytes);
}

/// A camera that reconnects while its old link is still being torn down
/// finds its partial every time (it is claimed before its state is read).
#[test]
fn fifty_reconnects_mid_transfer_resume_every_time() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("out");
    let srv = start(&out, |_| {});
    let bytes = content(52 * 1024 + 77, 6);
    let mut cam = srv.sim(IMEI);
    cam.files = vec![(FileKind::VideoFront, write_file(tmp.path(), "v", &bytes))];
    for i in 0..50u32 {
        cam.drop_after = Some(i + 2);
        let r = run_camera(&cam).unwrap();
        assert!(!r.complete);
        if i > 0 {
            // Resumed at the packet kept last (sent again to compare), never at 1.
            assert_eq!(
                r.resumes,
                vec![("%videof".to_string(), i + 1)],
                "reconnect {i}"
            );
        }
    }
    cam.drop_after = None;
    let r = run_camera(&cam).unwrap();
    assert!(r.complete, "{r:?}");
    assert_eq!(r.resumes, vec![("%videof".to_string(), 51)]);
    assert_eq!(std::fs::read(&media(&out, IMEI)[0]).unwrap(), bytes);
}

/// Ten photos queued while out of coverage, all `%photof`, all the same size
/// and the same (coarse) metadata time: all ten arrive in one session, each
/// stored once, byte-exact.
#[test]
fn ten_queued_photos_with_the_same_time_and_size_all_arrive_in_one_session() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("out");
    let srv = start(&out, |c| c.session.metadata = true);
    let photos: Vec<Vec<u8>> = (0..10).map(|i| content(20 * 1024 + 100, 100 + i)).collect();
    let mut cam = srv.sim(IMEI);
    cam.meta_time = Some(1_764_000_000);
    cam.files = photos
        .iter()
        .enumerate()
        .map(|(i, p)| {
            (
                FileKind::PhotoFront,
                write_file(tmp.path(), &format!("p{i}"), p),
            )
        })
        .collect();
    let r = run_camera(&cam).unwrap();
    assert!(r.complete, "{r:?}");
    assert_eq!(r.taken.len(), 10);
    let s = srv.summary();
    assert_eq!(s.end, End::Completed);
    let got: Vec<Vec<u8>> = media(&out, IMEI)
        .iter()
        .map(|p| std::fs::read(p).unwrap())
        .collect();
    assert_eq!(got.len(), 10, "each stored once");
    for p in &photos {
        assert!(got.contains(p), "a photo is missing or spliced");
    }
}

/// The path flow: the same path offered again with new contents is a new file.
#[test]
fn the_same_path_offered_again_with_new_contents_is_stored_again() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("out");
    let srv = start(&out, |_| {});
    let files: Vec<Vec<u8>> = (0..3).map(|i| content(5000, 200 + i)).collect();
    let mut cam = srv.sim(IMEI);
    cam.family = dashcam_server::codec::Family::Dsm;
    cam.paths = files
        .iter()
        .enumerate()
        .map(|(i, f)| {
            (
                b"dsm/picture/x.jpg".to_vec(),
                write_file(tmp.path(), &format!("d{i}"), f),
            )
        })
        .collect();
    let r = run_camera(&cam).unwrap();
    assert!(r.complete, "{r:?}");
    let got: Vec<Vec<u8>> = media(&out, IMEI)
        .iter()
        .map(|p| std::fs::read(p).unwrap())
        .collect();
    assert_eq!(got.len(), 3);
    for f in &files {
        assert!(got.contains(f));
    }
}

/// The real photo session of the notes, byte for byte where the notes give
/// the bytes: init, metadata (32 bytes, command version 3), START of 29
/// packets, SYNC 1, 29 DATA frames chained from 0 (the last of 723 bytes),
/// then the init again with settings `40 00 04 00` (nothing left): CLOSE.
#[test]
fn the_real_photo_session_replayed() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("out");
    let srv = start(&out, |c| c.session.metadata = true);
    let mut raw = Raw::connect(srv.addr);
    raw.send(&[
        0, 0, 0, 5, 0, 1, 0x44, 0x0F, 0x32, 0xB2, 0x17, 0x35, 0x44, 0, 4, 0,
    ]);
    assert_eq!(raw.expect(11), b"\x00\x0A\x00\x07%photof");
    raw.send(&[
        0x00, 0x0B, 0x00, 0x20, 0x03, 0x04, 0x00, 0x00, 0x01, 0x92, 0xDD, 0x35, 0x36, 0x28, 0x00,
        0x00, 0x00, 0x00, 0x01, 0x2C, 0x40, 0x4B, 0x57, 0xF6, 0x2B, 0x6A, 0xE7, 0xD5, 0x40, 0x39,
        0x47, 0x9A, 0x6B, 0x50, 0xB0, 0xF2,
    ]);
    assert_eq!(raw.expect(11), b"\x00\x08\x00\x07%photof");
    raw.send(&[0x00, 0x01, 0x00, 0x06, 0x00, 0x00, 0x00, 0x1D, 0x00, 0x00]);
    assert_eq!(raw.expect(8), [0, 2, 0, 4, 0, 0, 0, 1], "RESUME 1");
    raw.send(&[0x00, 0x03, 0x00, 0x04, 0x00, 0x00, 0x00, 0x01]);
    let photo = content(28 * 1024 + 723, 7);
    let mut crc = 0;
    let mut wire = Vec::new();
    for p in photo.chunks(1024) {
        crc = crc16(crc, p);
        wire.extend(Frame::Data { payload: p, crc }.to_vec());
    }
    // One read holding several frames, as seen.
    raw.send(&wire);
    assert_eq!(raw.expect(2), [0, 9], "REPEAT INIT once stored");
    raw.send(&[
        0, 0, 0, 5, 0, 1, 0x44, 0x0F, 0x32, 0xB2, 0x17, 0x35, 0x40, 0, 4, 0,
    ]);
    assert_eq!(raw.rest(), [0, 0, 0, 0], "CLOSE: nothing left");
    assert_eq!(srv.summary().end, End::Completed);
    let stored = media(&out, 0x0001_440F_32B2_1735);
    assert_eq!(std::fs::read(&stored[0]).unwrap(), photo);
    let j = sidecar_json(&stored[0]);
    assert_eq!(j["metadata"]["timestamp"], "2024-10-30T11:35:05.000Z");
    assert_eq!(j["metadata"]["timezone_minutes"], 300);
    assert_eq!(j["metadata"]["command_version"], 3);
    assert!(
        j.get("start_field").is_none(),
        "devices send 0: not written"
    );
}

/// A device that gets no RESUME yet sends its START again: one RESUME answers both.
/// Its START field (here not 0) is kept in the sidecar.
#[test]
fn a_repeated_start_is_answered_once_and_starts_field_is_kept() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("out");
    let srv = start(&out, |_| {});
    let mut raw = Raw::connect(srv.addr);
    raw.init(IMEI, &[FileKind::PhotoRear]);
    assert_eq!(raw.expect(11), b"\x00\x08\x00\x07%photor");
    let photo = content(2000, 8);
    let file_crc = crc16(0, &photo);
    let start = Frame::Start {
        total: 2,
        field: file_crc,
    };
    raw.frame(start);
    raw.frame(start);
    raw.frame(start);
    assert_eq!(raw.expect(8), Frame::Resume { offset: 1 }.to_vec());
    raw.frame(Frame::Sync { offset: 1 });
    let mut crc = 0;
    for p in photo.chunks(1024) {
        crc = crc16(crc, p);
        raw.frame(Frame::Data { payload: p, crc });
    }
    // STATUS right after the last packet: logged by name, the file stays stored.
    raw.frame(Frame::Status { code: 1 });
    assert_eq!(
        raw.expect(2),
        [0, 9],
        "REPEAT INIT, and only one RESUME before it"
    );
    raw.init(IMEI, &[]);
    assert_eq!(raw.rest(), [0, 0, 0, 0]);
    assert_eq!(srv.summary().end, End::Completed);
    let stored = media(&out, IMEI);
    assert_eq!(std::fs::read(&stored[0]).unwrap(), photo);
    assert_eq!(
        sidecar_json(&stored[0])["start_field"],
        format!("0x{file_crc:04X}")
    );
}

/// STATUS in the middle of a file: the partial is kept (every byte has not
/// arrived), the session goes on with REPEAT INIT.
#[test]
fn a_device_status_mid_transfer_keeps_the_partial() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("out");
    let srv = start(&out, |_| {});
    let mut raw = Raw::connect(srv.addr);
    raw.init(IMEI, &[FileKind::VideoFront]);
    raw.expect(11);
    raw.frame(Frame::Start { total: 5, field: 0 });
    raw.expect(8);
    raw.frame(Frame::Sync { offset: 1 });
    let video = content(5 * 1024, 9);
    let mut crc = 0;
    for p in video.chunks(1024).take(3) {
        crc = crc16(crc, p);
        raw.frame(Frame::Data { payload: p, crc });
    }
    raw.frame(Frame::Status { code: 9 }); // SD card: failed to write
    assert_eq!(raw.expect(2), [0, 9]);
    raw.init(IMEI, &[]);
    assert_eq!(raw.rest(), [0, 0, 0, 0]);
    srv.summary();
    assert!(media(&out, IMEI).is_empty(), "not complete: not stored");
    // The next connection resumes it (packet 3 sent again, then 4 and 5).
    let mut cam = srv.sim(IMEI);
    cam.files = vec![(FileKind::VideoFront, write_file(tmp.path(), "v", &video))];
    let r = run_camera(&cam).unwrap();
    assert!(r.complete);
    assert_eq!(r.resumes, vec![("%videof".to_string(), 3)]);
    assert_eq!(std::fs::read(&media(&out, IMEI)[0]).unwrap(), video);
}

/// The DSM PATH frame of another field implementation: its length counts the
/// NUL, and FILE REQ sends the path back exactly, NUL included.
#[test]
fn a_path_with_a_trailing_nul_is_echoed_exactly() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("out");
    let srv = start(&out, |_| {});
    let mut raw = Raw::connect(srv.addr);
    raw.init_settings(IMEI, 0x0200_0000);
    assert_eq!(raw.expect(6), [0, 0x0C, 0, 2, 0, 0], "PATH REQ");
    let mut path = vec![0x00, 0x0D, 0x00, 0x1E];
    path.extend_from_slice(b"dsm/picture/231020/231452.jpg\0");
    raw.send(&path);
    let mut want = vec![0x00, 0x08, 0x00, 0x1E];
    want.extend_from_slice(b"dsm/picture/231020/231452.jpg\0");
    assert_eq!(raw.expect(34), want);
}

/// The fourth edition's real front-video session, scaled down: packet 9's
/// header announces 1026 bytes but only its first 576 follow; the camera
/// then sends packet 9 again whole and 10-12 (its CRC chain carried on), all
/// before the server's RESUME reaches it. The server drops those unaligned
/// bytes up to the SYNC (it does not read them as commands), and the camera
/// answers with SYNC, one packet, the same SYNC again, and the rest, its
/// chain restarting at each SYNC. The video comes out whole, stored once.
#[test]
fn a_data_frame_cut_short_then_a_repeated_sync_completes_the_video() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("out");
    let srv = start(&out, |_| {});
    let mut raw = Raw::connect(srv.addr);
    raw.init(IMEI, &[FileKind::VideoFront]);
    assert_eq!(raw.expect(11), b"\x00\x08\x00\x07%videof");
    let video = content(19 * 1024 + 876, 11);
    let packets: Vec<&[u8]> = video.chunks(1024).collect();
    raw.frame(Frame::Start {
        total: packets.len() as u32,
        field: 0,
    });
    assert_eq!(raw.expect(8), Frame::Resume { offset: 1 }.to_vec());
    raw.frame(Frame::Sync { offset: 1 });
    // Frames 1..=8 (packets[0..8]) whole, chained from the SYNC.
    let mut crc = 0;
    let mut wire = Vec::new();
    let mut frames = Vec::new();
    for p in &packets {
        crc = crc16(crc, p);
        frames.push(Frame::Data { payload: p, crc }.to_vec());
    }
    for f in &frames[..8] {
        wire.extend(f);
    }
    // Packet 9 cut short after 576 bytes, then 9 again whole, 10, 11, 12.
    wire.extend(&frames[8][..4 + 576]);
    for f in &frames[8..12] {
        wire.extend(f);
    }
    raw.send(&wire);
    assert_eq!(
        raw.expect(8),
        Frame::Resume { offset: 9 }.to_vec(),
        "RESUME at packet 9, and the session goes on"
    );
    // SYNC 9, one packet, SYNC 9 again, then every packet to the end; the
    // chain restarts at each SYNC.
    let mut wire = Frame::Sync { offset: 9 }.to_vec();
    wire.extend(
        Frame::Data {
            payload: packets[8],
            crc: crc16(0, packets[8]),
        }
        .to_vec(),
    );
    wire.extend(Frame::Sync { offset: 9 }.to_vec());
    let mut crc = 0;
    for p in &packets[8..] {
        crc = crc16(crc, p);
        wire.extend(Frame::Data { payload: p, crc }.to_vec());
    }
    raw.send(&wire);
    assert_eq!(raw.expect(2), [0, 9], "REPEAT INIT once stored");
    raw.init(IMEI, &[]);
    assert_eq!(raw.rest(), [0, 0, 0, 0], "CLOSE: nothing left");
    let summary = srv.summary();
    assert_eq!(summary.end, End::Completed);
    let stored = media(&out, IMEI);
    assert_eq!(stored.len(), 1, "stored once: {stored:?}");
    assert_eq!(std::fs::read(&stored[0]).unwrap(), video, "byte-exact");
}

/// What public camera ports receive besides cameras (the notes' fourth
/// edition): a tracker's AVL data (Codec 8E), an HTTP request, an RDP probe,
/// a TLS ClientHello on the plain port. Each is closed within a second with
/// one line that names it and what to change, counted by kind in /metrics;
/// nothing is stored, and the next camera is served.
#[test]
fn avl_http_rdp_and_tls_on_the_camera_port_are_named_closed_and_counted() {
    use common::procs::{server, Proc};
    use std::io::{Read, Write};
    use std::net::TcpStream;
    use std::time::{Duration, Instant};

    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("out");
    let log = tmp.path().join("server.log");
    let http: std::net::SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
    let (p, addr): (Proc, _) = server(&out, &log, &["--http-bind".to_string(), http.to_string()]);
    // A Teltonika Codec 8E packet: preamble, data length, codec, one record, CRC.
    let mut avl = vec![0, 0, 0, 0, 0, 0, 0, 0x4A, 0x8E, 0x01];
    avl.extend((0..0x4A - 3).map(|i| i as u8));
    avl.push(0x01);
    avl.extend([0, 0, 0x6B, 0x3F]);
    let mut rdp = b"\x03\x00\x00\x00\x2A\xE0\x00\x00\x00\x00\x00Cookie: mstshash=nmap\r\n\x01\x00\x08\x00\x03\x00\x00\x00".to_vec();
    rdp[3] = rdp.len() as u8;
    // A ClientHello's record and handshake headers, then its random.
    let mut hello = vec![
        0x16, 0x03, 0x01, 0x00, 0x2F, 0x01, 0x00, 0x00, 0x2B, 0x03, 0x03,
    ];
    hello.extend([0x5A; 32]);
    hello.extend([0x00, 0x00, 0x02, 0x13, 0x01, 0x01, 0x00]);
    let probes: [(&str, &[u8], &str); 4] = [
        (
            "avl",
            &avl,
            "tracker AVL data (Codec 8E) on the camera port: the tracker's server setting points here",
        ),
        (
            "http",
            b"GET / HTTP/1.1\r\nHost: camera.example\r\nUser-Agent: zgrab/0.x\r\n\r\n",
            "an HTTP request on the camera port",
        ),
        ("rdp", &rdp, "a remote-desktop (RDP) probe on the camera port"),
        (
            "tls",
            &hello,
            "a TLS handshake (16 03) on a port that speaks plain TCP",
        ),
    ];
    for (kind, bytes, _) in &probes {
        let mut s = TcpStream::connect(addr).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        s.write_all(bytes).unwrap();
        let sent = Instant::now();
        let mut back = Vec::new();
        let closed = match s.read_to_end(&mut back) {
            Ok(_) => true,
            Err(e) => e.kind() == std::io::ErrorKind::ConnectionReset,
        };
        assert!(
            closed && sent.elapsed() < Duration::from_secs(1),
            "{kind}: closed {closed} after {:?}",
            sent.elapsed()
        );
    }
    // The next camera is served.
    let tmpf = write_file(tmp.path(), "p.jpg", &content(3000, 4));
    let cam = common::procs::camera(addr, IMEI, vec![(FileKind::PhotoFront, tmpf)]);
    assert!(run_camera(&cam).unwrap().complete);
    let stored: Vec<_> = all_files(&out)
        .into_iter()
        .filter(|f| {
            let s = f.strip_prefix(&out).unwrap().to_string_lossy().to_string();
            !s.starts_with('.')
                && !s.ends_with(".json")
                && !s.ends_with(".html")
                && !s.ends_with(".jsonl")
        })
        .collect();
    assert_eq!(stored.len(), 1, "only the camera's photo: {stored:?}");
    let metrics = http_get(http, "/metrics");
    for (kind, _, _) in &probes {
        let line = format!("dashcam_not_a_camera_total{{kind=\"{kind}\"}} 1");
        assert!(metrics.contains(&line), "{line} in:\n{metrics}");
    }
    drop(p);
    let text = std::fs::read_to_string(&log).unwrap();
    for (kind, _, says) in &probes {
        let n = text.lines().filter(|l| l.contains(says)).count();
        assert_eq!(n, 1, "{kind}: one line saying {says:?} in:\n{text}");
    }
    assert!(!text.contains("not a camera: not a camera"), "{text}");
    assert!(
        !text.contains("protocol 0"),
        "AVL taken for an init:\n{text}"
    );
    assert!(
        !text
            .lines()
            .any(|l| l.contains("session end") && l.contains("not a camera")),
        "a second line per probe:\n{text}"
    );
}

/// GET over a new connection; the body.
fn http_get(addr: std::net::SocketAddr, path: &str) -> String {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(std::time::Duration::from_secs(10)))
        .unwrap();
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut out = String::new();
    let _ = s.read_to_string(&mut out);
    out
}

/// The same cut-short camera, and the server killed (-9) after the rewind,
/// in the middle of the file: the camera reconnects, the restarted server
/// resumes from what it kept, and the video comes out byte-exact, once.
#[cfg(unix)]
#[test]
fn a_server_killed_in_the_middle_of_a_cut_file_resumes_it_whole() {
    use common::procs::server;

    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("out");
    let video = content(40 * 1024 + 300, 12);
    let packets: Vec<&[u8]> = video.chunks(1024).collect();
    let chain = |from: usize, to: usize| {
        let mut crc = 0;
        let mut wire = Vec::new();
        for p in &packets[from..to] {
            crc = crc16(crc, p);
            wire.extend(Frame::Data { payload: p, crc }.to_vec());
        }
        wire
    };
    let (p, addr) = server(&out, &tmp.path().join("first.log"), &[]);
    let mut raw = Raw::connect(addr);
    raw.init(IMEI, &[FileKind::VideoFront]);
    assert_eq!(raw.expect(11), b"\x00\x08\x00\x07%videof");
    let start = Frame::Start {
        total: packets.len() as u32,
        field: 0,
    };
    raw.frame(start);
    assert_eq!(raw.expect(8), Frame::Resume { offset: 1 }.to_vec());
    raw.frame(Frame::Sync { offset: 1 });
    // 1..=8 whole, 9 cut after 576 bytes, then 9..=12 whole (one chain).
    let first = chain(0, 12);
    let at9 = 8 * 1030;
    let mut wire = first[..at9].to_vec();
    wire.extend(&first[at9..at9 + 4 + 576]);
    wire.extend(&first[at9..]);
    raw.send(&wire);
    assert_eq!(raw.expect(8), Frame::Resume { offset: 9 }.to_vec());
    // SYNC 9, one packet, SYNC 9 again, then 9..=20.
    let mut wire = Frame::Sync { offset: 9 }.to_vec();
    wire.extend(chain(8, 9));
    wire.extend(Frame::Sync { offset: 9 }.to_vec());
    wire.extend(chain(8, 20));
    raw.send(&wire);
    // The rewind is taken, and the packets after it (held in memory or
    // written, whichever the server chose) are in flight when it dies.
    wait_for("the second SYNC 9", || {
        std::fs::read_to_string(tmp.path().join("first.log"))
            .unwrap()
            .contains("SYNC 9 is behind what is stored")
    });
    // The rewind to 8 packets records them as verified in the partial's
    // state (what a restart may resume from; a state is otherwise saved
    // every 2 s or 1 MiB). The kill comes after that, not in a race with it.
    let partials = out.join(IMEI.to_string()).join(".partial");
    wait_for("8 packets recorded as verified", || {
        std::fs::read_dir(&partials)
            .into_iter()
            .flatten()
            .flatten()
            .filter(|e| e.path().extension().is_some_and(|x| x == "state"))
            .filter_map(|e| std::fs::read_to_string(e.path()).ok())
            .filter_map(|t| serde_json::from_str::<serde_json::Value>(t.trim()).ok())
            .any(|v| v["verified_bytes"].as_u64() >= Some(8 * 1024))
    });
    let mut p = p;
    p.0.kill().unwrap();
    p.0.wait().unwrap();
    drop(raw);
    // The camera comes back to the restarted server.
    let (_p2, addr) = server(&out, &tmp.path().join("second.log"), &[]);
    let mut raw = Raw::connect(addr);
    raw.init(IMEI, &[FileKind::VideoFront]);
    assert_eq!(raw.expect(11), b"\x00\x08\x00\x07%videof");
    raw.frame(start);
    let resume = raw.expect(8);
    let Frame::Resume { offset } =
        dashcam_server::codec::parse_frame(&resume, dashcam_server::codec::Limits::SERVER)
            .unwrap()
            .unwrap()
            .0
    else {
        panic!("RESUME expected: {resume:?}");
    };
    assert!(
        (8..=21).contains(&offset),
        "resumes from what was kept (8 packets at least; the last kept is asked again to check it), not from the start: {offset}\nfirst server:\n{}\nsecond server:\n{}",
        std::fs::read_to_string(tmp.path().join("first.log")).unwrap_or_default(),
        std::fs::read_to_string(tmp.path().join("second.log")).unwrap_or_default()
    );
    let k = offset as usize;
    let mut wire = Frame::Sync { offset }.to_vec();
    wire.extend(chain(k - 1, packets.len()));
    raw.send(&wire);
    assert_eq!(raw.expect(2), [0, 9], "REPEAT INIT once stored");
    raw.init(IMEI, &[]);
    assert_eq!(raw.rest(), [0, 0, 0, 0], "CLOSE: nothing left");
    let stored = media(&out, IMEI);
    assert_eq!(stored.len(), 1, "stored once: {stored:?}");
    assert_eq!(std::fs::read(&stored[0]).unwrap(), video, "byte-exact");
}

/// A camera whose clock says 2043 (seen in the field) gets one warning line
/// a session naming the difference, whatever the number of its files; its
/// files are stored as ever.
#[test]
fn a_camera_clock_years_ahead_is_named_once_a_session() {
    use common::procs::server;

    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("out");
    let log = tmp.path().join("server.log");
    let (p, addr) = server(&out, &log, &["--metadata".to_string()]);
    let files = vec![
        (
            FileKind::PhotoFront,
            write_file(tmp.path(), "f.jpg", &content(3000, 1)),
        ),
        (
            FileKind::PhotoRear,
            write_file(tmp.path(), "r.jpg", &content(4000, 2)),
        ),
    ];
    let mut cam = common::procs::camera(addr, IMEI, files);
    cam.metadata = true;
    cam.meta_time = Some(2_314_260_000); // 2043-05-03T10:00:00Z
    let r = run_camera(&cam).unwrap();
    assert!(r.complete, "{r:?}");
    assert_eq!(media(&out, IMEI).len(), 2);
    drop(p);
    let text = std::fs::read_to_string(&log).unwrap();
    let lines: Vec<&str> = text.lines().filter(|l| l.contains("clock")).collect();
    assert_eq!(lines.len(), 1, "{text}");
    assert!(
        lines[0].contains("WARN")
            && lines[0].contains(&format!("[{IMEI}] the camera's clock is 16."))
            && lines[0].contains("years ahead of the server's (its file says 2043-05-03"),
        "{}",
        lines[0]
    );
}
