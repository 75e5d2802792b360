//! The protocol of DashCam/DualCam, ADAS and DSM cameras, and nothing else:
//! no sockets, no clock, no file system.
//!
//! `codec` is the protocol's bytes; `session` is one camera's conversation as
//! a state machine fed frames and instants; `file` is the vocabulary shared
//! with storage (what a file is, how far into it, why a step failed).

pub mod codec;
pub mod file;
pub mod session;
pub mod time;

pub use file::{Camera, Extent, FileSpec, Media, StoreError, Unit};
