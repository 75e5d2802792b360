//! Whole sessions over loopback: the server and the simulated camera, for
//! every family, protocol version and CRC convention of PROTOCOL-NOTES.md.

mod common;

use std::path::Path;
use std::time::Duration;

use common::*;
use dashcam_server::codec::{crc16, Family, FileKind, Frame, InitPacket};
use dashcam_server::session::End;
use dashcam_server::simulator::{run_camera, run_many, CrcMode, SimConfig};
use sha2::{Digest, Sha256};

const IMEI: u64 = 350612071913857;

use serde_json::json;

fn sha256_hex(b: &[u8]) -> String {
    Sha256::digest(b)
        .iter()
        .map(|x| format!("{x:02x}"))
        .collect()
}

/// One camera of the matrix: what it offers for its family and protocol.
fn matrix_camera(
    srv: &TestServer,
    dir: &std::path::Path,
    imei: u64,
    family: Family,
    protocol: u16,
    crc: CrcMode,
) -> (SimConfig, Vec<u8>, &'static str) {
    let bytes = content(20 * 1024 + 333, imei);
    let mut cam = srv.sim(imei);
    cam.family = family;
    cam.protocol_id = protocol;
    cam.crc = crc;
    cam.chunk = 700;
    let file = write_file(dir, &format!("cell-{imei}.bin"), &bytes);
    let ext = match family {
        Family::DualCam => {
            cam.files = vec![(FileKind::VideoFront, file)];
            "h265"
        }
        Family::Adas => {
            cam.paths = vec![(b"/mnt/sd/mdas9/video/0001 front.mp4".to_vec(), file)];
            "mp4"
        }
        Family::Dsm => {
            cam.paths = vec![(b"/mnt/sd/dsm/picture/0001".to_vec(), file)];
            "jpg"
        }
    };
    (cam, bytes, ext)
}

/// Family x protocol x CRC convention. In each cell the camera spoils one DATA
/// frame with more in flight, then drops the link; on reconnect the download
/// resumes where it stopped, and the first frame after that SYNC is checked
/// under the camera's convention.
#[test]
fn matrix_of_family_protocol_and_crc_convention() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("out");
    let srv = start(&out, |c| c.session.metadata = true);
    let mut imei = 100_000_000_000_000u64;
    let mut rows = Vec::new();
    for family in [Family::DualCam, Family::Adas, Family::Dsm] {
        for protocol in [5u16, 6] {
            for crc in [CrcMode::Restart, CrcMode::Chained] {
                imei += 1;
                let cell = format!("{family} protocol {protocol} {crc:?}");
                let (mut cam, bytes, ext) =
                    matrix_camera(&srv, tmp.path(), imei, family, protocol, crc);
                cam.corrupt_packets = vec![3];
                cam.drop_after = Some(15);
                let first = run_camera(&cam).unwrap();
                assert!(!first.complete, "{cell}: {first:?}");
                let spoiled_at = if protocol >= 6 || family != Family::DualCam {
                    2 * 700
                } else {
                    3
                };
                assert!(
                    first.resumes.iter().any(|r| r.1 == spoiled_at),
                    "{cell}: {:?}",
                    first.resumes
                );
                assert!(matches!(srv.summary().end, End::LinkLost(_)), "{cell}");
                assert!(
                    media(&out, imei).is_empty(),
                    "{cell}: unfinished file looks finished"
                );
                cam.drop_after = None;
                cam.corrupt_packets = vec![];
                let second = run_camera(&cam).unwrap();
                assert!(second.complete, "{cell}: {second:?}");
                let s = srv.summary();
                assert_eq!(s.end, End::Completed, "{cell}");
                let files = media(&out, imei);
                assert_eq!(files.len(), 1, "{cell}");
                let f = &files[0];
                assert_eq!(std::fs::read(f).unwrap(), bytes, "{cell}: not byte-exact");
                assert_eq!(f.extension().unwrap(), ext, "{cell}");
                let sc = sidecar_of(f);
                let path_flow = protocol >= 6 || family != Family::DualCam;
                let j = sidecar_json(f);
                assert_eq!(j["family"], family.name(), "{cell}");
                assert_eq!(
                    j["flow"],
                    if path_flow { "path" } else { "identifier" },
                    "{cell}"
                );
                assert_eq!(
                    j["unit"],
                    if path_flow { "bytes" } else { "packets" },
                    "{cell}"
                );
                // The spoiled frame 3 was sent again, then the link dropped
                // after frame 15: whatever of 1..=15 was verified is kept.
                let resumed_at = second.resumes[0].1;
                let kept = if path_flow {
                    resumed_at as u64
                } else {
                    (resumed_at as u64 - 1) * 1024
                };
                let unit = if path_flow { 700 } else { 1024 };
                assert!(
                    (3 * unit..=15 * unit).contains(&kept),
                    "{cell}: {:?}",
                    second.resumes
                );
                assert_eq!(sc.resumed_from_byte, Some(kept), "{cell}");
                assert_eq!(
                    second.bytes_sent,
                    bytes.len() as u64 - kept,
                    "{cell}: resent stored bytes"
                );
                let conv = assert_digests_and_metadata(&cell, f, (family, protocol, crc), &bytes);
                rows.push(format!(
                    "{cell:<30} resumed at {resumed_at:>5}, crc {conv}: ok"
                ));
            }
        }
    }
    eprintln!("{}", rows.join("\n"));
    assert_eq!(rows.len(), 12);
}

