//! Many cameras at once (`simulate --cameras N`): sizing a server, and load tests.

use std::fmt;
use std::thread;
use std::time::{Duration, Instant};

use super::{run_camera, SimConfig, SimReport};

#[derive(Debug, Clone)]
pub struct LoadReport {
    pub cameras: usize,
    pub files: usize,
    pub bytes: u64,
    pub wall: Duration,
    /// (IMEI, what went wrong) for each camera that did not complete.
    pub failures: Vec<(u64, String)>,
}

impl LoadReport {
    pub fn throughput_mb_s(&self) -> f64 {
        self.bytes as f64 / 1e6 / self.wall.as_secs_f64().max(1e-9)
    }
}

impl fmt::Display for LoadReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "cameras {}, files {}, bytes {}, wall {:.3}s, throughput {:.1} MB/s, failures {}",
            self.cameras,
            self.files,
            self.bytes,
            self.wall.as_secs_f64(),
            self.throughput_mb_s(),
            self.failures.len()
        )
    }
}

/// Runs `n` cameras with IMEIs `base.imei`, `base.imei + 1`, ... all at once.
pub fn run_many(base: &SimConfig, n: usize) -> LoadReport {
    let began = Instant::now();
    let handles: Vec<_> = (0..n as u64)
        .map(|i| {
            let mut cfg = base.clone();
            cfg.imei = base.imei + i;
            cfg.seed = base.seed.wrapping_add(i);
            thread::Builder::new()
                .stack_size(256 * 1024)
                .spawn(move || (cfg.imei, run_camera(&cfg)))
        })
        .collect();
    let mut report = LoadReport {
        cameras: n,
        files: 0,
        bytes: 0,
        wall: Duration::ZERO,
        failures: Vec::new(),
    };
    for (i, h) in handles.into_iter().enumerate() {
        let imei = base.imei + i as u64;
        let outcome: Result<SimReport, String> = match h {
            Err(e) => Err(format!("could not start a thread: {e}")),
            Ok(h) => match h.join() {
                Err(_) => Err("camera thread panicked".into()),
                Ok((_, r)) => r.map_err(|e| format!("{e:#}")),
            },
        };
        match outcome {
            Ok(r) if r.complete => {
                report.files += r.taken.len();
                report.bytes += r.bytes_sent;
            }
            Ok(r) => report
                .failures
                .push((imei, format!("incomplete: {}", r.ended_by))),
            Err(e) => report.failures.push((imei, e)),
        }
    }
    report.wall = began.elapsed();
    report
}
