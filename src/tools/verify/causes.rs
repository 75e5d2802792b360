//! What a FAIL means and what to do about it: one table of causes (CAUSES),
//! printed after each FAIL line, by `verify --explain`, and in the README's
//! troubleshooting section.

use super::*;

/// What a FAIL (or a warning) means and what to do about it: one table,
/// printed under each FAIL line, by `verify --explain`, and in the README's
/// troubleshooting section (a test keeps the three the same).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cause {
    NeverConnected,
    NotACamera,
    NotSent,
    NothingStored,
    NoMetadata,
    ClockAhead,
    ClockNotSet,
    NoPosition,
    PhotoBroken,
    VideoBroken,
    LengthDiffers,
    FrameRateDiffers,
    NoSound,
    CrcRetries,
}

/// (cause, what the technician sees, what to do).
pub const CAUSES: [(Cause, &str, &str); 14] = [
    (
        Cause::NeverConnected,
        "camera never connects (\"no camera connected within N s\")",
        "In the camera's (or tracker's) settings, the file server's address must be this computer's address as the camera reaches it and the port must be --port (default 5000). On Windows, answer the firewall prompt with Allow (private and public networks). The camera needs mobile data (SIM, APN) and connects only when it has a file to send: trigger a photo or an event.",
    ),
    (
        Cause::NotACamera,
        "the server log says \"not a camera\"",
        "Something other than a camera reached the camera port. \"tracker AVL data\": a tracker's AVL server setting points at the camera port; set it to your tracking platform. HTTP, RDP or SSH: a scanner, nothing to change. \"TLS handshake\": the camera speaks TLS; give the server --tls-cert and --tls-key, or turn TLS off in the camera.",
    ),
    (
        Cause::NotSent,
        "expected file \"the camera did not send it\"",
        "The camera offered no such file: enable that camera (front/rear) and that file type in its settings, take a photo or trigger an event so it has one to send, and check --mode (auto takes every file).",
    ),
    (
        Cause::NothingStored,
        "verify --dir: \"no stored file in DIR\" (exit status 2)",
        "The folder holds no stored file with its sidecar (.json): give the server's output folder (--output-dir) or one camera's folder inside it.",
    ),
    (
        Cause::NoMetadata,
        "metadata FAIL \"none\"",
        "Run the server with --metadata (verify always asks for it). Cameras answer it from firmware 03.27.04; update older firmware.",
    ),
    (
        Cause::ClockAhead,
        "metadata FAIL \"the camera's clock is ... ahead\"",
        "The camera's capture time is later than the moment the file arrived: its clock is ahead. Set its time (GPS fix, or the tracker's time settings). A capture time in the past is not an error: cameras keep files while out of coverage.",
    ),
    (
        Cause::ClockNotSet,
        "metadata FAIL \"the camera's clock is not set\"",
        "The capture time is before 2016: the camera's clock was reset. Give it a GPS fix (open sky) or set its time, then record again.",
    ),
    (
        Cause::NoPosition,
        "metadata FAIL \"position 0/0\", \"no position\" or \"out of range\"",
        "The camera had no GPS fix when it recorded: check the GPS antenna and its cable, park under open sky for a few minutes, then record again.",
    ),
    (
        Cause::PhotoBroken,
        "photo FAIL (not a JPEG, cut short, does not decode)",
        "Every byte arrived as the camera sent it (each packet is CRC-checked), so the camera stored a damaged photo: check or replace its SD card, then take a new photo.",
    ),
    (
        Cause::VideoBroken,
        "video FAIL (not HEVC, no frame, camera container with no video, missing frames)",
        "The bytes arrived as sent (CRC-checked): the camera recorded a damaged video. Check or replace its SD card and record again. Install ffmpeg (or put ffmpeg.exe beside the server) for the checks that decode.",
    ),
    (
        Cause::LengthDiffers,
        "video FAIL \"length ... the metadata says ... s\"",
        "The video is shorter or longer than the camera's metadata says: a recording cut by a power loss or a full SD card, or (with simulate) a --duration that is not the clip's length.",
    ),
    (
        Cause::FrameRateDiffers,
        "video FAIL \"... fps, the metadata ... fps\"",
        "The video's frame rate differs from the metadata's: check the camera's video settings; with simulate, give --frame-rate the clip's rate.",
    ),
    (
        Cause::NoSound,
        "video FAIL \"no audio track\" or \"the sound and the video differ\"",
        "The camera recorded without sound: turn audio recording on in its settings and check the microphone.",
    ),
    (
        Cause::CrcRetries,
        "CRC \"N retries\", more than 1 in 10 packets",
        "Packets were damaged on the way and sent again: the file is whole, but the link is poor. Check the tracker's mobile signal and antenna; many retries make downloads slow.",
    ),
];

impl Cause {
    pub fn hint(self) -> &'static str {
        CAUSES
            .iter()
            .find(|(c, _, _)| *c == self)
            .map_or("", |(_, _, h)| h)
    }
}

/// The table of causes, as `verify --explain` prints it.
pub fn explain() -> String {
    let mut out = String::from("What a FAIL means, and what to do:\n");
    for (_, seen, todo) in CAUSES {
        let _ = write!(out, "\n* {seen}\n");
        wrap(&mut out, todo, "  ");
    }
    out
}

/// "what to do: ..." under a FAIL line, wrapped to fit 100 columns.
pub fn hint_lines(out: &mut String, cause: Cause) {
    let text = format!("what to do: {}", cause.hint());
    wrap(out, &text, "    ");
}

pub(super) fn wrap(out: &mut String, text: &str, indent: &str) {
    const WIDTH: usize = 100;
    let mut line = String::new();
    for word in text.split_whitespace() {
        if !line.is_empty() && indent.len() + line.len() + 1 + word.len() > WIDTH {
            let _ = writeln!(out, "{indent}{line}");
            line.clear();
        }
        if !line.is_empty() {
            line.push(' ');
        }
        line.push_str(word);
    }
    if !line.is_empty() {
        let _ = writeln!(out, "{indent}{line}");
    }
}
