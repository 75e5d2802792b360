//! Finding and asking ffmpeg: conversion, thumbnails and `verify` use only
//! `ffmpeg` (no `ffprobe`), since a Windows box often has a bare
//! `ffmpeg.exe` and nothing else. An `ffmpeg` beside the server's own binary
//! wins over the one on PATH, so a technician can drop `ffmpeg.exe` into the
//! unzipped folder.

use std::path::PathBuf;
use std::process::{Command, Stdio};

/// What to do when ffmpeg is not found, said wherever it is needed.
pub const HOW_TO_GET: &str = if cfg!(windows) {
    "ffmpeg not found: install it (winget install Gyan.FFmpeg, then open a new window) \
     or put ffmpeg.exe beside dashcam-server.exe"
} else {
    "ffmpeg not found: install it (apt-get install ffmpeg, dnf install ffmpeg, brew install ffmpeg) \
     or put ffmpeg beside dashcam-server"
};

/// `ffmpeg` beside the running binary, if there is one.
fn beside_exe() -> Option<PathBuf> {
    let name = if cfg!(windows) {
        "ffmpeg.exe"
    } else {
        "ffmpeg"
    };
    let p = std::env::current_exe().ok()?.parent()?.join(name);
    p.is_file().then_some(p)
}

/// The program to run: the one beside the binary, else `ffmpeg` from PATH.
pub fn program() -> PathBuf {
    beside_exe().unwrap_or_else(|| PathBuf::from("ffmpeg"))
}

/// A command for ffmpeg (the one [`program`] finds).
pub fn command() -> Command {
    Command::new(program())
}

/// True when `ffmpeg -version` runs.
pub fn available() -> bool {
    command()
        .arg("-version")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// What ffmpeg says of a file's first video stream, read by decoding it.
#[derive(Debug, Clone, PartialEq)]
pub struct VideoProbe {
    /// ffmpeg's name of the codec ("hevc", "h264").
    pub codec: String,
    /// Frames decoded.
    pub frames: u64,
    /// The stream's rate (ffmpeg's "tbr", else "fps"); for a raw stream
    /// without timing this is ffmpeg's default of 25.
    pub fps: Option<f64>,
}

/// Decodes the first video stream of `path` to count its frames (`-f null`),
/// reading the codec and rate from ffmpeg's stream line and the count from
/// `-progress`: the same facts `ffprobe -count_frames` gives.
/// Why a video could not be probed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ProbeError {
    #[error("cannot run ffmpeg ({source}); {HOW_TO_GET}")]
    CannotRun {
        #[source]
        source: std::io::Error,
    },
    /// ffmpeg found no video stream: its last words.
    #[error("no video stream ({0})")]
    NoVideo(String),
}

pub fn probe_video(path: &std::path::Path) -> Result<VideoProbe, ProbeError> {
    let o = command()
        .args(["-hide_banner", "-nostdin", "-nostats", "-i"])
        .arg(path)
        .args(["-map", "0:v:0", "-f", "null", "-progress", "pipe:1", "-"])
        .stdin(Stdio::null())
        .output()
        .map_err(|source| ProbeError::CannotRun { source })?;
    let stderr = String::from_utf8_lossy(&o.stderr);
    let Some((codec, fps)) = stderr.lines().find_map(parse_stream_line) else {
        let why = stderr
            .lines()
            .rev()
            .find(|l| !l.trim().is_empty())
            .unwrap_or("not a video");
        return Err(ProbeError::NoVideo(why.trim().to_string()));
    };
    let frames = String::from_utf8_lossy(&o.stdout)
        .lines()
        .rev()
        .filter_map(|l| l.strip_prefix("frame="))
        .find_map(|n| n.trim().parse().ok())
        .unwrap_or(0);
    Ok(VideoProbe { codec, frames, fps })
}

/// A raw H.265 stream's own rate, from its headers' timing (the SPS's VUI,
/// else the VPS): `(time_scale, num_units_in_tick)`, read by ffmpeg's
/// `trace_headers` filter on the first frame. None when the stream carries
/// no timing (ffmpeg would then assume 25) or ffmpeg cannot read it.
pub fn stream_timing(path: &std::path::Path) -> Option<(u32, u32)> {
    let o = command()
        .args(["-hide_banner", "-nostdin", "-nostats", "-v", "debug", "-i"])
        .arg(path)
        .args([
            "-map",
            "0:v:0",
            "-c",
            "copy",
            "-bsf:v",
            "trace_headers",
            "-frames:v",
            "1",
            "-f",
            "null",
            "-",
        ])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .output()
        .ok()?;
    parse_timing(&String::from_utf8_lossy(&o.stderr))
}

