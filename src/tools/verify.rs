//! `dashcam-server verify`: the check a technician runs in the van. Each
//! stored file is checked for what a person would otherwise open by hand: a
//! photo decodes as JPEG; a video decodes as HEVC with the frame rate and
//! length its metadata gives; the metadata is sane (time near the server's
//! clock, a real position); the CRC retries are reported.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use chrono::{DateTime, Utc};
use dashcam_protocol::time::{judge_capture, span, Capture};

use crate::storage::Sidecar;
use dashcam_protocol::Media;

mod causes;
pub use causes::*;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Pass,
    Fail,
    Info,
}

#[derive(Debug, Clone)]
pub struct Check {
    pub what: &'static str,
    pub outcome: Outcome,
    pub detail: String,
    /// Why it did not pass, when that is known: its hint is printed under it.
    pub cause: Option<Cause>,
}

fn pass(what: &'static str, detail: String) -> Check {
    Check {
        what,
        outcome: Outcome::Pass,
        detail,
        cause: None,
    }
}

fn fail(what: &'static str, cause: Cause, detail: String) -> Check {
    Check {
        what,
        outcome: Outcome::Fail,
        detail,
        cause: Some(cause),
    }
}

/// The size a JPEG's frame header gives, after walking its segments from SOI
/// to the start of the scan and finding EOI at the end.
fn jpeg_size(b: &[u8]) -> Result<(u16, u16), String> {
    if !b.starts_with(&[0xFF, 0xD8]) {
        let what = if b.starts_with(b"\x89PNG") {
            "a PNG"
        } else if b.is_empty() {
            "an empty file"
        } else {
            "unknown format"
        };
        return Err(format!("not a JPEG ({what})"));
    }
    let mut i = 2;
    let mut size = None;
    loop {
        let (Some(&ff), Some(&m)) = (b.get(i), b.get(i + 1)) else {
            return Err("JPEG cut short before its image data".into());
        };
        if ff != 0xFF {
            return Err(format!("JPEG damaged at byte {i}: no marker"));
        }
        if m == 0xFF {
            i += 1;
            continue;
        }
        let len = match (b.get(i + 2), b.get(i + 3)) {
            (Some(&h), Some(&l)) => u16::from_be_bytes([h, l]) as usize,
            _ => return Err("JPEG cut short in a segment header".into()),
        };
        if len < 2 || i + 2 + len > b.len() {
            return Err(format!("JPEG segment 0x{m:02X} runs past the end"));
        }
        if matches!(m, 0xC0..=0xC3 | 0xC5..=0xC7 | 0xC9..=0xCB | 0xCD..=0xCF) && len >= 7 {
            let h = u16::from_be_bytes([b[i + 5], b[i + 6]]);
            let w = u16::from_be_bytes([b[i + 7], b[i + 8]]);
            size = Some((w, h));
        }
        if m == 0xDA {
            break;
        }
        i += 2 + len;
    }
    let size = size.ok_or("JPEG without a frame header")?;
    if !b.ends_with(&[0xFF, 0xD9]) {
        return Err("JPEG cut short: no end-of-image marker".into());
    }
    if size.0 == 0 || size.1 == 0 {
        return Err("JPEG of size 0".into());
    }
    Ok(size)
}

fn check_photo(path: &Path) -> Check {
    let bytes = match std::fs::read(path) {
        Ok(b) => b,
        Err(e) => return fail("photo", Cause::PhotoBroken, format!("cannot read: {e}")),
    };
    let (w, h) = match jpeg_size(&bytes) {
        Ok(s) => s,
        Err(e) => return fail("photo", Cause::PhotoBroken, e),
    };
    // A full decode where ffmpeg is there; the structure check otherwise.
    match crate::tools::ffmpeg::command()
        .args(["-v", "error", "-nostdin", "-i"])
        .arg(path)
        .args(["-f", "null", "-"])
        .output()
    {
        Ok(o) if o.status.success() && o.stderr.is_empty() => {
            pass("photo", format!("JPEG {w}x{h}, decodes"))
        }
        Ok(o) => fail(
            "photo",
            Cause::PhotoBroken,
            format!(
                "JPEG {w}x{h} that does not decode: {}",
                String::from_utf8_lossy(&o.stderr)
                    .lines()
                    .next()
                    .unwrap_or("")
            ),
        ),
        Err(_) => pass(
            "photo",
            format!("JPEG {w}x{h} (structure checked; install ffmpeg for a full decode)"),
        ),
    }
}

