//! Property tests (proptest): the codec's decoders and a whole session fed
//! arbitrary bytes never panic, hang or store anything unverified; and any
//! family, protocol, CRC convention, size, write fragmentation and spoiled
//! frames end byte-exact over loopback.
//! Longer runs: PROPTEST_CASES=100000 cargo test --release --test fuzz

use std::time::Duration;

use dashcam_server::codec::{
    crc16, parse_frame, parse_init, Deframer, Family, FileKind, Frame, InitPacket, Limits, Metadata,
};
use dashcam_server::session;
use dashcam_server::simulator::{run_camera, CrcMode};
use proptest::prelude::*;

mod common;
use common::*;

fn arb_frame() -> impl Strategy<Value = (u16, Vec<u8>, u32)> {
    (
        0u16..16,
        proptest::collection::vec(any::<u8>(), 0..1100),
        any::<u32>(),
    )
}

/// A device frame (what the server parses) from random parts.
fn build(cmd: u16, bytes: &[u8], n: u32) -> Option<Vec<u8>> {
    let f = match cmd {
        1 => Frame::Start { total: n, field: 0 },
        3 => Frame::Sync { offset: n },
        4 if !bytes.is_empty() => Frame::Data {
            payload: &bytes[..bytes.len().min(1024)],
            crc: n as u16,
        },
        5 => Frame::Status { code: n },
        11 => Frame::Metadata { payload: bytes },
        13 => Frame::Path {
            path: &bytes[..bytes.len().min(255)],
        },
        14 if !bytes.is_empty() => Frame::EnhancedData {
            offset: n % 4096,
            payload: bytes,
            crc: n as u16,
        },
        _ => return None,
    };
    Some(f.to_vec())
}

/// Runs a server session over `input`; returns the media files it stored.
fn session_on(input: &[u8], cfg: &session::Config) -> Vec<std::path::PathBuf> {
    let tmp = tempfile::tempdir().unwrap();
    let (_, _, stored) = session_over_bytes(cfg, tmp.path(), input);
    for s in &stored {
        let bytes = std::fs::read(&s.path).unwrap();
        assert_eq!(s.sidecar.crc16, crc16(0, &bytes));
        assert!(s.path.starts_with(tmp.path()));
    }
    stored.iter().map(|s| s.path.clone()).collect()
}

fn cfg() -> session::Config {
    session::Config {
        metadata: true,
        metadata_timeout: Duration::from_millis(1),
        ..Default::default()
    }
}

