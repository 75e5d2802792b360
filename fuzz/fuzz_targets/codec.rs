//! Every decoder of the codec on arbitrary bytes: no panic, and what decodes
//! re-encodes to the same frame.
#![no_main]

use dashcam_server::codec::{parse_frame, parse_init, Metadata};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = parse_init(data);
    let _ = Metadata::parse(data);
    let _ = dashcam_server::decode::describe(data);
    let mut rest = data;
    while let Ok(Some((frame, used))) = parse_frame(rest) {
        assert!((4..=1030).contains(&used));
        // Re-encoding gives the same frame, and the same bytes except for
        // START, whose 2 "blank" bytes are ignored (missing or non-zero).
        let again = frame.to_vec();
        assert_eq!(parse_frame(&again).unwrap().unwrap().0, frame);
        if frame.command() != 1 {
            assert_eq!(again, &rest[..used]);
        }
        rest = &rest[used..];
    }
});
