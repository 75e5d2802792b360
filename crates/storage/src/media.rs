//! What is inside a stored file: sniffed by its first bytes (never its name),
//! and for the camera's container ("PTMF") its video and sound, read chunk
//! header by chunk header (video payloads are skipped, not read).

use std::io::{self, BufReader, Read, Seek, SeekFrom, Write};
use std::path::Path;

use dashcam_protocol::codec::container::{
    self, parse_header, ChunkKind, ContainerError, Sniffed, Summary, HEADER_LEN,
};
use serde::{Deserialize, Serialize};

use crate::fsx;

/// The facts recorded in the sidecar (`media_info`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct MediaInfo {
    /// `ptmf` (the camera's container), `annexb` (a raw H.264/H.265 stream),
    /// `mp4`, `jpeg` or `unknown`.
    pub container: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub width: Option<u16>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub height: Option<u16>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub frame_rate: Option<u16>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub video_frames: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key_frames: Option<u64>,
    /// From the container's own timestamps.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub duration_s: Option<f64>,
    /// `G.711 A-law, 8 kHz, mono` when the file has sound.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub audio_codec: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub audio_duration_s: Option<f64>,
    /// What is wrong inside: a missing frame (by sequence number), time going
    /// back, a cut or damaged chunk.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub problems: Vec<String>,
}

pub const ALAW: &str = "G.711 A-law, 8 kHz, mono";

fn secs(us: u64) -> f64 {
    (us as f64 / 1000.0).round() / 1000.0
}

/// Walks the container's chunks from the start of `r`, handing each header
/// and (for audio, and for video when `video` is set) its payload to `each`,
/// which says whether to go on. Returns the summary and the problem that
/// stopped the walk, if any.
pub fn walk<R: Read + Seek>(
    mut r: R,
    video: bool,
    mut each: impl FnMut(&container::ChunkHeader, &[u8]) -> io::Result<bool>,
) -> io::Result<(Summary, Option<ContainerError>)> {
    let file_len = r.seek(SeekFrom::End(0))?;
    r.seek(SeekFrom::Start(0))?;
    let mut s = Summary::default();
    let mut at = 0u64;
    let mut head = [0u8; HEADER_LEN];
    let mut payload = Vec::new();
    loop {
        let n = read_full(&mut r, &mut head)?;
        if n == 0 {
            return Ok((s, None));
        }
        let h = match parse_header(&head[..n], at) {
            Ok(h) => h,
            Err(e) => return Ok((s, Some(e))),
        };
        let end = at + h.total_len() as u64;
        if end > file_len {
            let e = ContainerError::Truncated {
                at,
                need: h.total_len() as u64,
                have: file_len - at,
            };
            return Ok((s, Some(e)));
        }
        let data = if video || h.kind == ChunkKind::Audio {
            payload.resize(h.length as usize, 0);
            r.read_exact(&mut payload)?;
            &payload[..h.data_len()]
        } else {
            r.seek(SeekFrom::Start(end))?;
            &[][..]
        };
        s.add(&h, data);
        if !each(&h, data)? {
            return Ok((s, None));
        }
        at = end;
    }
}

fn read_full(r: &mut impl Read, buf: &mut [u8]) -> io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match r.read(&mut buf[n..])? {
            0 => break,
            k => n += k,
        }
    }
    Ok(n)
}

/// What a stored file is, from its first bytes and, for the camera's
/// container, its chunk headers.
pub fn inspect(path: &Path) -> io::Result<MediaInfo> {
    let mut f = BufReader::with_capacity(16 * 1024, fsx::open_read(path)?);
    let mut first = [0u8; 12];
    let n = read_full(&mut f, &mut first)?;
    let kind = container::sniff(&first[..n]);
    let mut info = MediaInfo {
        container: kind.name().to_string(),
        ..MediaInfo::default()
    };
    if kind != Sniffed::Ptmf {
        return Ok(info);
    }
    let (s, stop) = walk(f, false, |_, _| Ok(true))?;
    fill(&mut info, &s, stop);
    Ok(info)
}

/// The facts of a container's summary, in the sidecar's words.
pub fn fill(info: &mut MediaInfo, s: &Summary, stop: Option<ContainerError>) {
    if s.video_frames > 0 {
        info.width = Some(s.width);
        info.height = Some(s.height);
        info.frame_rate = s.frame_rate;
        info.video_frames = Some(s.video_frames);
        info.key_frames = Some(s.key_frames);
        info.duration_s = s.video_duration_us().map(secs);
    }
    if s.audio_chunks > 0 {
        info.audio_codec = Some(ALAW.into());
        info.audio_duration_s = s.audio_duration_us().map(secs);
    }
    for &(video, first, n) in &s.gaps {
        info.problems.push(format!(
            "{} chunk{} {first}{} missing (sequence numbers)",
            if video { "video" } else { "audio" },
            if n == 1 { "" } else { "s" },
            if n == 1 {
                String::new()
            } else {
                format!("..{}", first.wrapping_add(n - 1))
            }
        ));
    }
    if s.backwards > 0 {
        info.problems
            .push(format!("{} timestamp(s) go back in time", s.backwards));
    }
    if s.rate_changes > 0 {
        info.problems
            .push(format!("the frame rate changes {} time(s)", s.rate_changes));
    }
    if s.odd_audio > 0 {
        info.problems.push(format!(
            "{} audio chunk(s) without the voice-frame header",
            s.odd_audio
        ));
    }
    if s.video_frames == 0 {
        info.problems.push("no video frame".into());
    }
    if let Some(e) = stop {
        info.problems.push(e.to_string());
    }
}

/// Splits a container into a clean H.265 stream (`video`) and raw A-law
/// (`audio`): what a converter reads. Returns the summary.
pub fn demux(
    path: &Path,
    video: &mut impl Write,
    audio: &mut impl Write,
) -> io::Result<(Summary, Option<ContainerError>)> {
    let f = BufReader::with_capacity(64 * 1024, fsx::open_read(path)?);
    walk(f, true, |h, data| {
        if h.kind.is_video() {
            video.write_all(data)?;
        } else {
            audio.write_all(container::audio_samples(data))?;
        }
        Ok(true)
    })
}

/// The first bytes of a file, sniffed.
pub fn sniff_file(path: &Path) -> io::Result<Sniffed> {
    let mut first = [0u8; 12];
    let n = read_full(&mut fsx::open_read(path)?, &mut first)?;
    Ok(container::sniff(&first[..n]))
}

/// The first key frame of a container (VPS, SPS, PPS and the picture): what a
/// thumbnail is made from. None when there is none, or the file is not one.
pub fn first_key_frame(path: &Path) -> io::Result<Option<Vec<u8>>> {
    if sniff_file(path)? != Sniffed::Ptmf {
        return Ok(None);
    }
    let f = BufReader::with_capacity(64 * 1024, fsx::open_read(path)?);
    let mut key = None;
    walk(f, true, |h, data| {
        if h.kind == ChunkKind::Key {
            key = Some(data.to_vec());
        }
        Ok(key.is_none())
    })?;
    Ok(key)
}