proptest! {
    #[test]
    fn decoders_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..2100)) {
        let _ = parse_init(&bytes);
        for family in [Family::DualCam, Family::Adas, Family::Dsm] {
            let _ = Metadata::parse(family, false, &bytes);
        }
        let _ = Metadata::parse(Family::Adas, true, &bytes);
        let _ = dashcam_server::tools::decode::describe(&bytes);
        for limits in [Limits::IDENTIFIER, Limits::PATH, Limits::SERVER] {
            let mut rest = &bytes[..];
            while let Ok(Some((f, n))) = parse_frame(rest, limits) {
                // What decodes re-encodes to the same frame, and the same bytes
                // except for START (blank bytes) and PATH REQ (with or without 00 00).
                let again = f.to_vec();
                prop_assert_eq!(parse_frame(&again, limits).unwrap().unwrap().0, f);
                if f.command() != 1 && f.command() != 0x0C {
                    prop_assert_eq!(&again[..], &rest[..n]);
                }
                rest = &rest[n..];
            }
        }
    }

    #[test]
    fn the_deframer_yields_the_same_frames_however_the_bytes_are_cut(
        frames in proptest::collection::vec(arb_frame(), 1..8),
        cuts in proptest::collection::vec(1usize..700, 1..40),
    ) {
        let mut wire = Vec::new();
        let mut want = Vec::new();
        for (cmd, bytes, n) in &frames {
            if let Some(enc) = build(*cmd, bytes, *n) {
                want.push(enc.clone());
                wire.extend(enc);
            }
        }
        let mut d = Deframer::new(Limits::PATH);
        let mut got = Vec::new();
        let mut at = 0;
        let mut i = 0;
        while at < wire.len() {
            let n = cuts[i % cuts.len()].min(wire.len() - at);
            i += 1;
            d.feed(&wire[at..at + n]);
            at += n;
            while let Some(f) = d.next_frame().unwrap() {
                got.push(f.to_vec());
            }
        }
        // START re-encodes with its blank bytes; compare decoded frames.
        prop_assert_eq!(got.len(), want.len());
        for (g, w) in got.iter().zip(&want) {
            prop_assert_eq!(
                parse_frame(g, Limits::PATH).unwrap().unwrap().0,
                parse_frame(w, Limits::PATH).unwrap().unwrap().0
            );
        }
    }

    #[test]
    fn session_on_arbitrary_bytes_stores_nothing(bytes in proptest::collection::vec(any::<u8>(), 0..3000)) {
        prop_assert!(session_on(&bytes, &cfg()).is_empty());
    }

    #[test]
    fn session_after_a_valid_init_survives_arbitrary_frames(
        bits in 0u8..64,
        protocol in 5u16..7,
        frames in proptest::collection::vec(arb_frame(), 0..12),
        junk in proptest::collection::vec(any::<u8>(), 0..64),
        mode in 0usize..4,
    ) {
        let init = InitPacket { protocol_id: protocol, imei: 1, settings: (bits as u32) << 24 };
        let mut input = init.encode().to_vec();
        for (cmd, bytes, n) in &frames {
            // Small totals keep START believable, so DATA gets checked.
            let n = if *cmd == 1 { n % 4 + 1 } else if *cmd == 3 { n % 3 } else { *n };
            if let Some(enc) = build(*cmd, bytes, n) {
                input.extend_from_slice(&enc);
            }
        }
        input.extend_from_slice(&junk);
        let mut c = cfg();
        c.mode = [session::Mode::Auto, session::Mode::Dualcam, session::Mode::Adas, session::Mode::Dsm][mode];
        // Anything stored carries its own CRC (checked in session_on).
        session_on(&input, &c);
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    /// Over loopback: any family, protocol, convention, file size, write
    /// fragmentation, DATA size and spoiled frames: the stored file is exact.
    #[test]
    fn any_camera_any_fragmentation_is_byte_exact(
        family in 0usize..3,
        protocol in 5u16..7,
        chained in any::<bool>(),
        len in 1usize..40_000,
        max_write in prop_oneof![Just(0usize), 1usize..64, 64usize..5000],
        chunk in prop_oneof![Just(1024usize), 1usize..3000],
        spoiled in proptest::collection::vec(1u32..45, 0..3),
        seed in any::<u64>(),
    ) {
        let tmp = tempfile::tempdir().unwrap();
        let out = tmp.path().join("out");
        let srv = start(&out, |c| c.session.metadata = seed % 2 == 0);
        let family = [Family::DualCam, Family::Adas, Family::Dsm][family];
        let bytes = content(len, seed);
        let file = write_file(tmp.path(), "f.bin", &bytes);
        let mut cam = srv.sim(7);
        cam.family = family;
        cam.protocol_id = protocol;
        cam.crc = if chained { CrcMode::Chained } else { CrcMode::Restart };
        cam.max_write = max_write;
        cam.chunk = chunk;
        cam.corrupt_packets = spoiled.clone();
        cam.seed = seed;
        match family {
            Family::DualCam => cam.files = vec![(FileKind::VideoRear, file)],
            Family::Adas => cam.paths = vec![(b"/mnt/sd/mdas9/video/1.mp4".to_vec(), file)],
            Family::Dsm => cam.paths = vec![(b"/mnt/sd/dsm/picture/1".to_vec(), file)],
        }
        let r = run_camera(&cam).unwrap();
        prop_assert!(r.complete, "{:?}", r);
        let stored = media(&out, 7);
        prop_assert_eq!(stored.len(), 1);
        prop_assert!(std::fs::read(&stored[0]).unwrap() == bytes, "not byte-exact");
        let sc = sidecar_of(&stored[0]);
        prop_assert_eq!(sc.size_bytes, len as u64);
        prop_assert_eq!(sc.family, family);
    }
}

#[test]
fn short_start_decodes_and_reencodes_in_full() {
    let short = [0, 1, 0, 4, 0, 1, 62, 139];
    let (f, n) = parse_frame(&short, Limits::IDENTIFIER).unwrap().unwrap();
    assert_eq!(
        (f, n),
        (
            Frame::Start {
                total: 0x0001_3E8B,
                field: 0
            },
            8
        )
    );
    assert_eq!(f.to_vec(), [0, 1, 0, 6, 0, 1, 62, 139, 0, 0]);
}

#[test]
fn a_valid_stream_through_the_same_harness_is_stored() {
    // Proves the harness can store: the fuzz properties above are not vacuous.
    let init = InitPacket {
        protocol_id: 5,
        imei: 1,
        settings: InitPacket::settings_for(&[FileKind::PhotoFront]),
    };
    let mut input = init.encode().to_vec();
    input.extend(one_packet_file_then_init(&init, b"hello camera"));
    let c = session::Config::default();
    assert_eq!(session_on(&input, &c).len(), 1);
}