/// The camera's container, read by the server's own demultiplexer: size,
/// frame rate (against the metadata's when it has one), frames and length
/// from the container's timestamps (against the metadata's, within 1 s),
/// timestamps that only go forward, no missing frame, and the sound.
fn check_container(path: &Path, sc: &Sidecar) -> Check {
    // One piece (over 80 lines): one pass over the container's chunks; every
    // check reads the same counters, and its lines are the report's order.
    let info = match crate::storage::media::inspect(path) {
        Ok(i) => i,
        Err(e) => return fail("video", Cause::VideoBroken, format!("cannot read: {e}")),
    };
    let (Some(w), Some(h), Some(fps), Some(frames), Some(secs)) = (
        info.width,
        info.height,
        info.frame_rate,
        info.video_frames,
        info.duration_s,
    ) else {
        return fail(
            "video",
            Cause::VideoBroken,
            format!(
                "camera container with no video: {}",
                info.problems.join("; ")
            ),
        );
    };
    let mut detail = format!("camera container, {w}x{h}, {fps} fps, {frames} frames, {secs:.2} s");
    let mut bad: Vec<(Cause, String)> = Vec::new();
    match (&info.audio_codec, info.audio_duration_s) {
        (Some(_), Some(a)) => {
            let _ = write!(detail, ", sound G.711 A-law {a:.2} s");
            if (a - secs).abs() > 0.5 {
                bad.push((
                    Cause::NoSound,
                    format!(
                        "the sound ({a:.2} s) and the video ({secs:.2} s) differ by more than 0.5 s"
                    ),
                ));
            }
        }
        _ => {
            let _ = write!(detail, ", no sound");
            bad.push((
                Cause::NoSound,
                "no audio track (DualCam videos carry G.711 sound)".into(),
            ));
        }
    }
    let m = sc.metadata.as_ref();
    match (m.and_then(|m| m.frame_rate), m.and_then(|m| m.duration_s)) {
        (None, None) => {
            let _ = write!(
                detail,
                "; no frame rate or length in the metadata to compare"
            );
        }
        (mf, md) => {
            let _ = write!(
                detail,
                " (metadata: {}{})",
                md.map_or("no length".into(), |d| format!("{d} s")),
                mf.map_or(String::new(), |f| format!(", {f} fps"))
            );
            if let Some(mf) = mf.filter(|&f| u16::from(f) != fps) {
                bad.push((
                    Cause::FrameRateDiffers,
                    format!("the container says {fps} fps, the metadata {mf} fps"),
                ));
            }
            if let Some(md) = md.filter(|&d| (secs - d as f64).abs() > 1.0) {
                bad.push((
                    Cause::LengthDiffers,
                    format!("length {secs:.2} s, the metadata says {md} s"),
                ));
            }
        }
    }
    bad.extend(
        info.problems
            .iter()
            .map(|p| (Cause::VideoBroken, p.clone())),
    );
    match bad.first() {
        None => pass("video", detail),
        Some(&(cause, _)) => {
            for (_, b) in &bad {
                let _ = write!(detail, "; {b}");
            }
            fail("video", cause, detail)
        }
    }
}

