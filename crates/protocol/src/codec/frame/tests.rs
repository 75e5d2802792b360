//! Unit tests of `frame`.

use super::*;

fn limits_for(f: &Frame<'_>) -> Limits {
    match f {
        Frame::Close
        | Frame::Resume { .. }
        | Frame::FileRequest { .. }
        | Frame::RepeatInit
        | Frame::MetadataRequest { .. }
        | Frame::PathRequest => Limits::SERVER,
        _ => Limits::PATH,
    }
}

fn roundtrip(f: Frame<'_>) {
    let bytes = f.to_vec();
    let limits = limits_for(&f);
    let (back, used) = parse_frame(&bytes, limits).unwrap().unwrap();
    assert_eq!(back, f);
    assert_eq!(used, bytes.len());
    for cut in 0..bytes.len() {
        assert_eq!(
            parse_frame(&bytes[..cut], limits).unwrap(),
            None,
            "{f:?} cut at {cut}"
        );
    }
}

#[test]
fn server_commands_byte_for_byte_as_the_reference() {
    assert_eq!(Frame::Close.to_vec(), [0, 0, 0, 0]);
    assert_eq!(
        Frame::Resume { offset: 1 }.to_vec(),
        [0, 2, 0, 4, 0, 0, 0, 1]
    );
    assert_eq!(
        Frame::FileRequest {
            identifier: b"%photof"
        }
        .to_vec(),
        [0x00, 0x08, 0x00, 0x07, 0x25, 0x70, 0x68, 0x6F, 0x74, 0x6F, 0x66]
    );
    let path = b"/mnt/sd/mdas9/picture 1.jpg";
    let mut want = vec![0, 8, 0, path.len() as u8];
    want.extend_from_slice(path);
    assert_eq!(Frame::FileRequest { identifier: path }.to_vec(), want);
    assert_eq!(Frame::RepeatInit.to_vec(), [0x00, 0x09]);
    assert_eq!(
        Frame::MetadataRequest {
            identifier: b"%videor"
        }
        .to_vec(),
        [0, 0x0A, 0, 7, b'%', b'v', b'i', b'd', b'e', b'o', b'r']
    );
    assert_eq!(
        Frame::MetadataRequest { identifier: b"" }.to_vec(),
        [0, 0x0A, 0, 0]
    );
    assert_eq!(
        Frame::PathRequest.to_vec(),
        [0x00, 0x0C, 0x00, 0x02, 0x00, 0x00]
    );
    assert_eq!(Frame::Status { code: 0 }.to_vec(), [0, 5, 0, 4, 0, 0, 0, 0]);
}

#[test]
fn device_frames_from_the_notes() {
    let start = [0x00, 0x01, 0x00, 0x06, 0x00, 0x00, 0x00, 0x20, 0x00, 0x00];
    assert_eq!(
        parse_frame(&start, Limits::IDENTIFIER).unwrap(),
        Some((
            Frame::Start {
                total: 32,
                field: 0
            },
            10
        ))
    );
    assert_eq!(
        Frame::Start {
            total: 32,
            field: 0
        }
        .to_vec(),
        start
    );
    // START without its blank bytes.
    assert_eq!(
        parse_frame(&[0, 1, 0, 4, 0, 0, 1, 0], Limits::IDENTIFIER).unwrap(),
        Some((
            Frame::Start {
                total: 256,
                field: 0
            },
            8
        ))
    );
    assert_eq!(
        Frame::Sync {
            offset: 0x0102_0304
        }
        .to_vec(),
        [0, 3, 0, 4, 1, 2, 3, 4]
    );
    assert_eq!(
        Frame::Data {
            payload: &[1, 2, 3],
            crc: 0xABCD
        }
        .to_vec(),
        [0, 4, 0, 5, 1, 2, 3, 0xAB, 0xCD]
    );
    // ENHANCED_DATA: len = 4 + n + 2.
    let e = [0, 0x0E, 0, 9, 0, 0, 4, 0, 7, 8, 9, 0x12, 0x34];
    assert_eq!(
        parse_frame(&e, Limits::PATH).unwrap(),
        Some((
            Frame::EnhancedData {
                offset: 1024,
                payload: &[7, 8, 9],
                crc: 0x1234
            },
            13
        ))
    );
    let path = [0, 0x0D, 0, 5, b'a', b'.', b'j', b'p', 0];
    assert_eq!(
        parse_frame(&path, Limits::PATH).unwrap().unwrap().0,
        Frame::Path { path: b"a.jp\0" }
    );
}

