//! dashcam-server: downloads video and photos from DashCam/DualCam and ADAS
//! cameras over their TCP file-transfer protocol.
//!
//! `codec` is the protocol's bytes (pure); `session` is one camera's
//! conversation as a pure state machine; `driver` runs it over a socket and
//! `storage` (the only code that touches the output folder); `server` is the
//! listener; `simulator` a camera built on the codec alone.

pub mod cli;
pub mod codec;
pub mod convert;
pub mod decode;
pub mod driver;
pub mod gallery;
pub mod live;
pub mod logging;
pub mod proxy;
pub mod server;
pub mod session;
pub mod simulator;
pub mod storage;
pub mod tls;
pub mod verify;
