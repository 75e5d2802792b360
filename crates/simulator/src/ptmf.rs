//! Writes the camera's own container ("PTMF") from a raw H.265 stream and,
//! optionally, G.711 A-law audio, the way the notes measured real DualCam
//! videos: one chunk per access unit (`I` for key frames), 320-byte audio
//! chunks of 40 ms behind the voice-frame header, timestamps on a 30 Hz clock
//! behind the frame rate, interleaved by time, payloads padded to 4 bytes.
//! Built on the codec's layout alone, so the server's demultiplexer is checked
//! against it, not against itself.

use std::io::{self, Write};

use dashcam_protocol::codec::container::{ChunkHeader, ChunkKind, AUDIO_HEADER};

/// A-law bytes per audio chunk: 40 ms at 8 kHz.
pub const AUDIO_CHUNK: usize = 320;
/// A-law for silence, to pad the last audio chunk.
const ALAW_SILENCE: u8 = 0xD5;
/// Where the camera's running clock starts (any value: differences matter).
const CLOCK_START_US: u32 = 0x1000_0000;

/// One NAL unit of an Annex-B stream (without its start code).
fn nal_units(stream: &[u8]) -> Vec<&[u8]> {
    let mut starts = Vec::new();
    let mut i = 0;
    while i + 3 <= stream.len() {
        if stream[i] == 0 && stream[i + 1] == 0 && stream[i + 2] == 1 {
            starts.push(i + 3);
            i += 3;
        } else {
            i += 1;
        }
    }
    let mut out = Vec::with_capacity(starts.len());
    for (k, &s) in starts.iter().enumerate() {
        let mut end = starts.get(k + 1).map_or(stream.len(), |&n| n - 3);
        // A 4-byte start code's leading zero belongs to it, not to this NAL.
        while end > s && stream[end - 1] == 0 && k + 1 < starts.len() {
            end -= 1;
        }
        out.push(&stream[s..end]);
    }
    out
}

fn nal_type(nal: &[u8]) -> u8 {
    nal.first().map_or(0xFF, |b| (b >> 1) & 0x3F)
}

/// A picture's NAL units joined with 4-byte start codes, and whether it is a key frame.
pub struct AccessUnit {
    pub bytes: Vec<u8>,
    pub key: bool,
}

/// Groups an H.265 Annex-B stream into access units (one per picture).
pub fn access_units(stream: &[u8]) -> Vec<AccessUnit> {
    let mut out: Vec<AccessUnit> = Vec::new();
    let mut cur = AccessUnit {
        bytes: Vec::new(),
        key: false,
    };
    let mut has_vcl = false;
    for nal in nal_units(stream) {
        let t = nal_type(nal);
        let vcl = t < 32;
        let first_slice = vcl && nal.get(2).is_some_and(|b| b & 0x80 != 0);
        // VPS, SPS, PPS, AUD, prefix SEI, or a picture's first slice: a new picture.
        let starts_picture = first_slice || matches!(t, 32..=35 | 39);
        if starts_picture && has_vcl {
            out.push(std::mem::replace(
                &mut cur,
                AccessUnit {
                    bytes: Vec::new(),
                    key: false,
                },
            ));
            has_vcl = false;
        }
        cur.bytes.extend_from_slice(&[0, 0, 0, 1]);
        cur.bytes.extend_from_slice(nal);
        if vcl {
            has_vcl = true;
            cur.key |= (16..=23).contains(&t);
        }
    }
    if has_vcl {
        out.push(cur);
    }
    out
}

/// Reads Exp-Golomb and fixed bits from an RBSP (emulation bytes removed).
struct Bits<'a> {
    b: &'a [u8],
    pos: usize,
}

impl Bits<'_> {
    fn bit(&mut self) -> Option<u32> {
        let byte = *self.b.get(self.pos / 8)?;
        let v = (byte >> (7 - self.pos % 8)) & 1;
        self.pos += 1;
        Some(v as u32)
    }

    fn bits(&mut self, n: usize) -> Option<u32> {
        (0..n).try_fold(0u32, |acc, _| Some(acc << 1 | self.bit()?))
    }

    fn ue(&mut self) -> Option<u32> {
        let mut zeros = 0;
        while self.bit()? == 0 {
            zeros += 1;
            if zeros > 31 {
                return None;
            }
        }
        Some((1u32 << zeros) - 1 + self.bits(zeros)?)
    }
}

