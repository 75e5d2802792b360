//! The camera's own video container ("PTMF", PROTOCOL-NOTES third edition,
//! "What is inside a DualCam video"): chunks of a 36-byte header and a payload,
//! back to back, H.265 frames and G.711 A-law audio interleaved. Bytes in,
//! chunks out: no I/O. Every length and count is bounded, so hostile input
//! is a clear error, never a panic or an unbounded allocation.

use std::fmt;

/// `PTMF`: the first bytes of every chunk.
pub const MAGIC: [u8; 4] = *b"PTMF";
/// The size of a chunk header.
pub const HEADER_LEN: usize = 36;
/// No real chunk is near this (a 720p key frame is tens of KiB): a length
/// over it is damage, not a frame.
pub const MAX_PAYLOAD: usize = 4 << 20;
/// HiSilicon's voice-frame header before each audio payload: frame flag 1,
/// counter 0, 0xA0 = 160 16-bit words (320 bytes) follow.
pub const AUDIO_HEADER: [u8; 4] = [0x00, 0x01, 0xA0, 0x00];
/// G.711 A-law at 8 kHz, mono: 8 bytes a millisecond.
pub const ALAW_BYTES_PER_MS: u64 = 8;

/// What a chunk holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChunkKind {
    /// `I`: a key frame (the first carries VPS, SPS and PPS).
    Key,
    /// `P`: another video frame.
    Frame,
    /// `A`: audio.
    Audio,
}

impl ChunkKind {
    pub fn from_byte(b: u8) -> Option<ChunkKind> {
        match b {
            b'I' => Some(ChunkKind::Key),
            b'P' => Some(ChunkKind::Frame),
            b'A' => Some(ChunkKind::Audio),
            _ => None,
        }
    }

    pub fn byte(self) -> u8 {
        match self {
            ChunkKind::Key => b'I',
            ChunkKind::Frame => b'P',
            ChunkKind::Audio => b'A',
        }
    }

    pub fn is_video(self) -> bool {
        !matches!(self, ChunkKind::Audio)
    }
}

/// A chunk's header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ChunkHeader {
    pub kind: ChunkKind,
    /// Zero bytes of padding at the end of the payload (0..=3).
    pub padding: u8,
    pub frame_rate: u16,
    pub width: u16,
    pub height: u16,
    /// Counted separately for video and audio.
    pub sequence: u32,
    /// The payload length on disk, padding included.
    pub length: u32,
    /// A running clock in microseconds: differences matter.
    pub timestamp_us: u32,
}

impl ChunkHeader {
    /// Bytes of the chunk on disk: header and payload.
    pub fn total_len(&self) -> usize {
        HEADER_LEN + self.length as usize
    }

    /// The payload without its padding.
    pub fn data_len(&self) -> usize {
        (self.length as usize).saturating_sub(self.padding as usize)
    }

    pub fn encode(&self) -> [u8; HEADER_LEN] {
        let mut h = [0u8; HEADER_LEN];
        h[0..4].copy_from_slice(&MAGIC);
        h[4] = self.padding;
        h[5] = self.kind.byte();
        h[6..8].copy_from_slice(&self.frame_rate.to_be_bytes());
        h[8..10].copy_from_slice(&self.width.to_le_bytes());
        h[10..12].copy_from_slice(&self.height.to_le_bytes());
        h[12..16].copy_from_slice(&self.sequence.to_le_bytes());
        h[24..28].copy_from_slice(&self.length.to_le_bytes());
        h[28..32].copy_from_slice(&self.timestamp_us.to_le_bytes());
        h
    }
}

/// Why bytes are not a chunk of the container.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum ContainerError {
    /// Not `PTMF` where a chunk must start.
    BadMagic {
        at: u64,
    },
    BadKind {
        at: u64,
        kind: u8,
    },
    BadPadding {
        at: u64,
        padding: u8,
    },
    /// A payload length over [`MAX_PAYLOAD`], or shorter than its padding.
    BadLength {
        at: u64,
        length: u32,
    },
    /// The file ends inside a chunk.
    Truncated {
        at: u64,
        need: u64,
        have: u64,
    },
}

