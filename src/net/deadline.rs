//! One deadline for a run of reads and writes on a socket, however slowly the
//! peer trickles: each read or write waits at most for what is left of the
//! time, and none starts after it. What a camera sends before its init packet
//! (a PROXY header, a TLS handshake) is read through it within
//! `--init-timeout`; the HTTP endpoint writes each answer through it.

use std::io::{self, Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

/// Dropped, it leaves the socket's read and write timeouts as it found them.
pub struct Deadline<'a> {
    stream: &'a TcpStream,
    until: Instant,
    /// What a passed deadline means, for the error ("--init-timeout passed
    /// before the init packet").
    what: &'static str,
    /// The socket's timeouts before (read, write).
    before: (Option<Duration>, Option<Duration>),
}

impl<'a> Deadline<'a> {
    pub fn new(stream: &'a TcpStream, until: Instant, what: &'static str) -> Self {
        let before = (
            stream.read_timeout().ok().flatten(),
            stream.write_timeout().ok().flatten(),
        );
        Deadline {
            stream,
            until,
            what,
            before,
        }
    }

    /// What is left of the time, or the error that says it is up.
    fn left(&self) -> io::Result<Duration> {
        let left = self.until.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(self.passed());
        }
        Ok(left)
    }

    fn passed(&self) -> io::Error {
        io::Error::new(io::ErrorKind::TimedOut, self.what)
    }

    /// A socket's timeout (WouldBlock on Unix, TimedOut on Windows) is the
    /// deadline's.
    fn timed_out(&self, e: io::Error) -> io::Error {
        match e.kind() {
            io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut => self.passed(),
            _ => e,
        }
    }
}

impl Read for Deadline<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.stream.set_read_timeout(Some(self.left()?))?;
        self.stream.read(buf).map_err(|e| self.timed_out(e))
    }
}

impl Write for Deadline<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.stream.set_write_timeout(Some(self.left()?))?;
        self.stream.write(buf).map_err(|e| self.timed_out(e))
    }

    fn flush(&mut self) -> io::Result<()> {
        self.stream.flush()
    }
}

impl Drop for Deadline<'_> {
    fn drop(&mut self) {
        let _ = self.stream.set_read_timeout(self.before.0);
        let _ = self.stream.set_write_timeout(self.before.1);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::TcpListener;

    #[test]
    fn a_trickle_cannot_stretch_the_deadline() {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let mut peer = TcpStream::connect(l.local_addr().unwrap()).unwrap();
        let (s, _) = l.accept().unwrap();
        s.set_write_timeout(Some(Duration::from_secs(60))).unwrap();
        let until = Instant::now() + Duration::from_millis(300);
        let mut d = Deadline::new(&s, until, "the test's deadline passed");
        // One byte arrives in time; the rest never does.
        peer.write_all(b"x").unwrap();
        let mut buf = [0u8; 4];
        assert_eq!(d.read(&mut buf).unwrap(), 1);
        let e = d.read(&mut buf).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::TimedOut);
        assert_eq!(e.to_string(), "the test's deadline passed");
        // At the deadline (a socket timeout may end a tick early, as on
        // Windows), not at the socket's own timeouts.
        assert!(Instant::now() + Duration::from_millis(100) >= until);
        drop(d);
        // Past it, nothing starts: not a read, not a write.
        let mut late = Deadline::new(&s, Instant::now(), "the test's deadline passed");
        assert_eq!(
            late.read(&mut buf).unwrap_err().kind(),
            io::ErrorKind::TimedOut
        );
        assert_eq!(
            late.write(b"late").unwrap_err().kind(),
            io::ErrorKind::TimedOut
        );
        // The socket's own timeouts come back.
        drop(late);
        assert_eq!(s.read_timeout().unwrap(), None);
        assert_eq!(s.write_timeout().unwrap(), Some(Duration::from_secs(60)));
    }
}