/// The first `*_num_units_in_tick` and `*_time_scale` of a trace, VUI first.
fn parse_timing(trace: &str) -> Option<(u32, u32)> {
    let field = |name: &str| {
        trace.lines().find_map(|l| {
            let (_, rest) = l.split_once(name)?;
            rest.rsplit_once('=')?.1.trim().parse::<u32>().ok()
        })
    };
    let vui = (field("vui_time_scale"), field("vui_num_units_in_tick"));
    let vps = (field("vps_time_scale"), field("vps_num_units_in_tick"));
    match (vui, vps) {
        ((Some(t), Some(n)), _) | (_, (Some(t), Some(n))) if t > 0 && n > 0 => Some((t, n)),
        _ => None,
    }
}

/// `  Stream #0:0: Video: hevc (Main), yuv420p(tv), 320x240, 25 fps, 25 tbr, 1200k tbn`
/// -> ("hevc", Some(25.0)). The rate is the "tbr" (ffprobe's `r_frame_rate`),
/// else the "fps".
fn parse_stream_line(line: &str) -> Option<(String, Option<f64>)> {
    let l = line.trim_start();
    if !l.starts_with("Stream #") {
        return None;
    }
    let (_, rest) = l.split_once("Video: ")?;
    let codec = rest
        .split([' ', ','])
        .next()
        .filter(|c| !c.is_empty())?
        .to_string();
    let rate = |unit: &str| {
        rest.split(", ").find_map(|part| {
            let v = part.trim().strip_suffix(unit)?.trim();
            parse_rate(v)
        })
    };
    Some((codec, rate(" tbr").or_else(|| rate(" fps"))))
}

/// "25", "29.97", "30k" (ffmpeg writes 30000 as 30k).
fn parse_rate(v: &str) -> Option<f64> {
    let (num, mult) = match v.strip_suffix('k') {
        Some(n) => (n, 1000.0),
        None => (v, 1.0),
    };
    num.parse::<f64>()
        .ok()
        .map(|n| n * mult)
        .filter(|r| *r > 0.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_streams_timing_is_read_from_its_trace() {
        let trace = "[trace_headers @ 0x55] 165         vps_timing_info_present_flag   0 = 0\n\
            [trace_headers @ 0x55] 222         vui_timing_info_present_flag   1 = 1\n\
            [trace_headers @ 0x55] 223         vui_num_units_in_tick        00000000000000000000000000000001 = 1\n\
            [trace_headers @ 0x55] 255         vui_time_scale               00000000000000000000000000011110 = 30\n";
        assert_eq!(parse_timing(trace), Some((30, 1)));
        assert_eq!(
            parse_timing("[trace_headers] 222 vui_timing_info_present_flag 0 = 0\n"),
            None
        );
    }

    #[test]
    fn reads_ffmpegs_stream_lines() {
        assert_eq!(
            parse_stream_line(
                "  Stream #0:0: Video: hevc (Main), yuv420p(tv), 320x240, 25 fps, 25 tbr, 1200k tbn"
            ),
            Some(("hevc".into(), Some(25.0)))
        );
        assert_eq!(
            parse_stream_line(
                "  Stream #0:0[0x1](und): Video: h264 (High) (avc1 / 0x31637661), yuv420p(progressive), 640x360, 245 kb/s, 29.97 fps, 29.97 tbr, 30k tbn (default)"
            ),
            Some(("h264".into(), Some(29.97)))
        );
        assert_eq!(
            parse_stream_line("  Stream #0:1: Audio: pcm_alaw, 8000 Hz, mono, s16, 64 kb/s"),
            None
        );
        assert_eq!(parse_stream_line("Input #0, hevc, from 'x.h265':"), None);
        assert_eq!(parse_rate("30k"), Some(30000.0));
        assert_eq!(parse_rate("0"), None);
    }
}
