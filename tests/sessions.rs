//! Whole sessions over loopback: the server and the simulated camera.

mod common;

use std::time::Duration;

use common::*;
use dashcam_server::codec::{crc16, FileKind, Frame};
use dashcam_server::session::{End, Mode};
use dashcam_server::simulator::{run_camera, run_many};

const IMEI: u64 = 350612071913857;

#[test]
fn one_file_lands_byte_exact_with_its_sidecar_and_index_line() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("out");
    let srv = start(&out, |_| {});
    let (kind, path, bytes) = kind_file(tmp.path(), FileKind::VideoFront, 5000, 1);
    let mut cam = srv.sim(IMEI);
    cam.files = vec![(kind, path)];
    let report = run_camera(&cam).unwrap();
    assert!(report.complete, "{report:?}");
    assert_eq!(report.taken, vec!["%videof"]);
    // One file, then REPEAT INIT found nothing more: the session must end with CLOSE.
    assert_eq!(report.ended_by, "CLOSE");
    assert_eq!(report.resumes, vec![("%videof".to_string(), 1)]);
    // A DashCam whose repeated init reports nothing is done: no ADAS PATH REQ.
    assert_eq!(report.path_requests, 0);

    let files = media(&out, IMEI);
    assert_eq!(files.len(), 1);
    let name = files[0].file_name().unwrap().to_str().unwrap().to_string();
    assert!(
        name.ends_with("_videof.h265") && name.len() == "YYYYMMDD_HHMMSS_videof.h265".len(),
        "{name}"
    );
    assert_eq!(std::fs::read(&files[0]).unwrap(), bytes);

    let sc = sidecar_of(&files[0]);
    assert_eq!(sc.imei, "350612071913857");
    assert_eq!(sc.file, "%videof");
    assert_eq!(
        (sc.media.as_str(), sc.camera.as_deref()),
        ("video", Some("front"))
    );
    assert_eq!((sc.size_bytes, sc.packets, sc.crc_errors), (5000, 5, 0));
    assert_eq!(sc.crc16, format!("0x{:04X}", crc16(0, &bytes)));
    assert_eq!(sc.protocol_id, 5);
    assert!(sc.remote_addr.starts_with("127.0.0.1:"));
    assert!(sc.metadata.is_none());
    assert!(chrono::DateTime::parse_from_rfc3339(&sc.completed_at).is_ok());

    let index = std::fs::read_to_string(out.join("downloads.jsonl")).unwrap();
    let line: serde_json::Value = serde_json::from_str(index.lines().next().unwrap()).unwrap();
    assert_eq!(line["path"], format!("{IMEI}/{name}"));
    assert_eq!(line["size_bytes"], 5000);
    // Nothing half-done is left behind.
    assert!(all_files(&out)
        .iter()
        .all(|p| !p.to_string_lossy().contains(".partial/")));
    let s = srv.summary();
    assert_eq!((s.end, s.stored.len(), s.bytes), (End::Completed, 1, 5000));
}

#[test]
fn four_files_in_one_to_nine_byte_writes() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("out");
    let srv = start(&out, |_| {});
    let files: Vec<_> = [
        (FileKind::VideoFront, 3000),
        (FileKind::VideoRear, 2048),
        (FileKind::PhotoFront, 1),
        (FileKind::PhotoRear, 1500),
    ]
    .into_iter()
    .enumerate()
    .map(|(i, (k, len))| kind_file(tmp.path(), k, len, 10 + i as u64))
    .collect();
    let mut cam = srv.sim(IMEI);
    cam.files = files.iter().map(|(k, p, _)| (*k, p.clone())).collect();
    cam.max_write = 9;
    let report = run_camera(&cam).unwrap();
    assert!(report.complete, "{report:?}");
    let stored = media(&out, IMEI);
    assert_eq!(stored.len(), 4);
    for (kind, _, bytes) in &files {
        let f = stored
            .iter()
            .find(|p| {
                p.to_string_lossy()
                    .ends_with(&format!("_{}.{}", kind.name(), kind.extension()))
            })
            .unwrap_or_else(|| panic!("{kind:?} missing in {stored:?}"));
        assert_eq!(&std::fs::read(f).unwrap(), bytes, "{kind:?}");
        assert_eq!(sidecar_of(f).file, kind.identifier());
    }
    // One index line per stored file, with its path under the output folder.
    let index = std::fs::read_to_string(out.join("downloads.jsonl")).unwrap();
    let mut paths: Vec<String> = index
        .lines()
        .map(|l| {
            serde_json::from_str::<serde_json::Value>(l).unwrap()["path"]
                .as_str()
                .unwrap()
                .to_string()
        })
        .collect();
    paths.sort();
    let expected: Vec<String> = stored
        .iter()
        .map(|p| format!("{IMEI}/{}", p.file_name().unwrap().to_string_lossy()))
        .collect();
    assert_eq!(paths, expected);
}

