//! A camera: connects, sends its init packet, and follows the server's commands
//! the way a device does. Built on the same codec as the server; used by tests,
//! benchmarks and technicians (`dashcam-server simulate`).

mod device;
mod load;

pub use device::run_camera;
pub use load::{run_many, LoadReport};

use std::path::PathBuf;
use std::time::Duration;

use crate::codec::FileKind;

/// What one simulated camera offers and how it misbehaves.
#[derive(Debug, Clone)]
pub struct SimConfig {
    pub server: String,
    pub imei: u64,
    pub protocol_id: u16,
    /// DashCam files reported in the first init packet.
    pub files: Vec<(FileKind, PathBuf)>,
    /// DashCam files that appear only in the init sent after the first REPEAT INIT.
    pub later_files: Vec<(FileKind, PathBuf)>,
    /// ADAS files, offered one per PATH REQ: (path on the camera, local file).
    pub adas: Vec<(Vec<u8>, PathBuf)>,
    /// Answer METADATA REQ (firmware 03.27.04 and later); false stays silent.
    pub metadata: bool,
    pub frame_rate: u8,
    /// Write the stream in random pieces of 1..=max_write bytes (0: whole frames).
    pub max_write: usize,
    /// Packets whose CRC is spoiled, once each, for every file.
    pub corrupt_packets: Vec<u32>,
    /// Close the link after sending this packet (once).
    pub drop_after: Option<u32>,
    /// Give up waiting for the server after this long.
    pub timeout: Duration,
    pub seed: u64,
}

impl SimConfig {
    pub fn new(server: impl Into<String>, imei: u64) -> SimConfig {
        SimConfig {
            server: server.into(),
            imei,
            protocol_id: 5,
            files: Vec::new(),
            later_files: Vec::new(),
            adas: Vec::new(),
            metadata: true,
            frame_rate: 25,
            max_write: 0,
            corrupt_packets: Vec::new(),
            drop_after: None,
            timeout: Duration::from_secs(30),
            seed: imei,
        }
    }
}

/// What happened on the simulated camera's side.
#[derive(Debug, Clone, Default)]
pub struct SimReport {
    /// Identifiers of the files the server took completely.
    pub taken: Vec<String>,
    pub bytes_sent: u64,
    /// Every RESUME offset received, in order, per identifier.
    pub resumes: Vec<(String, u32)>,
    pub metadata_requests: u32,
    pub path_requests: u32,
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
