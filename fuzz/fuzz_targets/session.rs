//! A whole server session fed arbitrary bytes: no panic, no hang, and any file
//! it stores carries its own CRC and stays under the output folder.
#![no_main]

use std::sync::OnceLock;
use std::time::Duration;

use dashcam_server::codec::crc16;
use dashcam_server::net::driver;
use dashcam_server::session::{Config, Mode};
use dashcam_server::storage::Storage;
use libfuzzer_sys::fuzz_target;

fn dir() -> &'static tempfile::TempDir {
    static DIR: OnceLock<tempfile::TempDir> = OnceLock::new();
    DIR.get_or_init(|| tempfile::tempdir().unwrap())
}

fuzz_target!(|data: &[u8]| {
    // The first byte picks the mode, so every flow is explored.
    let Some((&mode, input)) = data.split_first() else {
        return;
    };
    let cfg = Config {
        mode: [Mode::Auto, Mode::Dualcam, Mode::Adas, Mode::Dsm][mode as usize % 4],
        metadata: mode & 4 != 0,
        metadata_timeout: Duration::from_millis(1),
        max_file_bytes: 64 * 1024,
        ..Config::default()
    };
    let storage = Storage::new(dir().path(), Duration::from_secs(3600)).unwrap();
    let (_, _, stored) = driver::run_over_bytes(&cfg, &storage, input);
    for s in &stored {
        let bytes = std::fs::read(&s.path).unwrap();
        assert_eq!(s.sidecar.crc16, crc16(0, &bytes));
        assert!(s.path.starts_with(dir().path()));
    }
});
