//! Bytes in, init packets and frames out, whatever the segmentation of the
//! stream. The caller reads into [`Deframer::space`] and reports with
//! [`Deframer::filled`]; bytes stay buffered across a read timeout.
//!
//! The buffer starts small and grows only when a frame header within the
//! limits asks for more (path-flow DATA up to 64 KiB) or the caller asks for
//! a bigger read, so thousands of identifier-flow cameras cost a few KiB each.

use super::frame::{self, Frame, Limits, HEADER_LEN};
use super::init::{parse_init, InitPacket, INIT_LEN};
use super::CodecError;

/// Enough for one identifier-flow DATA frame (1030 bytes) and the next header.
const INITIAL: usize = 2 * 1024;

/// What came off the wire.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Input<'a> {
    Init(InitPacket),
    Frame(Frame<'a>),
}

/// How much to read at a time is the caller's policy: it asks
/// [`Deframer::space`] for room for that many bytes.
pub struct Deframer {
    buf: Vec<u8>,
    start: usize,
    end: usize,
    limits: Limits,
}

impl Deframer {
    pub fn new(limits: Limits) -> Deframer {
        Deframer {
            buf: vec![0; INITIAL],
            start: 0,
            end: 0,
            limits,
        }
    }

    pub fn set_limits(&mut self, limits: Limits) {
        self.limits = limits;
    }

    pub fn limits(&self) -> Limits {
        self.limits
    }

    /// Bytes received and not yet handed out.
    pub fn buffered(&self) -> usize {
        self.end - self.start
    }

    /// Free space to read into, at least `want` bytes (compacting, or
    /// growing the buffer only as far as `want` asks).
    pub fn space(&mut self, want: usize) -> &mut [u8] {
        self.reserve(want.max(1));
        &mut self.buf[self.end..]
    }

    /// Gives a burst's memory back when nothing is buffered (a camera that
    /// was fast and is slow again holds a few KiB).
    pub fn shrink(&mut self) {
        if self.start == self.end && self.buf.len() > INITIAL {
            self.buf = vec![0; INITIAL];
            self.start = 0;
            self.end = 0;
        }
    }

    /// `n` bytes were written at the front of [`Deframer::space`].
    pub fn filled(&mut self, n: usize) {
        self.end = (self.end + n).min(self.buf.len());
    }

    /// Copies bytes in (tests and the in-memory driver).
    pub fn feed(&mut self, bytes: &[u8]) {
        self.reserve(bytes.len());
        self.buf[self.end..self.end + bytes.len()].copy_from_slice(bytes);
        self.end += bytes.len();
    }

    fn reserve(&mut self, want: usize) {
        if self.start == self.end {
            self.start = 0;
            self.end = 0;
        }
        if self.buf.len() - self.end >= want {
            return;
        }
        if self.start > 0 {
            self.buf.copy_within(self.start..self.end, 0);
            self.end -= self.start;
            self.start = 0;
        }
        if self.buf.len() - self.end < want {
            let need = self.end + want;
            self.buf.resize(need.next_power_of_two(), 0);
        }
    }

    /// After the server's RESUME for a bad packet the bytes still in flight
    /// may not be aligned to frames: a device that cut a DATA frame short
    /// and sent it again whole (the notes' fourth edition) leaves the reader
    /// inside a frame. Drops everything before the next SYNC header
    /// (`00 03 00 04`), keeping a tail that may be its start; returns how
    /// many bytes were dropped.
    pub fn skip_to_sync(&mut self) -> usize {
        const SYNC_HEADER: [u8; 4] = [0, 3, 0, 4];
        let p = &self.buf[self.start..self.end];
        let skip = match p.windows(4).position(|w| w == SYNC_HEADER) {
            Some(i) => i,
            None => {
                let keep = (1..=p.len().min(3))
                    .rev()
                    .find(|&k| p[p.len() - k..] == SYNC_HEADER[..k])
                    .unwrap_or(0);
                p.len() - keep
            }
        };
        self.start += skip;
        skip
    }

