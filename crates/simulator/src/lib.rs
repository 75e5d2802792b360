//! A camera: connects, sends its init packet, and follows the server's commands
//! the way the notes say devices do, per family and protocol version. Built on
//! the codec alone (not on the server's session), so it checks the server
//! instead of mirroring it. Used by tests, benchmarks and technicians
//! (`dashcam-server simulate`).

mod device;
mod fleet;
mod load;
pub mod ptmf;
mod tls;

pub use device::run_camera;
pub use fleet::{run_fleet, FleetConfig, FleetReport};
pub use load::{run_many, LoadReport};
pub use tls::{client_config, SharedTls, Trust};

use std::path::PathBuf;
use std::time::Duration;

use dashcam_protocol::codec::{Family, FileKind};

/// Where the simulated camera starts its CRC chain after a SYNC.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum CrcMode {
    /// From 0 after every SYNC: current firmware.
    Restart,
    /// From the CRC of the bytes before the SYNC's offset: the document's reading.
    Chained,
}

/// What one simulated camera offers and how it misbehaves.
#[derive(Debug, Clone)]
pub struct SimConfig {
    pub server: String,
    pub imei: u64,
    pub family: Family,
    pub protocol_id: u16,
    pub crc: CrcMode,
    /// DualCam files reported by settings bits (on protocol >= 6, offered as paths).
    pub files: Vec<(FileKind, PathBuf)>,
    /// DualCam files that appear only in the init sent after the first REPEAT INIT.
    pub later_files: Vec<(FileKind, PathBuf)>,
    /// Path-flow files, offered one per PATH REQ: (path on the camera, local file).
    pub paths: Vec<(Vec<u8>, PathBuf)>,
    /// File bytes per DATA frame in the path flow.
    pub chunk: usize,
    /// Answer METADATA REQ (firmware 03.27.04 and later); false stays silent.
    pub metadata: bool,
    pub frame_rate: u8,
    /// Video length metadata reports, in seconds (default 10).
    pub video_duration_s: u16,
    /// Per file (by identifier, `%videof`, or path): frame rate and length
    /// that file's metadata reports, over the two above.
    pub file_meta: Vec<(Vec<u8>, u8, u16)>,
    /// Per local file: the frame rate and length read from the file itself
    /// (after `file_meta`, before the two defaults).
    pub meta_by_file: Vec<(PathBuf, u8, u16)>,
    /// Position metadata reports (default 54.7004183, 25.2797).
    pub position: (f64, f64),
    /// Write the stream in random pieces of 1..=max_write bytes (0: whole frames).
    pub max_write: usize,
    /// DATA frames (1-based, counted from the file's start) whose CRC is
    /// spoiled, once each, for every file.
    pub corrupt_packets: Vec<u32>,
    /// Close the link after sending this DATA frame (once).
    pub drop_after: Option<u32>,
    /// Give up waiting for the server after this long.
    pub timeout: Duration,
    pub seed: u64,
    /// Speak TLS, trusting this.
    pub tls: Option<crate::tls::Trust>,
    /// The capture time metadata reports (Unix seconds); default: this minute.
    pub meta_time: Option<i64>,
    /// Connect from this local address (loopback tests: 127.0.0.2, ...).
    pub source_ip: Option<std::net::IpAddr>,
}

impl SimConfig {
    pub fn new(server: impl Into<String>, imei: u64) -> SimConfig {
        SimConfig {
            server: server.into(),
            imei,
            family: Family::DualCam,
            protocol_id: 5,
            crc: CrcMode::Restart,
            files: Vec::new(),
            later_files: Vec::new(),
            paths: Vec::new(),
            chunk: 1024,
            metadata: true,
            frame_rate: 25,
            video_duration_s: 10,
            file_meta: Vec::new(),
            meta_by_file: Vec::new(),
            position: (54.7004183, 25.2797),
            max_write: 0,
            corrupt_packets: Vec::new(),
            drop_after: None,
            timeout: Duration::from_secs(30),
            seed: imei,
            tls: None,
            meta_time: None,
            source_ip: None,
        }
    }
}

/// What happened on the simulated camera's side.
#[derive(Debug, Clone, Default)]
pub struct SimReport {
    /// Identifiers of the files the server took completely.
    pub taken: Vec<String>,
    pub bytes_sent: u64,
    /// Every RESUME value received, in order, per identifier.
    pub resumes: Vec<(String, u32)>,
    pub metadata_requests: u32,
    pub path_requests: u32,
    pub inits_sent: u32,
    /// CLOSE, COMPLETED, or why the link ended.
    pub ended_by: String,
    /// The server took every file offered and ended the session itself.
    pub complete: bool,
}

/// A tiny xorshift: the simulator's write sizes need to vary, not to be secure.
pub(crate) struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }

    pub fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % n.max(1)
    }
}

/// Seconds since the Unix epoch, from the system clock.
pub(crate) fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}
