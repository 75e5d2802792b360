//! dashcam-server: downloads video and photos from DashCam/DualCam and ADAS
//! cameras over their TCP file-transfer protocol.
//!
//! `codec` is the protocol's bytes (pure); `session` is one camera's
//! conversation over any `Read + Write`; `storage` is the only code that
//! touches the output folder; `server` is the listener; `simulator` a camera.

pub mod cli;
pub mod codec;
pub mod convert;
pub mod decode;
pub mod server;
pub mod session;
pub mod simulator;
pub mod storage;