fn check_video(path: &Path, sc: &Sidecar) -> Check {
    if crate::storage::media::sniff_file(path)
        .is_ok_and(|k| k == dashcam_protocol::codec::container::Sniffed::Ptmf)
    {
        return check_container(path, sc);
    }
    let p = match crate::tools::ffmpeg::probe_video(path) {
        Ok(p) => p,
        Err(e) => return fail("video", Cause::VideoBroken, e.to_string()),
    };
    let want_codec = path.extension().is_some_and(|e| e == "h265");
    if want_codec && p.codec != "hevc" {
        return fail(
            "video",
            Cause::VideoBroken,
            format!("codec {}, not HEVC", p.codec),
        );
    }
    if p.frames == 0 {
        return fail(
            "video",
            Cause::VideoBroken,
            format!("{} with no decodable frame", p.codec),
        );
    }
    let m = sc.metadata.as_ref();
    let meta_fps = m.and_then(|m| m.frame_rate);
    let meta_dur = m.and_then(|m| m.duration_s);
    // A raw stream has no timing of its own: its length is frames / the metadata's rate.
    let fps = meta_fps.map(f64::from).or(p.fps).unwrap_or(25.0);
    let secs = p.frames as f64 / fps;
    let mut detail = format!(
        "{}, {} frames at {fps:.0} fps = {secs:.1} s",
        p.codec, p.frames
    );
    if meta_fps.is_none() && meta_dur.is_none() {
        // Nothing to compare against: the stream decodes, which is all that can be said.
        let _ = write!(detail, "; no frame rate or length in metadata to compare");
        return Check {
            what: "video",
            outcome: Outcome::Info,
            detail,
            cause: None,
        };
    }
    let _ = write!(
        detail,
        " (metadata: {}{})",
        meta_dur.map_or("no length".into(), |d| format!("{d} s")),
        meta_fps.map_or(String::new(), |f| format!(", {f} fps"))
    );
    // A raw H.265 stream carries no timing of its own (ffmpeg reports its
    // default 25): only the metadata's rate counts for it.
    if let (Some(mf), Some(stream_fps), false) = (meta_fps, p.fps, want_codec) {
        if (stream_fps - mf as f64).abs() > 0.01 {
            let _ = write!(detail, "; the stream says {stream_fps:.2} fps");
            return fail("video", Cause::FrameRateDiffers, detail);
        }
    }
    if let Some(md) = meta_dur {
        if (secs - md as f64).abs() > 1.0 {
            let _ = write!(detail, "; length differs by more than 1 s");
            return fail("video", Cause::LengthDiffers, detail);
        }
    }
    pass("video", detail)
}

/// The metadata, its capture time judged against the moment the file
/// reached the server (its sidecar's `completed_at`), not the moment
/// `verify` runs: yesterday's downloads and last year's archive pass alike.
fn check_metadata(sc: &Sidecar, now: DateTime<Utc>) -> Check {
    let Some(m) = &sc.metadata else {
        return fail(
            "metadata",
            Cause::NoMetadata,
            "none (the server needs --metadata; the camera firmware 03.27.04 or later)".into(),
        );
    };
    let Some(t) = m
        .timestamp
        .as_deref()
        .and_then(|t| DateTime::parse_from_rfc3339(t).ok())
        .map(|t| t.with_timezone(&Utc))
    else {
        return fail("metadata", Cause::NoMetadata, "no capture time".into());
    };
    let received = DateTime::parse_from_rfc3339(&sc.completed_at)
        .map(|t| t.with_timezone(&Utc))
        .unwrap_or(now);
    let pos = match (m.latitude, m.longitude) {
        (Some(lat), Some(lon)) => format!("{lat:.6}, {lon:.6}"),
        _ => "no position".into(),
    };
    let shown = t.format("%Y-%m-%d %H:%M:%S UTC");
    let detail = match judge_capture(t, received) {
        Capture::Before(d) if (now - received).num_minutes() < 10 => {
            format!("captured {shown}, {} ago, {pos}", span(d))
        }
        Capture::Before(d) => format!(
            "captured {shown}, {} before it reached the server ({}), {pos}",
            span(d),
            received.format("%Y-%m-%d %H:%M UTC")
        ),
        Capture::Ahead(d) => {
            return fail(
                "metadata",
                Cause::ClockAhead,
                format!(
                    "captured {shown}, after it reached the server ({}): the camera's clock is {} ahead, {pos}",
                    received.format("%Y-%m-%d %H:%M:%S UTC"),
                    span(d)
                ),
            )
        }
        Capture::NotSet => {
            return fail(
                "metadata",
                Cause::ClockNotSet,
                format!("captured {shown}: the camera's clock is not set, {pos}"),
            )
        }
    };
    match (m.latitude, m.longitude) {
        (Some(lat), Some(lon))
            if (-90.0..=90.0).contains(&lat) && (-180.0..=180.0).contains(&lon) =>
        {
            if lat == 0.0 && lon == 0.0 {
                fail(
                    "metadata",
                    Cause::NoPosition,
                    format!("{detail}: position 0/0 (no GPS fix)"),
                )
            } else {
                pass("metadata", detail)
            }
        }
        (Some(_), Some(_)) => fail(
            "metadata",
            Cause::NoPosition,
            format!("{detail}: position out of range"),
        ),
        _ => fail(
            "metadata",
            Cause::NoPosition,
            format!("{detail}: no position"),
        ),
    }
}