/// Width and height from the stream's SPS (None when it uses sub-layers or is damaged).
pub fn sps_size(stream: &[u8]) -> Option<(u16, u16)> {
    let sps = nal_units(stream).into_iter().find(|n| nal_type(n) == 33)?;
    let mut rbsp = Vec::with_capacity(sps.len());
    let mut zeros = 0;
    for &b in &sps[2..] {
        if zeros >= 2 && b == 3 {
            zeros = 0;
            continue;
        }
        zeros = if b == 0 { zeros + 1 } else { 0 };
        rbsp.push(b);
    }
    let mut r = Bits { b: &rbsp, pos: 0 };
    r.bits(4)?; // sps_video_parameter_set_id
    if r.bits(3)? != 0 {
        return None; // sub-layers: not needed for the cameras' streams
    }
    r.bits(1)?;
    r.bits(96)?; // profile_tier_level with no sub-layers: 88 + 8 bits
    r.ue()?; // sps_seq_parameter_set_id
    if r.ue()? == 3 {
        r.bits(1)?;
    }
    let w = r.ue()?;
    let h = r.ue()?;
    Some((u16::try_from(w).ok()?, u16::try_from(h).ok()?))
}

/// What was written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Muxed {
    pub video_frames: u64,
    pub key_frames: u64,
    pub audio_chunks: u64,
    pub width: u16,
    pub height: u16,
}

fn write_chunk(
    out: &mut impl Write,
    kind: ChunkKind,
    head: &[u8],
    payload: &[u8],
    seq: u32,
    ts: u32,
    (fps, w, h): (u16, u16, u16),
) -> io::Result<()> {
    let len = head.len() + payload.len();
    let pad = (4 - len % 4) % 4;
    let header = ChunkHeader {
        kind,
        padding: pad as u8,
        frame_rate: fps,
        width: w,
        height: h,
        sequence: seq,
        length: u32::try_from(len + pad).map_err(io::Error::other)?,
        timestamp_us: ts,
    };
    out.write_all(&header.encode())?;
    out.write_all(head)?;
    out.write_all(payload)?;
    out.write_all(&[0, 0, 0][..pad])
}

/// Writes `h265` (and `alaw`, 8 kHz mono) as the camera's container at `fps`.
/// The size comes from the stream's SPS, else `fallback_size`.
pub fn mux(
    h265: &[u8],
    alaw: Option<&[u8]>,
    fps: u16,
    fallback_size: (u16, u16),
    out: &mut impl Write,
) -> io::Result<Muxed> {
    if fps == 0 {
        return Err(io::Error::other("frame rate 0"));
    }
    let aus = access_units(h265);
    if aus.is_empty() {
        return Err(io::Error::other("no H.265 picture in the stream"));
    }
    let (w, h) = sps_size(h265).unwrap_or(fallback_size);
    let shape = (fps, w, h);
    // Video on a 30 Hz clock behind the frame rate (steps of 33 or 67 ms at 20 fps).
    let video_ts = |i: u64| CLOCK_START_US + ((i * 30 / u64::from(fps)) * 1_000_000 / 30) as u32;
    let audio: Vec<&[u8]> = alaw.map_or(Vec::new(), |a| a.chunks(AUDIO_CHUNK).collect());
    let audio_ts = |j: u64| CLOCK_START_US + (j * 40_000) as u32;
    let (mut i, mut j) = (0usize, 0usize);
    let mut m = Muxed {
        video_frames: 0,
        key_frames: 0,
        audio_chunks: 0,
        width: w,
        height: h,
    };
    while i < aus.len() || j < audio.len() {
        let take_video =
            j >= audio.len() || (i < aus.len() && video_ts(i as u64) <= audio_ts(j as u64));
        if take_video {
            let au = &aus[i];
            let kind = if au.key {
                ChunkKind::Key
            } else {
                ChunkKind::Frame
            };
            write_chunk(
                out,
                kind,
                &[],
                &au.bytes,
                i as u32,
                video_ts(i as u64),
                shape,
            )?;
            m.video_frames += 1;
            m.key_frames += au.key as u64;
            i += 1;
        } else {
            let mut samples = audio[j].to_vec();
            samples.resize(AUDIO_CHUNK, ALAW_SILENCE);
            write_chunk(
                out,
                ChunkKind::Audio,
                &AUDIO_HEADER,
                &samples,
                j as u32,
                audio_ts(j as u64),
                shape,
            )?;
            m.audio_chunks += 1;
            j += 1;
        }
    }
    Ok(m)
}
