//! Unit tests of `container`.

/// Parameter sets are not pictures; a picture of two slices is one.
#[test]
fn hevc_pictures_counts_first_slices_only() {
    let mut s = Vec::new();
    for nal in [32u8, 33, 34] {
        s.extend([0, 0, 0, 1, nal << 1, 1, 0x80, 0x11]);
    }
    for pic in 0..3 {
        let t = if pic == 0 { 19u8 } else { 1 };
        s.extend([0, 0, 1, t << 1, 1, 0x80, 0x22, 0x33]); // first slice
        s.extend([0, 0, 1, t << 1, 1, 0x40, 0x22, 0x33]); // second slice
    }
    assert_eq!(hevc_pictures(&s), 3);
    assert_eq!(hevc_pictures(&[]), 0);
}

use super::*;

fn chunk(kind: ChunkKind, seq: u32, ts: u32, payload: &[u8]) -> Vec<u8> {
    let pad = (4 - payload.len() % 4) % 4;
    let h = ChunkHeader {
        kind,
        padding: pad as u8,
        frame_rate: 20,
        width: 1280,
        height: 720,
        sequence: seq,
        length: (payload.len() + pad) as u32,
        timestamp_us: ts,
    };
    let mut v = h.encode().to_vec();
    v.extend_from_slice(payload);
    v.extend(std::iter::repeat_n(0, pad));
    v
}

#[test]
fn the_notes_header_layout() {
    // `00 14` = 20 fps (big-endian); `00 05 D0 02` = 1280 x 720 (little-endian).
    let mut h = [0u8; HEADER_LEN];
    h[..4].copy_from_slice(b"PTMF");
    h[4] = 2;
    h[5] = b'I';
    h[6..8].copy_from_slice(&[0x00, 0x14]);
    h[8..12].copy_from_slice(&[0x00, 0x05, 0xD0, 0x02]);
    h[12..16].copy_from_slice(&7u32.to_le_bytes());
    h[24..28].copy_from_slice(&12u32.to_le_bytes());
    h[28..32].copy_from_slice(&1_000_000u32.to_le_bytes());
    let p = parse_header(&h, 0).unwrap();
    assert_eq!(
        (p.kind, p.frame_rate, p.width, p.height),
        (ChunkKind::Key, 20, 1280, 720)
    );
    assert_eq!(
        (p.sequence, p.length, p.padding, p.data_len()),
        (7, 12, 2, 10)
    );
    assert_eq!(p.encode(), h, "encodes back byte for byte");
}

#[test]
fn chunks_padding_and_a_summary_with_durations_and_gaps() {
    let mut file = Vec::new();
    file.extend(chunk(
        ChunkKind::Key,
        0,
        1_000_000,
        &[0, 0, 0, 1, 0x40, 1, 2],
    ));
    let mut audio = AUDIO_HEADER.to_vec();
    audio.extend([0xD5; 320]);
    file.extend(chunk(ChunkKind::Audio, 0, 1_000_000, &audio));
    file.extend(chunk(ChunkKind::Frame, 1, 1_033_333, &[0, 0, 0, 1, 2, 1]));
    file.extend(chunk(
        ChunkKind::Frame,
        3,
        1_100_000,
        &[0, 0, 0, 1, 2, 1, 9, 9],
    ));
    let mut s = Summary::default();
    let mut at = 0;
    while let Some((h, p, used)) = parse_chunk(&file[at..], at as u64).unwrap() {
        if h.kind == ChunkKind::Key {
            assert_eq!(p, [0, 0, 0, 1, 0x40, 1, 2], "padding stripped");
        }
        s.add(&h, p);
        at += used;
    }
    assert_eq!(at, file.len());
    assert_eq!((s.video_frames, s.key_frames, s.audio_chunks), (3, 1, 1));
    assert_eq!(s.audio_bytes, 320);
    assert_eq!(s.audio_duration_us(), Some(40_000));
    assert_eq!(s.video_duration_us(), Some(100_000 + 50_000));
    assert_eq!(s.gaps, vec![(true, 2, 1)], "frame 2 is missing");
    assert_eq!(s.backwards, 0);
}

#[test]
fn hostile_bytes_are_errors_not_panics() {
    assert_eq!(
        parse_chunk(b"GARBAGE-GARBAGE", 0),
        Err(ContainerError::BadMagic { at: 0 })
    );
    let mut h = chunk(ChunkKind::Key, 0, 0, &[1, 2, 3, 4]);
    h[24..28].copy_from_slice(&u32::MAX.to_le_bytes());
    assert!(matches!(
        parse_chunk(&h, 9),
        Err(ContainerError::BadLength { at: 9, .. })
    ));
    let mut h = chunk(ChunkKind::Key, 0, 0, &[1, 2, 3, 4]);
    h[5] = b'Z';
    assert!(matches!(
        parse_chunk(&h, 0),
        Err(ContainerError::BadKind { .. })
    ));
    let mut h = chunk(ChunkKind::Key, 0, 0, &[1, 2, 3, 4]);
    h[4] = 9;
    assert!(matches!(
        parse_chunk(&h, 0),
        Err(ContainerError::BadPadding { .. })
    ));
    // A length past the end: more bytes needed, never a read past the slice.
    let h = chunk(ChunkKind::Key, 0, 0, &[1, 2, 3, 4]);
    assert_eq!(parse_chunk(&h[..h.len() - 1], 0), Ok(None));
    for n in 0..h.len() {
        let _ = parse_chunk(&h[..n], 0);
        let _ = parse_header(&h[..n], 0);
    }
}

#[test]
fn sniffing_by_first_bytes() {
    assert_eq!(sniff(b"PTMF\0I"), Sniffed::Ptmf);
    assert_eq!(sniff(&[0, 0, 0, 1, 0x40]), Sniffed::AnnexB);
    assert_eq!(sniff(b"\0\0\0\x20ftypisom"), Sniffed::Mp4);
    assert_eq!(sniff(&[0xFF, 0xD8, 0xFF]), Sniffed::Jpeg);
    assert_eq!(sniff(b"\x89PNG"), Sniffed::Unknown);
    assert_eq!(sniff(b""), Sniffed::Unknown);
}