impl fmt::Display for ContainerError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ContainerError::BadMagic { at } => write!(f, "no PTMF chunk header at byte {at}"),
            ContainerError::BadKind { at, kind } => {
                write!(f, "unknown chunk kind 0x{kind:02X} at byte {at}")
            }
            ContainerError::BadPadding { at, padding } => {
                write!(f, "padding {padding} (over 3) at byte {at}")
            }
            ContainerError::BadLength { at, length } => {
                write!(f, "impossible payload length {length} at byte {at}")
            }
            ContainerError::Truncated { at, need, have } => write!(
                f,
                "the file ends inside the chunk at byte {at}: {need} bytes needed, {have} there"
            ),
        }
    }
}

impl std::error::Error for ContainerError {}

/// Reads the chunk header at the front of `b` (found at file offset `at`).
pub fn parse_header(b: &[u8], at: u64) -> Result<ChunkHeader, ContainerError> {
    let Some(h) = b.first_chunk::<HEADER_LEN>() else {
        return Err(ContainerError::Truncated {
            at,
            need: HEADER_LEN as u64,
            have: b.len() as u64,
        });
    };
    if h[0..4] != MAGIC {
        return Err(ContainerError::BadMagic { at });
    }
    let kind = ChunkKind::from_byte(h[5]).ok_or(ContainerError::BadKind { at, kind: h[5] })?;
    let padding = h[4];
    if padding > 3 {
        return Err(ContainerError::BadPadding { at, padding });
    }
    let le32 = |i: usize| u32::from_le_bytes([h[i], h[i + 1], h[i + 2], h[i + 3]]);
    let length = le32(24);
    if length as usize > MAX_PAYLOAD || (length as usize) < padding as usize {
        return Err(ContainerError::BadLength { at, length });
    }
    Ok(ChunkHeader {
        kind,
        padding,
        frame_rate: u16::from_be_bytes([h[6], h[7]]),
        width: u16::from_le_bytes([h[8], h[9]]),
        height: u16::from_le_bytes([h[10], h[11]]),
        sequence: le32(12),
        length,
        timestamp_us: le32(28),
    })
}

/// A chunk found in a buffer: its header, the payload less padding, and the
/// bytes it took.
pub type Chunk<'a> = (ChunkHeader, &'a [u8], usize);

/// A whole chunk at the front of `b`. `Ok(None)` when `b` ends before the chunk does.
pub fn parse_chunk(b: &[u8], at: u64) -> Result<Option<Chunk<'_>>, ContainerError> {
    if b.len() < HEADER_LEN {
        return if b.len() >= 4 && b[..4] != MAGIC {
            Err(ContainerError::BadMagic { at })
        } else {
            Ok(None)
        };
    }
    let h = parse_header(b, at)?;
    let total = h.total_len();
    if b.len() < total {
        return Ok(None);
    }
    Ok(Some((h, &b[HEADER_LEN..HEADER_LEN + h.data_len()], total)))
}

/// Is this the start of the camera's container?
pub fn is_container(first: &[u8]) -> bool {
    first.starts_with(&MAGIC)
}

/// What a stored file's first bytes say it is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sniffed {
    /// The camera's container (`PTMF`).
    Ptmf,
    /// A raw H.264/H.265 stream (an Annex-B start code).
    AnnexB,
    /// An MP4/MOV (`ftyp` box).
    Mp4,
    Jpeg,
    Unknown,
}

impl Sniffed {
    pub fn name(self) -> &'static str {
        match self {
            Sniffed::Ptmf => "ptmf",
            Sniffed::AnnexB => "annexb",
            Sniffed::Mp4 => "mp4",
            Sniffed::Jpeg => "jpeg",
            Sniffed::Unknown => "unknown",
        }
    }
}

/// The pictures of a raw H.265 stream (Annex-B): its VCL NAL units (types
/// 0..=31) that begin a picture (`first_slice_segment_in_pic_flag`, the top
/// bit after the 2-byte NAL header). One pass, no allocation.
pub fn hevc_pictures(stream: &[u8]) -> u64 {
    let mut n = 0;
    let mut i = 0;
    while i + 5 < stream.len() {
        if stream[i] == 0 && stream[i + 1] == 0 && stream[i + 2] == 1 {
            let nal_type = (stream[i + 3] >> 1) & 0x3F;
            if nal_type < 32 && stream[i + 5] & 0x80 != 0 {
                n += 1;
            }
            i += 3;
        } else {
            i += 1;
        }
    }
    n
}

