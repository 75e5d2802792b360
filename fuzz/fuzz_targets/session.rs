//! A whole server session fed arbitrary bytes: no panic, no hang, and any file
//! it stores carries its own CRC and stays under the output folder.
#![no_main]

use std::sync::atomic::AtomicBool;
use std::sync::OnceLock;
use std::time::Duration;

use dashcam_server::codec::crc16;
use dashcam_server::driver::{self, Env, Link};
use dashcam_server::metrics::{FastBudget, Metrics};
use dashcam_server::session::{Config, Mode};
use dashcam_server::storage::Storage;
use libfuzzer_sys::fuzz_target;

/// Bytes in, bytes out, in memory; reading past the input is the peer closing.
struct MemoryLink<'a> {
    input: &'a [u8],
    output: Vec<u8>,
}

impl std::io::Read for MemoryLink<'_> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        self.input.read(buf)
    }
}

impl std::io::Write for MemoryLink<'_> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.output.write(buf)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Link for MemoryLink<'_> {
    fn set_read_timeout(&mut self, _: Duration) -> std::io::Result<()> {
        Ok(())
    }
}

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
    let stop = AtomicBool::new(false);
    let (metrics, fast) = (Metrics::default(), FastBudget::default());
    let env = Env {
        config: &cfg,
        storage: &storage,
        shutdown: &stop,
        on_stored: &|_| {},
        on_camera: &|_| {},
        metrics: &metrics,
        fast: &fast,
    };
    let mut link = MemoryLink { input, output: Vec::new() };
    let summary = driver::run(&env, &mut link, "fuzz".into(), 0, std::time::Instant::now());
    for s in &summary.stored {
        let bytes = std::fs::read(&s.path).unwrap();
        assert_eq!(s.sidecar.crc16, crc16(0, &bytes));
        assert!(s.path.starts_with(dir().path()));
    }
});
