//! dashcam-server: downloads video and photos from DualCam/DashCam, ADAS and
//! DSM cameras over their TCP file-transfer protocol.
//!
//! The layers are crates of their own: `dashcam_protocol` (codec and session,
//! pure), `dashcam_storage` (everything under the output folder),
//! `dashcam_simulator` (a camera on the codec alone). This package is the
//! server around them: `driver` (the one place where a socket meets a
//! session), `server` (listener and admission), TLS, PROXY, the CLI and the
//! technician's tools.

pub use dashcam_protocol::{codec, session};
pub use dashcam_simulator as simulator;
pub use dashcam_storage as storage;

pub mod board;
pub mod cli;
#[cfg(windows)]
mod console;
pub mod convert;
pub mod decode;
pub mod delivery;
pub mod driver;
pub mod ffmpeg;
pub mod gallery;
pub mod http;
pub mod httpd;
pub mod live;
pub mod logging;
pub mod metrics;
pub mod proxy;
pub mod s3;
pub mod server;
pub mod tls;
pub mod verify;

/// Joins `thread` if it ends before `deadline` (true); else leaves it
/// running (false). For stops that wait, bounded, for work in flight.
pub(crate) fn join_by<T>(thread: std::thread::JoinHandle<T>, deadline: std::time::Instant) -> bool {
    while !thread.is_finished() && std::time::Instant::now() < deadline {
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    let ended = thread.is_finished();
    if ended {
        let _ = thread.join();
    }
    ended
}