/// Every check of one stored file.
pub fn check_file(media: &Path, sc: &Sidecar) -> Vec<Check> {
    let mut v = Vec::new();
    match sc.media {
        Media::Photo => v.push(check_photo(media)),
        Media::Video => v.push(check_video(media, sc)),
        Media::File => v.push(Check {
            what: "content",
            outcome: Outcome::Info,
            detail: "file: not checked".into(),
            cause: None,
        }),
    }
    v.push(check_metadata(sc, Utc::now()));
    v.push(Check {
        what: "CRC",
        outcome: Outcome::Info,
        // A few are normal on a poor link; many say the link is the problem.
        cause: (sc.crc_errors >= 3 && sc.crc_errors * 10 > sc.data_frames)
            .then_some(Cause::CrcRetries),
        detail: format!(
            "{} retr{}; file CRC 0x{:04X}{}",
            sc.crc_errors,
            if sc.crc_errors == 1 { "y" } else { "ies" },
            sc.crc16,
            sc.crc_convention.map_or(String::new(), |c| format!(
                ", camera's CRC convention {}",
                c.name()
            ))
        ),
    });
    v
}

/// A table of every file's checks; the bool is "all passed".
pub fn report(files: &[(PathBuf, Sidecar)], expect: &[String]) -> (String, bool) {
    let mut out = String::new();
    let mut ok = !files.is_empty();
    let _ = writeln!(
        out,
        "{:<44} {:<9} {:<6} DETAIL",
        "IMEI/FILE", "CHECK", "RESULT"
    );
    for (media, sc) in files {
        // The IMEI with the name: a folder of many cameras reads at a glance.
        let name = format!(
            "{}/{}",
            sc.imei,
            media.file_name().unwrap_or_default().to_string_lossy()
        );
        for (i, c) in check_file(media, sc).into_iter().enumerate() {
            let result = match c.outcome {
                Outcome::Pass => "PASS",
                Outcome::Fail => {
                    ok = false;
                    "FAIL"
                }
                Outcome::Info => "INFO",
            };
            let shown = if i == 0 { name.as_str() } else { "" };
            let _ = writeln!(out, "{shown:<44} {:<9} {result:<6} {}", c.what, c.detail);
            if let Some(cause) = c.cause {
                hint_lines(&mut out, cause);
            }
        }
    }
    for e in expect {
        let id = format!("%{}", e.trim_start_matches('%'));
        let got = files.iter().any(|(_, sc)| sc.file == id);
        ok &= got;
        let _ = writeln!(
            out,
            "{:<44} {:<9} {:<6} {}",
            format!("expected {id}"),
            "received",
            if got { "PASS" } else { "FAIL" },
            if got {
                ""
            } else {
                "the camera did not send it"
            }
        );
        if !got {
            hint_lines(&mut out, Cause::NotSent);
        }
    }
    if files.is_empty() {
        let _ = writeln!(out, "no file to check");
        if expect.is_empty() {
            hint_lines(&mut out, Cause::NotSent);
        }
    }
    let _ = writeln!(
        out,
        "OVERALL: {} ({} file(s))",
        if ok { "PASS" } else { "FAIL" },
        files.len()
    );
    (out, ok)
}

/// Every stored file (with its sidecar) under an output folder or a camera folder.
pub fn files_in(dir: &Path) -> Vec<(PathBuf, Sidecar)> {
    crate::storage::catalog::all_files(dir)
        .into_iter()
        .map(|f| (f.media, f.sidecar))
        .collect()
}
