//! Turns a byte stream into init packets and frames, whatever its segmentation.
//! Bytes stay in the buffer across a read timeout, so a short wait (metadata)
//! never loses half a frame.

use std::fmt;
use std::io::{self, Read};

use crate::codec::{self, CodecError, Frame, InitPacket, INIT_LEN};

const BUFFER: usize = 16 * 1024;

#[derive(Debug)]
pub enum ReadError {
    /// The peer closed the link; `buffered` bytes of an unfinished frame were pending.
    Closed {
        buffered: usize,
    },
    /// No byte arrived within the read timeout.
    TimedOut,
    Io(io::Error),
    Codec(CodecError),
}

impl fmt::Display for ReadError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ReadError::Closed { buffered: 0 } => write!(f, "connection closed by peer"),
            ReadError::Closed { buffered } => {
                write!(
                    f,
                    "connection closed by peer in the middle of a frame ({buffered} bytes pending)"
                )
            }
            ReadError::TimedOut => write!(f, "read timed out"),
            ReadError::Io(e) => write!(f, "read failed: {e}"),
            ReadError::Codec(e) => write!(f, "protocol error: {e}"),
        }
    }
}

impl From<CodecError> for ReadError {
    fn from(e: CodecError) -> Self {
        ReadError::Codec(e)
    }
}

pub struct FrameReader<R> {
    inner: R,
    buf: Box<[u8]>,
    start: usize,
    end: usize,
}

impl<R: Read> FrameReader<R> {
    pub fn new(inner: R) -> Self {
        FrameReader {
            inner,
            buf: vec![0; BUFFER].into_boxed_slice(),
            start: 0,
            end: 0,
        }
    }

    pub fn get_ref(&self) -> &R {
        &self.inner
    }

    fn pending(&self) -> &[u8] {
        &self.buf[self.start..self.end]
    }

    /// Reads more bytes, keeping what is buffered.
    fn fill(&mut self) -> Result<(), ReadError> {
        if self.start == self.end {
            self.start = 0;
            self.end = 0;
        } else if self.end == self.buf.len() {
            self.buf.copy_within(self.start..self.end, 0);
            self.end -= self.start;
            self.start = 0;
        }
        loop {
            return match self.inner.read(&mut self.buf[self.end..]) {
                Ok(0) => Err(ReadError::Closed {
                    buffered: self.end - self.start,
                }),
                Ok(n) => {
                    self.end += n;
                    Ok(())
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e)
                    if matches!(
                        e.kind(),
                        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                    ) =>
                {
                    Err(ReadError::TimedOut)
                }
                Err(e) => Err(ReadError::Io(e)),
            };
        }
    }

    pub fn read_init(&mut self) -> Result<InitPacket, ReadError> {
        loop {
            if let Some(init) = codec::parse_init(self.pending())? {
                self.start += INIT_LEN;
                return Ok(init);
            }
            self.fill()?;
        }
    }

    /// The next frame. Its header is checked before the payload is awaited, so a
    /// hostile length fails at once.
    pub fn read_frame(&mut self) -> Result<Frame<'_>, ReadError> {
        loop {
            let p = self.pending();
            if p.len() >= codec::frame::HEADER_LEN {
                let (cmd, len) = codec::check_header([p[0], p[1], p[2], p[3]])?;
                let total = codec::frame::HEADER_LEN + len;
                if p.len() >= total {
                    let at = self.start;
                    self.start += total;
                    return Ok(codec::decode_payload(cmd, &self.buf[at + 4..at + total])?);
                }
            }
            self.fill()?;
        }
    }

    /// The raw bytes of the frame just returned, for debug dumps.
    pub fn last_frame_bytes(&self, len: usize) -> &[u8] {
        &self.buf[self.start.saturating_sub(len)..self.start]
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::codec::Frame;

    /// A reader that hands out one byte at a time, then times out once, then goes on.
    struct Trickle {
        data: Vec<u8>,
        at: usize,
        stall_at: Option<usize>,
    }

    impl Read for Trickle {
        fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
            if self.stall_at == Some(self.at) {
                self.stall_at = None;
                return Err(io::ErrorKind::WouldBlock.into());
            }
            if self.at == self.data.len() || out.is_empty() {
                return Ok(0);
            }
            out[0] = self.data[self.at];
            self.at += 1;
            Ok(1)
        }
    }

    #[test]
    fn byte_by_byte_with_a_timeout_mid_frame_loses_nothing() {
        let mut data = vec![
            0, 0, 0, 5, 0, 1, 0x3E, 0xE1, 0x3C, 0, 0x19, 0x81, 0x44, 0, 4, 0,
        ];
        Frame::Start { packets: 32 }.encode(&mut data);
        Frame::Data {
            payload: &[7; 1024],
            crc: 9,
        }
        .encode(&mut data);
        let mut r = FrameReader::new(Trickle {
            data,
            at: 0,
            stall_at: Some(20),
        });
        assert_eq!(r.read_init().unwrap().imei, 350612071913857);
        assert!(matches!(r.read_frame(), Err(ReadError::TimedOut)));
        assert_eq!(r.read_frame().unwrap(), Frame::Start { packets: 32 });
        match r.read_frame().unwrap() {
            Frame::Data { payload, crc } => assert_eq!((payload.len(), crc), (1024, 9)),
            f => panic!("{f:?}"),
        }
        assert!(matches!(
            r.read_frame(),
            Err(ReadError::Closed { buffered: 0 })
        ));
    }

    #[test]
    fn hostile_length_fails_before_waiting_for_payload() {
        let mut r = FrameReader::new(&[0u8, 4, 0xFF, 0xFF][..]);
        assert!(matches!(r.read_frame(), Err(ReadError::Codec(_))));
    }
}
