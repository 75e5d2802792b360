//! Property-based fuzzing (proptest): the codec's decoders and a whole session
//! fed arbitrary bytes must never panic, hang or store anything unverified.
//! Longer runs: PROPTEST_CASES=100000 cargo test --release --test fuzz

use std::time::Duration;

use dashcam_server::codec::{
    crc16, parse_frame, parse_init, FileKind, Frame, InitPacket, Metadata,
};
use dashcam_server::session;
use proptest::prelude::*;

mod common;
use common::{one_packet_file_then_init, session_over_bytes};

fn arb_frame() -> impl Strategy<Value = (u16, Vec<u8>, u32)> {
    (
        0u16..16,
        proptest::collection::vec(any::<u8>(), 0..1100),
        any::<u32>(),
    )
}

fn build(cmd: u16, bytes: &[u8], n: u32) -> Option<Vec<u8>> {
    let f = match cmd {
        0 => Frame::Close,
        1 => Frame::Start { packets: n },
        2 => Frame::Resume { offset: n },
        3 => Frame::Sync { offset: n },
        4 if !bytes.is_empty() => Frame::Data {
            payload: &bytes[..bytes.len().min(1024)],
            crc: n as u16,
        },
        5 => Frame::Status { code: n },
        8 => Frame::FileRequest {
            identifier: &bytes[..bytes.len().min(255)],
        },
        9 => Frame::RepeatInit,
        10 => Frame::MetadataRequest {
            identifier: &bytes[..bytes.len().min(7)],
        },
        11 => Frame::Metadata {
            payload: &bytes[..bytes.len().min(256)],
        },
        12 => Frame::PathRequest,
        13 => Frame::Path {
            path: &bytes[..bytes.len().min(255)],
        },
        _ => return None,
    };
    Some(f.to_vec())
}

/// Runs a server session over `input`; returns the media files it stored.
fn session_on(input: &[u8], cfg: &session::Config) -> Vec<std::path::PathBuf> {
    let tmp = tempfile::tempdir().unwrap();
    let (summary, _) = session_over_bytes(cfg, tmp.path(), input);
    // Whatever it stored must be whole: every stored file's CRC is the chain's.
    for s in &summary.stored {
        let bytes = std::fs::read(&s.path).unwrap();
        assert_eq!(s.sidecar.crc16, format!("0x{:04X}", crc16(0, &bytes)));
    }
    summary.stored.iter().map(|s| s.path.clone()).collect()
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
        let _ = Metadata::parse(&bytes);
        let mut rest = &bytes[..];
        while let Ok(Some((f, n))) = parse_frame(rest) {
            prop_assert!((4..=1030).contains(&n));
            // What decodes re-encodes to the same frame, and the same bytes
            // except for START, whose 2 "blank" bytes are ignored (missing or non-zero).
            let again = f.to_vec();
            prop_assert_eq!(parse_frame(&again).unwrap().unwrap().0, f);
            if f.command() != 1 {
                prop_assert_eq!(&again[..], &rest[..n]);
            }
            rest = &rest[n..];
        }
    }

    #[test]
    fn every_frame_roundtrips((cmd, bytes, n) in arb_frame()) {
        if let Some(enc) = build(cmd, &bytes, n) {
            let (f, used) = parse_frame(&enc).unwrap().unwrap();
            prop_assert_eq!(used, enc.len());
            prop_assert_eq!(f.to_vec(), enc);
        }
    }

    #[test]
    fn session_on_arbitrary_bytes_stores_nothing(bytes in proptest::collection::vec(any::<u8>(), 0..3000)) {
        prop_assert!(session_on(&bytes, &cfg()).is_empty());
    }

    #[test]
    fn session_after_a_valid_init_survives_arbitrary_frames(
        kinds in 0u8..16,
        frames in proptest::collection::vec(arb_frame(), 0..12),
        junk in proptest::collection::vec(any::<u8>(), 0..64),
        adas in any::<bool>(),
    ) {
        let kinds: Vec<FileKind> = FileKind::in_byte(kinds << 2);
        let init = InitPacket { protocol_id: 5, imei: 1, settings: InitPacket::settings_for(&kinds) };
        let mut input = init.encode().to_vec();
        for (cmd, bytes, n) in &frames {
            // Small packet counts keep START believable, so DATA gets checked.
            let n = if *cmd == 1 { n % 4 + 1 } else if *cmd == 3 { n % 3 + 1 } else { *n };
            if let Some(enc) = build(*cmd, bytes, n) {
                input.extend_from_slice(&enc);
            }
        }
        input.extend_from_slice(&junk);
        let mut c = cfg();
        c.mode = if adas { session::Mode::Adas } else { session::Mode::Auto };
        // Anything stored passed the chained CRC (checked in session_on).
        session_on(&input, &c);
    }
}

#[test]
fn short_start_found_by_cargo_fuzz_decodes_and_reencodes_in_full() {
    let short = [0, 1, 0, 4, 0, 1, 62, 139];
    let (f, n) = parse_frame(&short).unwrap().unwrap();
    assert_eq!(
        (f, n),
        (
            Frame::Start {
                packets: 0x0001_3E8B
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
