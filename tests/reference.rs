//! The reference server's packet counting (PROTOCOL-NOTES, "What real devices
//! were seen doing"), as a small model speaking over loopback: it sends RESUME
//! 0 first, takes the first SYNC of a file as its base, puts the next packet at
//! index `SYNC - base` after every SYNC, restarts its expected CRC at 0 on
//! every SYNC, and after a bad CRC sends RESUME (packets stored + 1), or the
//! bytes stored in the path flow. Every family and protocol `simulate` offers,
//! with and without a spoiled packet, must come through it byte-exact: the
//! simulator stays a device any faithful server stores, the reference included.
//! (A device that answered RESUME 0 with SYNC 0 would be counted one packet
//! ahead after every RESUME here, and lose its last packet.)

mod common;

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::time::Duration;

use common::*;
use dashcam_server::codec::{crc16, parse_frame, parse_init, Family, FileKind, Frame, Limits};
use dashcam_server::simulator::{run_camera, SimConfig};

/// Reads one whole frame (or the 16-byte init when `init`).
fn read_frame(s: &mut TcpStream, buf: &mut Vec<u8>, init: bool) -> Option<Vec<u8>> {
    loop {
        if init && buf.len() >= 16 {
            if let Ok(Some(_)) = parse_init(&buf[..16]) {
                return Some(buf.drain(..16).collect());
            }
        }
        if !init {
            if let Ok(Some((_, used))) = parse_frame(buf, Limits::PATH) {
                return Some(buf.drain(..used).collect());
            }
        }
        let mut chunk = [0u8; 8192];
        let n = s.read(&mut chunk).ok()?;
        if n == 0 {
            return None;
        }
        buf.extend_from_slice(&chunk[..n]);
    }
}

/// One camera, one file, counted the reference's way; returns the file.
fn reference_server(listener: TcpListener) -> Vec<u8> {
    let (mut s, _) = listener.accept().unwrap();
    s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    let mut buf = Vec::new();
    let init = parse_init(&read_frame(&mut s, &mut buf, true).unwrap())
        .unwrap()
        .unwrap();
    let path_flow = init.protocol_id >= 6 || init.path_file();
    let identifier: Vec<u8> = if path_flow {
        s.write_all(&Frame::PathRequest.to_vec()).unwrap();
        let f = read_frame(&mut s, &mut buf, false).unwrap();
        let Ok(Some((Frame::Path { path }, _))) = parse_frame(&f, Limits::PATH) else {
            panic!("expected PATH")
        };
        path.to_vec()
    } else {
        init.available()[0].identifier().as_bytes().to_vec()
    };
    s.write_all(
        &Frame::FileRequest {
            identifier: &identifier,
        }
        .to_vec(),
    )
    .unwrap();
    let f = read_frame(&mut s, &mut buf, false).unwrap();
    let Ok(Some((Frame::Start { total, .. }, _))) = parse_frame(&f, Limits::PATH) else {
        panic!("expected START")
    };
    let size_known = path_flow.then_some(total as usize);
    s.write_all(&Frame::Resume { offset: 0 }.to_vec()).unwrap();
    let mut file: Vec<u8> = Vec::new();
    let (mut base, mut at, mut expected_crc, mut discarding) = (None::<u32>, 0usize, 0u16, false);
    loop {
        let f = read_frame(&mut s, &mut buf, false).expect("the camera hung up mid-file");
        let (frame, _) = parse_frame(&f, Limits::PATH).unwrap().unwrap();
        match frame {
            Frame::Sync { offset } => {
                let b = *base.get_or_insert(offset);
                at = if path_flow {
                    offset as usize
                } else {
                    (offset - b) as usize * 1024
                };
                expected_crc = 0;
                discarding = false;
            }
            Frame::Data { payload, crc } | Frame::EnhancedData { payload, crc, .. } => {
                if discarding {
                    continue;
                }
                let c = crc16(expected_crc, payload);
                if c != crc {
                    // RESUME at what is stored, in the flow's unit.
                    let stored = at;
                    let resume = if path_flow {
                        stored as u32
                    } else {
                        (stored / 1024) as u32 + 1
                    };
                    s.write_all(&Frame::Resume { offset: resume }.to_vec())
                        .unwrap();
                    discarding = true;
                    continue;
                }
                expected_crc = c;
                file.truncate(at);
                file.extend_from_slice(payload);
                at += payload.len();
                let done = match size_known {
                    Some(n) => at >= n,
                    None => payload.len() < 1024 || at >= total as usize * 1024,
                };
                if done {
                    break;
                }
            }
            other => panic!("unexpected {other:?}"),
        }
    }
    s.write_all(&Frame::RepeatInit.to_vec()).unwrap();
    let _ = read_frame(&mut s, &mut buf, true);
    let _ = s.write_all(&Frame::Close.to_vec());
    file
}

#[test]
fn every_family_and_protocol_the_simulator_offers_is_stored_byte_exact_by_the_reference_count() {
    let tmp = tempfile::tempdir().unwrap();
    trace_logging();
    for (family, protocol) in [
        (Family::DualCam, 5),
        (Family::DualCam, 6),
        (Family::Adas, 5),
        (Family::Adas, 6),
        (Family::Dsm, 5),
        (Family::Dsm, 6),
    ] {
        for spoiled in [None, Some(7)] {
            let cell = format!("{family:?} protocol {protocol}, spoiled {spoiled:?}");
            let listener = TcpListener::bind("127.0.0.1:0").unwrap();
            let addr = listener.local_addr().unwrap();
            let server = std::thread::spawn(move || reference_server(listener));
            let bytes = content(
                20 * 1024 + 333,
                protocol as u64 * 10 + spoiled.is_some() as u64,
            );
            let file = write_file(tmp.path(), "f.bin", &bytes);
            let mut cam = SimConfig::new(addr.to_string(), 350612071913857);
            cam.timeout = Duration::from_secs(20);
            cam.metadata = false;
            cam.family = family;
            cam.protocol_id = protocol;
            cam.corrupt_packets = spoiled.into_iter().collect();
            if family == Family::DualCam {
                cam.files = vec![(FileKind::VideoFront, file)];
            } else {
                cam.paths = vec![(b"/mnt/sd/mdas9/dsm/video/1.mp4".to_vec(), file)];
            }
            let report = run_camera(&cam).unwrap();
            let got = server.join().unwrap();
            assert!(report.complete, "{cell}: {report:?}");
            assert_eq!(got.len(), bytes.len(), "{cell}: length");
            assert!(got == bytes, "{cell}: not byte-exact");
            if spoiled.is_some() {
                assert!(
                    report.resumes.len() >= 2,
                    "{cell}: the spoiled packet was asked again"
                );
            }
        }
    }
}