/// Sniffs a file by its first (up to 12) bytes, never by its name.
pub fn sniff(first: &[u8]) -> Sniffed {
    if is_container(first) {
        Sniffed::Ptmf
    } else if first.starts_with(&[0, 0, 0, 1]) || first.starts_with(&[0, 0, 1]) {
        Sniffed::AnnexB
    } else if first.len() >= 8 && &first[4..8] == b"ftyp" {
        Sniffed::Mp4
    } else if first.starts_with(&[0xFF, 0xD8]) {
        Sniffed::Jpeg
    } else {
        Sniffed::Unknown
    }
}

/// What a whole container holds, gathered chunk by chunk (see [`Summary::add`]).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Summary {
    pub frame_rate: Option<u16>,
    pub width: u16,
    pub height: u16,
    pub video_frames: u64,
    pub key_frames: u64,
    pub audio_chunks: u64,
    /// Audio bytes (A-law samples, headers removed).
    pub audio_bytes: u64,
    pub first_video_us: Option<u32>,
    pub last_video_us: Option<u32>,
    pub first_audio_us: Option<u32>,
    pub last_audio_us: Option<u32>,
    /// Sequence numbers that were skipped: (kind is video, the first missing, how many).
    pub gaps: Vec<(bool, u32, u32)>,
    /// Chunks whose timestamp went back (video or audio), counted.
    pub backwards: u64,
    /// The frame rate changed between chunks.
    pub rate_changes: u64,
    /// Audio payloads without the voice-frame header.
    pub odd_audio: u64,
    last_video_seq: Option<u32>,
    last_audio_seq: Option<u32>,
}

/// At most this many gaps are listed (the count goes on).
const MAX_GAPS: usize = 16;

impl Summary {
    pub fn add(&mut self, h: &ChunkHeader, payload: &[u8]) {
        let video = h.kind.is_video();
        let (last_seq, first, last) = if video {
            (
                &mut self.last_video_seq,
                &mut self.first_video_us,
                &mut self.last_video_us,
            )
        } else {
            (
                &mut self.last_audio_seq,
                &mut self.first_audio_us,
                &mut self.last_audio_us,
            )
        };
        if let Some(prev) = *last_seq {
            let want = prev.wrapping_add(1);
            if h.sequence != want && self.gaps.len() < MAX_GAPS {
                self.gaps.push((video, want, h.sequence.wrapping_sub(want)));
            }
        }
        *last_seq = Some(h.sequence);
        if let Some(l) = *last {
            if h.timestamp_us < l {
                self.backwards += 1;
            }
        }
        first.get_or_insert(h.timestamp_us);
        *last = Some(h.timestamp_us);
        if video {
            self.video_frames += 1;
            if h.kind == ChunkKind::Key {
                self.key_frames += 1;
            }
            match self.frame_rate {
                Some(r) if r != h.frame_rate => self.rate_changes += 1,
                None => self.frame_rate = Some(h.frame_rate),
                _ => {}
            }
            if self.width == 0 {
                (self.width, self.height) = (h.width, h.height);
            }
        } else {
            self.audio_chunks += 1;
            match payload.strip_prefix(&AUDIO_HEADER) {
                Some(samples) => self.audio_bytes += samples.len() as u64,
                None => {
                    self.odd_audio += 1;
                    self.audio_bytes += payload.len() as u64;
                }
            }
        }
    }

    /// The video's length from its own timestamps: first to last, plus one
    /// frame at the container's rate.
    pub fn video_duration_us(&self) -> Option<u64> {
        let (a, b) = (self.first_video_us?, self.last_video_us?);
        let frame = 1_000_000 / u64::from(self.frame_rate.filter(|r| *r > 0)?);
        Some(u64::from(b.wrapping_sub(a)) + frame)
    }

    /// The audio's length from its samples (8 kHz A-law: 8 bytes a millisecond).
    pub fn audio_duration_us(&self) -> Option<u64> {
        (self.audio_chunks > 0).then(|| self.audio_bytes * 1000 / ALAW_BYTES_PER_MS)
    }
}

/// The video's payloads joined are a clean H.265 stream; the audio's less
/// their voice-frame header are raw A-law: where each chunk's bytes go.
pub fn audio_samples(payload: &[u8]) -> &[u8] {
    payload.strip_prefix(&AUDIO_HEADER).unwrap_or(payload)
}

#[cfg(test)]
mod tests;
