//! dashcam-server: downloads video and photos from DualCam/DashCam, ADAS and
//! DSM cameras over their TCP file-transfer protocol.
//!
//! The layers are crates of their own: `dashcam_protocol` (codec and session,
//! pure), `dashcam_storage` (everything under the output folder),
//! `dashcam_simulator` (a camera on the codec alone). This package is the
//! server around them, in folders by concern, each a layer that imports only
//! those below it:
//!
//! - `ops`: what the server reports into (metrics, the live board, progress
//!   bars, the log): the bottom layer.
//! - `net`: listeners, admission, PROXY, TLS, and the connection driver.
//! - `delivery`: the outbox runner, S3 (SigV4), the webhook.
//! - `cli`: flags only.
//! - `tools`: verify, convert, gallery, decode over stored files; the
//!   commands' front-ends (`tools::commands`).
//! - `web`: the HTTP endpoint.
//! - `app`: the composition root, the only place that
//!   starts the server's threads. See docs/ARCHITECTURE.md.

pub use dashcam_protocol::{codec, session};
pub use dashcam_simulator as simulator;
pub use dashcam_storage as storage;

pub mod app;
pub mod cli;
pub mod delivery;
pub mod net;
pub mod ops;
pub mod tools;
pub mod web;

/// A poisoned lock (a thread panicked holding it) is still usable: the
/// server's registries and counters hold plain values, valid after any panic.
pub(crate) fn lock<T>(m: &std::sync::Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

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