/// A matrix cell's sidecar: the convention the camera used, its digests of
/// the bytes sent, one CRC error (the spoiled frame), and its metadata in
/// the family's and protocol's format. Returns the convention's name.
fn assert_digests_and_metadata(
    cell: &str,
    f: &Path,
    (family, protocol, crc): (Family, u16, CrcMode),
    bytes: &[u8],
) -> &'static str {
    let sc = sidecar_of(f);
    let j = sidecar_json(f);
    let conv = match crc {
        CrcMode::Restart => "restart",
        CrcMode::Chained => "chained",
    };
    assert_eq!(j["crc_convention"], conv, "{cell}");
    assert_eq!(j["crc16"], format!("0x{:04X}", crc16(0, bytes)), "{cell}");
    assert_eq!(j["sha256"], sha256_hex(bytes), "{cell}");
    assert_eq!(sc.crc_errors, 1, "{cell}: the spoiled frame");
    let m = sc.metadata.as_ref().expect("metadata");
    assert_eq!(
        m.format,
        match (protocol, family) {
            (6, _) => "json",
            (_, Family::DualCam) => "dualcam-binary",
            (_, Family::Adas) => "adas-binary",
            (_, Family::Dsm) => "dsm-binary",
        },
        "{cell}"
    );
    assert!(
        m.trigger_name.is_some() && m.timestamp.is_some(),
        "{cell}: {m:?}"
    );
    conv
}

#[test]
fn ten_queued_photos_are_all_stored_in_one_session() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("out");
    let srv = start(&out, |_| {});
    let photos: Vec<_> = (0..10)
        .map(|i| {
            kind_file(
                tmp.path(),
                FileKind::PhotoFront,
                900 + i * 100,
                40 + i as u64,
            )
        })
        .collect();
    let mut cam = srv.sim(IMEI);
    cam.files = photos.iter().map(|(k, p, _)| (*k, p.clone())).collect();
    let r = run_camera(&cam).unwrap();
    assert!(r.complete, "{r:?}");
    assert_eq!(r.taken.len(), 10);
    assert_eq!(
        r.inits_sent, 11,
        "one file per init, then an init with nothing"
    );
    let s = srv.summary();
    assert_eq!((s.end, s.stored), (End::Completed, 10));
    let got: Vec<Vec<u8>> = media(&out, IMEI)
        .iter()
        .map(|p| std::fs::read(p).unwrap())
        .collect();
    assert_eq!(got.len(), 10);
    for (_, _, b) in &photos {
        assert!(got.contains(b));
    }
}

#[test]
fn a_camera_offering_nothing_gets_close_and_no_path_request() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("out");
    let srv = start(&out, |_| {});
    for (protocol, settings) in [(5u16, 0x4000_0400u32), (6, 0x4000_0000)] {
        let mut raw = Raw::connect(srv.addr);
        raw.send(
            &InitPacket {
                protocol_id: protocol,
                imei: IMEI,
                settings,
            }
            .encode(),
        );
        assert_eq!(raw.rest(), [0, 0, 0, 0], "protocol {protocol}");
        assert_eq!(srv.summary().end, End::Completed);
    }
    assert!(all_files(&out).is_empty());
}