    /// The next input. With `expect_init`, a `00 00` header is an init packet
    /// (DATA still in flight before it comes out as frames); otherwise only
    /// frames. `Ok(None)` means more bytes are needed.
    pub fn next(&mut self, expect_init: bool) -> Result<Option<Input<'_>>, CodecError> {
        let p = &self.buf[self.start..self.end];
        if expect_init && p.len() >= 2 && p[..2] == [0, 0] {
            return Ok(match parse_init(p)? {
                Some(init) => {
                    self.start += INIT_LEN;
                    Some(Input::Init(init))
                }
                None => None,
            });
        }
        if expect_init && p.len() >= 2 {
            let cmd = u16::from_be_bytes([p[0], p[1]]);
            if frame::command_name(cmd).is_none() || cmd == frame::cmd::CLOSE {
                return Err(CodecError::NotACamera(super::Foreign::sniff(p)));
            }
        }
        Ok(self.next_frame()?.map(Input::Frame))
    }

    /// The next frame; its header is checked before the payload is awaited,
    /// so a hostile length fails at once.
    pub fn next_frame(&mut self) -> Result<Option<Frame<'_>>, CodecError> {
        let p = &self.buf[self.start..self.end];
        if p.len() < 2 {
            return Ok(None);
        }
        // REPEAT INIT (server to device) is the two bytes `00 09`.
        if self.limits.direction == frame::Direction::FromServer && p[..2] == [0, 9] {
            self.start += 2;
            return Ok(Some(Frame::RepeatInit));
        }
        if p.len() < HEADER_LEN {
            return Ok(None);
        }
        // The header is checked before the payload is awaited: a hostile
        // length fails at once, and a frame within the limits gets room.
        let (cmd, len) = frame::check_header(p, self.limits)?;
        let total = HEADER_LEN + len.unwrap_or(0);
        if p.len() < total {
            let missing = total - p.len();
            self.reserve(missing);
            return Ok(None);
        }
        let at = self.start;
        self.start += total;
        frame::decode_payload(cmd, &self.buf[at + HEADER_LEN..at + total]).map(Some)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::codec::init::tests::REAL_INIT;

    /// Whatever comes before a SYNC is dropped, however it is cut, and the
    /// SYNC then comes out whole.
    #[test]
    fn skip_to_sync_drops_what_precedes_a_sync_however_it_is_cut() {
        let mut junk: Vec<u8> = (0..700u32).map(|i| (i * 7 + 1) as u8).collect();
        junk.extend([0, 3, 0]); // a false start of a header
        let mut wire = junk.clone();
        Frame::Sync { offset: 9 }.encode(&mut wire).unwrap();
        for cut in [1, 2, 3, 350, 702, 703, 704, 705, wire.len()] {
            let mut d = Deframer::new(Limits::IDENTIFIER);
            d.feed(&wire[..cut]);
            let mut dropped = d.skip_to_sync();
            d.feed(&wire[cut..]);
            dropped += d.skip_to_sync();
            assert_eq!(dropped, junk.len(), "cut at {cut}");
            match d.next(false).unwrap() {
                Some(Input::Frame(Frame::Sync { offset: 9 })) => {}
                other => panic!("cut at {cut}: {other:?}"),
            }
            assert_eq!(d.buffered(), 0);
        }
    }

    #[test]
    fn one_byte_at_a_time_yields_the_same_inputs() {
        let mut wire = REAL_INIT.to_vec();
        Frame::Start {
            total: 32,
            field: 0,
        }
        .encode(&mut wire)
        .unwrap();
        Frame::Sync { offset: 1 }.encode(&mut wire).unwrap();
        Frame::Data {
            payload: &[7; 1024],
            crc: 9,
        }
        .encode(&mut wire)
        .unwrap();
        let mut d = Deframer::new(Limits::IDENTIFIER);
        let mut got = Vec::new();
        let mut expect_init = true;
        for b in wire {
            d.feed(&[b]);
            while let Some(input) = d.next(expect_init).unwrap() {
                expect_init = false;
                got.push(match input {
                    Input::Init(i) => format!("init {}", i.imei),
                    Input::Frame(f) => {
                        format!("{} {:?}", f.name(), f.file_bytes().map(|b| b.len()))
                    }
                });
            }
        }
        assert_eq!(
            got,
            [
                "init 350612071913857",
                "START None",
                "SYNC None",
                "DATA Some(1024)"
            ]
        );
        assert_eq!(d.buffered(), 0);
    }

    #[test]
    fn many_frames_in_one_read_and_a_grown_buffer_for_path_data() {
        let big = vec![0xA5; 20_000];
        let mut wire = Vec::new();
        for i in 0..3 {
            Frame::EnhancedData {
                offset: i * 20_000,
                payload: &big,
                crc: i as u16,
            }
            .encode(&mut wire)
            .unwrap();
        }
        let mut d = Deframer::new(Limits::PATH);
        let mut n = 0;
        let mut fed = 0;
        while fed < wire.len() {
            let space = d.space(4096);
            let k = space.len().min(wire.len() - fed);
            space[..k].copy_from_slice(&wire[fed..fed + k]);
            d.filled(k);
            fed += k;
            while let Some(f) = d.next_frame().unwrap() {
                assert_eq!(f.file_bytes().unwrap().len(), 20_000);
                n += 1;
            }
        }
        assert_eq!(n, 3);
    }

    #[test]
    fn data_in_flight_before_a_repeated_init_comes_out_as_frames() {
        let mut wire = Vec::new();
        Frame::Data {
            payload: &[1; 10],
            crc: 1,
        }
        .encode(&mut wire)
        .unwrap();
        wire.extend_from_slice(&REAL_INIT);
        let mut d = Deframer::new(Limits::IDENTIFIER);
        d.feed(&wire);
        assert!(matches!(
            d.next(true).unwrap(),
            Some(Input::Frame(Frame::Data { .. }))
        ));
        assert!(matches!(d.next(true).unwrap(), Some(Input::Init(_))));
    }

    #[test]
    fn scanners_and_hostile_lengths_fail_at_once() {
        let mut d = Deframer::new(Limits::IDENTIFIER);
        d.feed(b"GE");
        assert_eq!(
            d.next(true),
            Err(CodecError::NotACamera(crate::codec::Foreign::Http))
        );
        let mut d = Deframer::new(Limits::IDENTIFIER);
        d.feed(&[0, 4, 0xFF, 0xFF]);
        assert!(d.next_frame().is_err());
    }
}
