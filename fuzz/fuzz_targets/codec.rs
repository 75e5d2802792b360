//! Every decoder of the codec on arbitrary bytes: no panic, and what decodes
//! re-encodes to the same frame.
#![no_main]

use dashcam_server::codec::{parse_frame, parse_init, Family, Limits, Metadata};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = parse_init(data);
    for family in [Family::DualCam, Family::Adas, Family::Dsm] {
        let _ = Metadata::parse(family, false, data);
    }
    let _ = Metadata::parse(Family::Adas, true, data);
    let _ = dashcam_server::tools::decode::describe(data);
    for limits in [Limits::IDENTIFIER, Limits::PATH, Limits::SERVER] {
        let mut rest = data;
        while let Ok(Some((frame, used))) = parse_frame(rest, limits) {
            let again = frame.to_vec();
            assert_eq!(parse_frame(&again, limits).unwrap().unwrap().0, frame);
            // START's blank bytes and PATH REQ's `00 00` may differ.
            if frame.command() != 1 && frame.command() != 0x0C {
                assert_eq!(again, &rest[..used]);
            }
            rest = &rest[used..];
        }
    }
});