/// Every command the server sends, byte for byte as in the notes' table.
#[test]
fn the_server_sends_every_command_byte_for_byte() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("out");
    let srv = start(&out, |c| c.session.metadata = true);
    // Identifier flow.
    let mut raw = Raw::connect(srv.addr);
    raw.init(IMEI, &[FileKind::PhotoFront]);
    assert_eq!(
        raw.expect(11),
        [0x00, 0x0A, 0x00, 0x07, 0x25, 0x70, 0x68, 0x6F, 0x74, 0x6F, 0x66]
    );
    raw.frame(Frame::Metadata {
        payload: &[0xFF; 32],
    });
    assert_eq!(
        raw.expect(11),
        [0x00, 0x08, 0x00, 0x07, 0x25, 0x70, 0x68, 0x6F, 0x74, 0x6F, 0x66]
    );
    raw.send(&[0x00, 0x01, 0x00, 0x06, 0x00, 0x00, 0x00, 0x01, 0x00, 0x00]);
    assert_eq!(
        raw.expect(8),
        [0x00, 0x02, 0x00, 0x04, 0x00, 0x00, 0x00, 0x01]
    );
    raw.frame(Frame::Sync { offset: 1 });
    raw.frame(Frame::Data {
        payload: b"jpeg",
        crc: crc16(0, b"jpeg"),
    });
    assert_eq!(raw.expect(2), [0x00, 0x09]);
    raw.init(IMEI, &[]);
    assert_eq!(raw.rest(), [0x00, 0x00, 0x00, 0x00]);
    // Path flow.
    let path = b"/mnt/sd/mdas9/picture/a b.jpg";
    let mut raw = Raw::connect(srv.addr);
    raw.init_settings(IMEI + 1, 0x4200_0000);
    assert_eq!(raw.expect(6), [0x00, 0x0C, 0x00, 0x02, 0x00, 0x00]);
    raw.frame(Frame::Path { path });
    assert_eq!(raw.expect(4), [0x00, 0x0A, 0x00, 0x00]);
    raw.frame(Frame::Metadata {
        payload: &[0xFF; 15],
    });
    let mut want = vec![0x00, 0x08, 0x00, path.len() as u8];
    want.extend_from_slice(path);
    assert_eq!(raw.expect(want.len()), want);
    raw.frame(Frame::Start { total: 3, field: 0 });
    assert_eq!(
        raw.expect(8),
        [0x00, 0x02, 0x00, 0x04, 0x00, 0x00, 0x00, 0x00]
    );
    raw.frame(Frame::Sync { offset: 0 });
    raw.frame(Frame::Data {
        payload: b"abc",
        crc: crc16(0, b"abc"),
    });
    assert_eq!(raw.expect(2), [0x00, 0x09]);
    raw.init_settings(IMEI + 1, 0x4000_0000);
    assert_eq!(raw.rest(), [0x00, 0x00, 0x00, 0x00]);
    srv.summary();
    srv.summary();
    assert_eq!(std::fs::read(&media(&out, IMEI + 1)[0]).unwrap(), b"abc");
}

#[test]
fn paths_with_dots_and_absolute_paths_are_identifiers_stored_inside() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("out");
    let srv = start(&out, |_| {});
    let bytes = content(2000, 3);
    let file = write_file(tmp.path(), "x.bin", &bytes);
    let mut cam = srv.sim(IMEI);
    cam.family = Family::Adas;
    cam.paths = vec![
        (b"../../../../etc/cron.d/evil.jpg".to_vec(), file.clone()),
        (b"/etc/passwd".to_vec(), file.clone()),
        (b"C:\\Windows\\x y.mp4".to_vec(), file),
    ];
    let r = run_camera(&cam).unwrap();
    assert!(r.complete, "{r:?}");
    let files = all_files(&out);
    for f in &files {
        assert!(
            f.starts_with(out.join(IMEI.to_string())) || f.ends_with("downloads.jsonl"),
            "{f:?}"
        );
    }
    let stored = media(&out, IMEI);
    assert_eq!(stored.len(), 3);
    let sent: Vec<String> = stored.iter().map(|f| sidecar_of(f).file).collect();
    assert!(
        sent.contains(&"../../../../etc/cron.d/evil.jpg".to_string()),
        "{sent:?}"
    );
    assert!(!tmp.path().join("etc").exists());
}

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
    let j = sidecar_json(&files[0]);
    assert_eq!(
        (&j["media"], &j["camera"]),
        (&json!("video"), &json!("front"))
    );
    assert_eq!((sc.size_bytes, sc.data_frames, sc.crc_errors), (5000, 5, 0));
    assert_eq!(
        (&j["family"], &j["flow"], &j["unit"]),
        (&json!("dualcam"), &json!("identifier"), &json!("packets"))
    );
    assert_eq!(j["sha256"], sha256_hex(&bytes));
    assert_eq!(j["crc16"], format!("0x{:04X}", crc16(0, &bytes)));
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
    assert_eq!((s.end, s.stored, s.bytes), (End::Completed, 1, 5000));
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
        (Some(4), Some(0x10), Some(25), Some(10))
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
    assert_eq!(m.raw_hex.as_deref().map(str::len), Some(80));
    assert_eq!(m.trigger_name.as_deref(), Some("crash"));
    assert_eq!(m.file_type_name.as_deref(), Some("front video"));
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
