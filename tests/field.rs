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