#[test]
fn spoiled_crc_with_packets_in_flight_is_resumed_and_exact() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("out");
    let srv = start(&out, |_| {});
    let (kind, path, bytes) = kind_file(tmp.path(), FileKind::VideoRear, 20 * 1024 + 7, 2);
    // A packet in the middle (later ones are in flight and must be discarded), then the last one.
    for (n, spoil) in [3u32, 21].into_iter().enumerate() {
        let mut cam = srv.sim(IMEI + n as u64);
        cam.files = vec![(kind, path.clone())];
        cam.corrupt_packets = vec![spoil];
        let report = run_camera(&cam).unwrap();
        assert!(report.complete, "{report:?}");
        let resumes: Vec<u32> = report.resumes.iter().map(|(_, k)| *k).collect();
        assert_eq!(resumes, vec![1, spoil]);
        let f = &media(&out, IMEI + n as u64)[0];
        assert_eq!(std::fs::read(f).unwrap(), bytes);
        let sc = sidecar_of(f);
        assert_eq!((sc.crc_errors, sc.packets), (1, 21));
        assert_eq!(srv.summary().crc_retries, 1);
    }
}

#[test]
fn files_captured_during_the_download_come_after_repeat_init() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("out");
    let srv = start(&out, |_| {});
    let (k1, p1, b1) = kind_file(tmp.path(), FileKind::PhotoFront, 900, 3);
    let (k2, p2, b2) = kind_file(tmp.path(), FileKind::VideoRear, 4000, 4);
    let mut cam = srv.sim(IMEI);
    cam.files = vec![(k1, p1)];
    cam.later_files = vec![(k2, p2)];
    let report = run_camera(&cam).unwrap();
    assert!(report.complete, "{report:?}");
    assert_eq!(report.taken, vec!["%photof", "%videor"]);
    assert_eq!(report.ended_by, "CLOSE");
    let stored = media(&out, IMEI);
    assert_eq!(stored.len(), 2);
    let got: Vec<Vec<u8>> = stored.iter().map(|p| std::fs::read(p).unwrap()).collect();
    assert!(got.contains(&b1) && got.contains(&b2));
}

#[test]
fn a_refused_file_stores_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("out");
    let srv = start(&out, |c| c.session.files = Some(vec![FileKind::VideoFront]));
    let (k, p, _) = kind_file(tmp.path(), FileKind::PhotoFront, 900, 5);
    let mut cam = srv.sim(IMEI);
    cam.files = vec![(k, p)];
    let report = run_camera(&cam).unwrap();
    assert!(!report.complete);
    assert!(report.ended_by.contains("0x11"), "{}", report.ended_by);
    assert_eq!(srv.summary().end, End::DeviceStatus(0x11));
    let left: Vec<_> = all_files(&out)
        .into_iter()
        .filter(|p| !p.ends_with("downloads.jsonl"))
        .collect();
    assert!(left.is_empty(), "{left:?}");
}

#[test]
fn http_scanner_gets_close_and_the_server_keeps_serving() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("out");
    let srv = start(&out, |_| {});
    let mut raw = Raw::connect(srv.addr);
    raw.send(b"GET / HTTP/1.1\r\nHost: example\r\n\r\n");
    assert_eq!(raw.rest(), Frame::Close.to_vec());
    assert!(matches!(srv.summary().end, End::NotACamera(_)));
    let (k, p, b) = kind_file(tmp.path(), FileKind::PhotoRear, 100, 6);
    let mut cam = srv.sim(IMEI);
    cam.files = vec![(k, p)];
    assert!(run_camera(&cam).unwrap().complete);
    assert_eq!(std::fs::read(&media(&out, IMEI)[0]).unwrap(), b);
}

#[test]
fn adas_path_flow_keeps_the_name_and_extension() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("out");
    let srv = start(&out, |c| c.session.mode = Mode::Adas);
    let a = content(3000, 7);
    let b = content(10, 8);
    let mut cam = srv.sim(IMEI);
    cam.adas = vec![
        (
            b"DCIM/ADAS/evt_0001.mp4".to_vec(),
            write_file(tmp.path(), "a.mp4", &a),
        ),
        (
            b"DCIM/ADAS/snap 2.JPG".to_vec(),
            write_file(tmp.path(), "b.jpg", &b),
        ),
    ];
    let report = run_camera(&cam).unwrap();
    assert!(report.complete, "{report:?}");
    let stored = media(&out, IMEI);
    assert_eq!(stored.len(), 2, "{stored:?}");
    let mp4 = stored
        .iter()
        .find(|p| p.to_string_lossy().ends_with("_evt_0001.mp4"))
        .unwrap();
    let jpg = stored
        .iter()
        .find(|p| p.to_string_lossy().ends_with("_snap_2.jpg"))
        .unwrap();
    assert_eq!(std::fs::read(mp4).unwrap(), a);
    assert_eq!(std::fs::read(jpg).unwrap(), b);
    let sc = sidecar_of(mp4);
    assert_eq!(
        (sc.file.as_str(), sc.media.as_str(), sc.camera),
        ("DCIM/ADAS/evt_0001.mp4", "adas", None)
    );
}

