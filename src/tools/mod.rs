//! The technician's tools over what the server stored: `verify` (is each
//! file what a camera should send?), `convert` (mp4 for a browser, through
//! ffmpeg), `gallery` (index.html and thumbnails), `decode` (packets in
//! hex, explained), and the ffmpeg they share.
//!
//! Owns: nothing on the network. May use: the protocol, storage and
//! simulator crates, `ops`; `tools::commands` (the command front-ends)
//! also takes `cli`'s flags and runs a `net` server for `verify`. The
//! server uses `convert` and `gallery` through hooks `app` sets.

pub mod commands;
pub mod convert;
pub mod decode;
pub mod ffmpeg;
pub mod gallery;
pub mod verify;