#[test]
fn every_frame_roundtrips() {
    let full = [0x5Au8; 1024];
    let big = vec![0x33u8; 5000];
    for f in [
        Frame::Close,
        Frame::Start {
            total: u32::MAX,
            field: 0,
        },
        Frame::Resume { offset: 7 },
        Frame::Sync { offset: 7 },
        Frame::Data {
            payload: &full,
            crc: 0x27CA,
        },
        Frame::Data {
            payload: &[9],
            crc: 1,
        },
        Frame::Data {
            payload: &big,
            crc: 2,
        },
        Frame::EnhancedData {
            offset: 99,
            payload: &big,
            crc: 3,
        },
        Frame::Status { code: 5 },
        Frame::FileRequest {
            identifier: b"%videof",
        },
        Frame::RepeatInit,
        Frame::MetadataRequest {
            identifier: b"%photor",
        },
        Frame::MetadataRequest { identifier: b"" },
        Frame::Metadata {
            payload: &[0xFF; 40],
        },
        Frame::Metadata {
            payload: &[b'{'; 4096],
        },
        Frame::PathRequest,
        Frame::Path {
            path: b"/mnt/sd/adas/1.mp4",
        },
    ] {
        roundtrip(f);
    }
}

#[test]
fn data_is_bounded_per_flow() {
    // 1025 file bytes + CRC: too long for the identifier flow, fine in the path flow.
    assert_eq!(
        parse_frame(&[0, 4, 0x04, 0x03], Limits::IDENTIFIER),
        Err(CodecError::BadLength { cmd: 4, len: 1027 })
    );
    assert_eq!(parse_frame(&[0, 4, 0x04, 0x03], Limits::PATH), Ok(None));
    // A DATA with no file byte, an ENHANCED_DATA with no file byte.
    assert!(parse_frame(&[0, 4, 0, 2, 0, 0], Limits::PATH).is_err());
    assert!(parse_frame(&[0, 0x0E, 0, 6, 0, 0, 0, 0, 0, 0], Limits::PATH).is_err());
    // METADATA over 4 KiB.
    assert!(parse_frame(&[0, 0x0B, 0x10, 0x01], Limits::PATH).is_err());
}

#[test]
fn each_direction_takes_only_its_own_commands() {
    assert!(parse_frame(&[0, 2, 0, 4, 0, 0, 0, 1], Limits::PATH).is_err());
    assert!(parse_frame(&[0, 3, 0, 4, 0, 0, 0, 1], Limits::SERVER).is_err());
    assert_eq!(
        parse_frame(&[0, 7, 0, 0], Limits::PATH),
        Err(CodecError::UnknownCommand(7))
    );
    assert!(parse_frame(b"GET / HTTP/1.1\r\n", Limits::PATH).is_err());
    // REPEAT INIT is two bytes: what follows is the next command.
    let two = [0, 9, 0, 0, 0, 0];
    let (f, used) = parse_frame(&two, Limits::SERVER).unwrap().unwrap();
    assert_eq!((f, used), (Frame::RepeatInit, 2));
    assert_eq!(
        parse_frame(&two[2..], Limits::SERVER).unwrap().unwrap().0,
        Frame::Close
    );
    // PATH REQ with or without its `00 00`.
    assert_eq!(
        parse_frame(&[0, 0x0C, 0, 0], Limits::SERVER)
            .unwrap()
            .unwrap()
            .0,
        Frame::PathRequest
    );
}

#[test]
fn public_decoders_refuse_short_input_instead_of_panicking() {
    for short in [&[][..], &[0], &[0, 4], &[0, 4, 0]] {
        assert!(check_header(short, Limits::PATH).is_err(), "{short:?}");
    }
    for cmd in [
        cmd::START,
        cmd::RESUME,
        cmd::SYNC,
        cmd::STATUS,
        cmd::DATA,
        cmd::ENHANCED_DATA,
    ] {
        for len in 0..4 {
            let p = vec![0xAB; len];
            let r = decode_payload(cmd, &p);
            let needs_more = match cmd {
                cmd::DATA => len < 2,
                cmd::ENHANCED_DATA => true,
                _ => len < 4,
            };
            assert_eq!(r.is_err(), needs_more, "0x{cmd:04X} with {len} bytes");
        }
    }
    assert!(decode_payload(0x7777, &[]).is_err());
}

#[test]
fn a_payload_too_long_for_the_length_field_is_not_encoded() {
    let big = vec![0u8; 70_000];
    let mut out = vec![1, 2, 3];
    let e = Frame::Data {
        payload: &big,
        crc: 0,
    }
    .encode(&mut out);
    assert_eq!(
        e,
        Err(CodecError::TooLong {
            cmd: cmd::DATA,
            len: 70_002
        })
    );
    assert_eq!(out, [1, 2, 3], "nothing half-written");
    let max = vec![0u8; 65_533];
    assert!(Frame::Data {
        payload: &max,
        crc: 0
    }
    .encode(&mut out)
    .is_ok());
}
