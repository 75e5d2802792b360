//! What the running server tells its operators: counters for `/metrics`,
//! the live board behind `/cameras`, progress bars on a terminal, the log
//! (text or JSON, to stderr or a file), and the Windows console's stop.
//!
//! Owns: the values those report into. May use: the protocol crate's
//! types. Imports nothing else of this package: every other folder
//! reports here, so this folder is the bottom layer.

pub mod board;
#[cfg(windows)]
pub(crate) mod console;
pub mod live;
pub mod logging;
pub mod metrics;