#[test]
fn auto_mode_uses_adas_when_no_availability_bit_is_set() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("out");
    let srv = start(&out, |_| {});
    let mut cam = srv.sim(IMEI);
    cam.adas = vec![(
        b"ADAS/x.h264".to_vec(),
        write_file(tmp.path(), "x", &content(2000, 9)),
    )];
    assert!(run_camera(&cam).unwrap().complete);
    assert!(media(&out, IMEI)[0].to_string_lossy().ends_with("_x.h264"));
}

#[test]
fn adas_path_climbing_out_stays_inside_the_output_folder() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("deep").join("out");
    let srv = start(&out, |c| c.session.mode = Mode::Adas);
    let mut cam = srv.sim(IMEI);
    cam.adas = vec![(
        b"../../evil.jpg".to_vec(),
        write_file(tmp.path(), "evil-src", b"owned"),
    )];
    let report = run_camera(&cam).unwrap();
    assert!(!report.complete);
    assert_eq!(report.ended_by, "CLOSE");
    assert!(matches!(srv.summary().end, End::Refused(_)));
    let everywhere: Vec<_> = all_files(tmp.path())
        .into_iter()
        .filter(|p| p.to_string_lossy().contains("evil.jpg"))
        .collect();
    assert!(everywhere.is_empty(), "{everywhere:?}");
    assert!(all_files(&out).is_empty());
}

#[test]
fn metadata_names_the_file_and_fills_the_sidecar() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("out");
    let srv = start(&out, |c| c.session.metadata = true);
    let (k, p, b) = kind_file(tmp.path(), FileKind::VideoFront, 2500, 11);
    let mut cam = srv.sim(IMEI);
    cam.files = vec![(k, p)];
    cam.frame_rate = 25;
    let report = run_camera(&cam).unwrap();
    assert!(report.complete);
    assert_eq!(report.metadata_requests, 1);
    let f = &media(&out, IMEI)[0];
    assert_eq!(std::fs::read(f).unwrap(), b);
    let m = sidecar_of(f).metadata.expect("metadata");
    assert_eq!(
        (m.command_version, m.file_type, m.frame_rate, m.duration_s),
        (Some(1), Some(0x10), Some(25), Some(10))
    );
    assert_eq!(m.timezone_minutes, Some(120));
    assert!((m.latitude.unwrap() - 54.7004183).abs() < 1e-9);
    let ts = chrono::DateTime::parse_from_rfc3339(m.timestamp.as_deref().unwrap()).unwrap();
    let stamp = ts
        .with_timezone(&chrono::Utc)
        .format("%Y%m%d_%H%M%S")
        .to_string();
    assert!(
        f.file_name().unwrap().to_string_lossy().starts_with(&stamp),
        "{f:?} vs {stamp}"
    );
    assert_eq!(m.raw_hex.len(), 80);
}

#[test]
fn old_firmware_without_metadata_still_gets_its_file() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("out");
    let srv = start(&out, |c| {
        c.session.metadata = true;
        c.session.metadata_timeout = Duration::from_millis(300);
    });
    let (k, p, b) = kind_file(tmp.path(), FileKind::PhotoFront, 1200, 12);
    let mut cam = srv.sim(IMEI);
    cam.files = vec![(k, p)];
    cam.metadata = false;
    let report = run_camera(&cam).unwrap();
    assert!(report.complete, "{report:?}");
    let f = &media(&out, IMEI)[0];
    assert_eq!(std::fs::read(f).unwrap(), b);
    assert!(sidecar_of(f).metadata.is_none());
}

#[test]
fn twenty_cameras_at_once_byte_exact() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("out");
    let srv = start(&out, |_| {});
    let (k, p, b) = kind_file(tmp.path(), FileKind::VideoFront, 50_000, 13);
    let mut cam = srv.sim(IMEI);
    cam.files = vec![(k, p)];
    cam.max_write = 700;
    let report = run_many(&cam, 20);
    assert!(report.failures.is_empty(), "{:?}", report.failures);
    assert_eq!(report.files, 20);
    for i in 0..20 {
        let stored = media(&out, IMEI + i);
        assert_eq!(stored.len(), 1, "camera {i}");
        assert_eq!(std::fs::read(&stored[0]).unwrap(), b, "camera {i}");
    }
}

#[test]
fn same_second_same_file_is_not_clobbered() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("out");
    let srv = start(&out, |_| {});
    let (k, p1, b1) = kind_file(tmp.path(), FileKind::PhotoRear, 700, 14);
    let (_, p2, b2) = kind_file(tmp.path(), FileKind::PhotoRear, 800, 15);
    for p in [p1, p2] {
        let mut cam = srv.sim(IMEI);
        cam.files = vec![(k, p)];
        assert!(run_camera(&cam).unwrap().complete);
    }
    let stored = media(&out, IMEI);
    assert_eq!(stored.len(), 2);
    let got: Vec<Vec<u8>> = stored.iter().map(|p| std::fs::read(p).unwrap()).collect();
    assert!(got.contains(&b1) && got.contains(&b2));
    for f in &stored {
        assert_eq!(
            sidecar_of(f).size_bytes,
            std::fs::metadata(f).unwrap().len()
        );
    }
}
