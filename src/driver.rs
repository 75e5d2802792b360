//! The blocking loop of one connection's thread: read with a deadline, feed
//! the session, carry out its actions on the socket and on storage. The only
//! place where the protocol meets I/O.

use std::io::{self, Read, Write};
use std::net::TcpStream;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use crate::codec::{Deframer, Input, Limits};
use crate::live;
use crate::session::{Action, Config, End, Published, Session};
use crate::storage::{Partial, Storage, StoreError, Stored};

/// A byte stream whose reads can wait at most a given time.
pub trait Link: Read + Write {
    fn set_read_timeout(&mut self, timeout: Duration) -> io::Result<()>;
}

impl<L: Link + ?Sized> Link for &mut L {
    fn set_read_timeout(&mut self, timeout: Duration) -> io::Result<()> {
        (**self).set_read_timeout(timeout)
    }
}

impl Link for &TcpStream {
    fn set_read_timeout(&mut self, timeout: Duration) -> io::Result<()> {
        TcpStream::set_read_timeout(self, Some(timeout))
    }
}

/// Bytes in, bytes out, all in memory: for tests and fuzzing. Reading past the
/// input is the peer closing the link.
pub struct MemoryLink<'a> {
    pub input: &'a [u8],
    pub output: Vec<u8>,
}

impl Read for MemoryLink<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.input.read(buf)
    }
}

impl Write for MemoryLink<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.output.write(buf)
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl Link for MemoryLink<'_> {
    fn set_read_timeout(&mut self, _: Duration) -> io::Result<()> {
        Ok(())
    }
}

/// Everything a session needs from the server around it.
pub struct Env<'a> {
    pub config: &'a Config,
    pub storage: &'a Storage,
    pub shutdown: &'a AtomicBool,
    pub on_stored: &'a (dyn Fn(&Stored) + Sync),
    /// Told the IMEI once the camera is admitted.
    pub on_camera: &'a (dyn Fn(u64) + Sync),
}

/// What the summary line reports.
#[derive(Debug, Clone)]
pub struct Summary {
    pub imei: Option<u64>,
    pub stored: Vec<Stored>,
    pub bytes: u64,
    pub crc_errors: u32,
    pub duration: Duration,
    pub end: End,
}

impl Summary {
    /// A connection that ended before any session began (refused, TLS failed).
    pub fn ended(end: End) -> Summary {
        Summary {
            imei: None,
            stored: Vec::new(),
            bytes: 0,
            crc_errors: 0,
            duration: Duration::ZERO,
            end,
        }
    }
}

struct Run<'e, 'a> {
    env: &'e Env<'a>,
    /// This connection's number, for the terminal's progress bars.
    conn: u64,
    remote: String,
    partial: Option<Partial<'a>>,
    stored: Vec<Stored>,
    end: Option<End>,
}

impl<'a> Run<'_, 'a> {
    /// Carries out every pending action; `bytes` are the file bytes of the
    /// frame just handled.
    // The rare, heavy steps (open, publish) are kept out of line: their stack
    // frames are then touched only when they run, not by every camera thread
    // waiting on its socket (stack probes touch a whole frame on entry).
    #[inline(never)]
    fn open(&mut self, s: &mut Session<'_>, open: &crate::session::OpenFile, now: Instant) {
        let imei = s.imei().unwrap_or_default();
        match self.env.storage.begin(imei, open) {
            Ok(p) => {
                let kept = p.stored();
                self.partial = Some(p);
                let total = match open.unit {
                    crate::session::Unit::Packets => open.total as u64 * 1024,
                    crate::session::Unit::Bytes => open.total as u64,
                };
                live::file_started(self.conn, s.tag(), &open.spec.display(), total, kept);
                s.opened(now, Ok(kept));
            }
            Err(e) => s.opened(now, Err(e)),
        }
    }

    #[inline(never)]
    fn finish(&mut self, s: &mut Session<'_>, record: &crate::session::FileRecord, now: Instant) {
        live::file_ended(self.conn);
        let r = match self.partial.take() {
            Some(p) => p.finish(record, &self.remote),
            None => Err(io::Error::other("no open file to finish").into()),
        };
        match r {
            Ok(stored) => {
                if stored.duplicate_of.is_none() {
                    live::TOTALS.files.fetch_add(1, Ordering::Relaxed);
                }
                (self.env.on_stored)(&stored);
                let published = Published {
                    path: stored.path.display().to_string(),
                    size_bytes: stored.sidecar.size_bytes,
                    crc16: stored.sidecar.crc16,
                    duplicate: stored.duplicate_of.is_some(),
                };
                self.stored.push(stored);
                s.finished(now, Ok(published));
            }
            Err(e) => s.finished(now, Err(e)),
        }
    }

    fn apply(&mut self, s: &mut Session<'_>, bytes: Option<&[u8]>) {
        while let Some(action) = s.poll_action() {
            let now = Instant::now();
            match action {
                Action::Camera(imei) => (self.env.on_camera)(imei),
                Action::Open(open) => self.open(s, &open, now),
                Action::Write { offset } => {
                    let r = match (&mut self.partial, bytes) {
                        (Some(p), Some(b)) => p.write_at(offset, b),
                        _ => Err(io::Error::other("no open file for DATA")),
                    };
                    match r {
                        Err(e) => s.write_failed(StoreError::io("writing the partial", &e)),
                        Ok(()) => {
                            let n = bytes.map_or(0, |b| b.len() as u64);
                            live::TOTALS.bytes_received.fetch_add(n, Ordering::Relaxed);
                            live::file_progress(self.conn, offset + n);
                        }
                    }
                }
                Action::Rewind { len } => {
                    let r = match &mut self.partial {
                        Some(p) => p.rewind(len).map_err(|e| StoreError::io("rewinding", &e)),
                        None => Err(io::Error::other("no open file to rewind").into()),
                    };
                    s.rewound(now, r);
                }
                Action::Finish(record) => self.finish(s, &record, now),
                Action::Abandon { crc_errors } => {
                    live::file_ended(self.conn);
                    if let Some(p) = self.partial.take() {
                        p.abandon(crc_errors);
                    }
                }
                Action::End(end) => self.end = Some(end),
            }
        }
    }
}

/// Connections allowed big buffers (16 KiB reads, 64 KiB writes) at once: a
/// camera that sends fast gets one. When a whole fleet falls behind, every
/// socket looks fast; the cap keeps memory at a few KiB per camera then.
const FAST_SLOTS: usize = 64;
static FAST: AtomicUsize = AtomicUsize::new(0);

/// A fast-buffer slot, given back when the connection ends.
struct FastSlot(bool);

impl FastSlot {
    fn try_take(&mut self) -> bool {
        if !self.0
            && FAST
                .fetch_update(Ordering::AcqRel, Ordering::Relaxed, |n| {
                    (n < FAST_SLOTS).then_some(n + 1)
                })
                .is_ok()
        {
            self.0 = true;
        }
        self.0
    }
}

impl Drop for FastSlot {
    fn drop(&mut self) {
        if self.0 {
            FAST.fetch_sub(1, Ordering::AcqRel);
        }
    }
}

/// Runs one camera's session over `link` to its end, and logs its summary line.
pub fn run<L: Link>(env: &Env<'_>, mut link: L, remote: String) -> Summary {
    let began = Instant::now();
    let mut session = Session::new(env.config, remote.clone(), began);
    let mut deframer = Deframer::new(Limits::PATH);
    static CONNS: AtomicU64 = AtomicU64::new(0);
    let mut run = Run {
        env,
        conn: CONNS.fetch_add(1, Ordering::Relaxed),
        remote,
        partial: None,
        stored: Vec::new(),
        end: None,
    };
    let mut timeout_set: Option<Duration> = None;
    let mut fast = FastSlot(false);
    loop {
        if !session.output().is_empty() {
            let r = link.write_all(session.output()).and_then(|_| link.flush());
            session.sent();
            if let Err(e) = r {
                session.handle_link_lost(format!("sending: {e}"));
            }
        }
        run.apply(&mut session, None);
        if session.is_over() {
            if !session.output().is_empty() {
                let _ = link.write_all(session.output()).and_then(|_| link.flush());
                session.sent();
            }
            break;
        }
        if env.shutdown.load(Ordering::Relaxed) {
            session.handle_shutdown();
            continue;
        }
        deframer.set_limits(session.limits());
        match deframer.next(session.expects_init()) {
            Ok(Some(input)) => {
                session.handle_input(Instant::now(), input);
                let bytes = match &input {
                    Input::Frame(f) => f.file_bytes(),
                    Input::Init(_) => None,
                };
                run.apply(&mut session, bytes);
                continue;
            }
            Ok(None) => {}
            Err(e) => {
                session.handle_codec_error(e);
                continue;
            }
        }
        let now = Instant::now();
        // Part of a frame is waiting for the rest: the frame deadline runs.
        session.handle_bytes(now, deframer.buffered() > 0);
        let Some(deadline) = session.poll_timeout() else {
            continue;
        };
        if now >= deadline {
            session.handle_timeout(now);
            continue;
        }
        // Nothing buffered: a slow camera's bytes are written before waiting.
        if let Some(p) = &mut run.partial {
            if let Err(e) = p.idle(deframer.is_fast()) {
                session.write_failed(StoreError::io("writing the partial", &e));
                continue;
            }
        }
        // Waking early is harmless; a setsockopt per packet is not: only
        // change the socket's timeout when it would oversleep or wake far too soon.
        let wait = (deadline - now).max(Duration::from_millis(1));
        if timeout_set.is_none_or(|t| t > wait || t < wait / 2) {
            let _ = link.set_read_timeout(wait);
            timeout_set = Some(wait);
        }
        match link.read(deframer.space()) {
            Ok(0) => {
                let pending = deframer.buffered();
                session.handle_link_lost(if pending == 0 {
                    "connection closed by the camera".into()
                } else {
                    format!("connection closed by the camera in the middle of a frame ({pending} bytes pending)")
                });
            }
            Ok(n) => {
                deframer.filled(n);
                if deframer.saturated() && !fast.0 && fast.try_take() {
                    deframer.set_max_read(16 * 1024);
                }
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                ) =>
            {
                session.handle_timeout(Instant::now())
            }
            Err(e) => session.handle_link_lost(format!("read failed: {e}")),
        }
    }
    run.partial = None;
    live::file_ended(run.conn);
    let stats = session.stats().clone();
    let summary = Summary {
        imei: session.imei(),
        bytes: run.stored.iter().map(|s| s.sidecar.size_bytes).sum(),
        stored: run.stored,
        crc_errors: stats.crc_errors,
        duration: began.elapsed(),
        end: run
            .end
            .or_else(|| session.ended().cloned())
            .unwrap_or(End::Completed),
    };
    let line = format!(
        "[{}] session end: {} file(s), {} bytes stored, {} failed, {} CRC errors, {:.1}s, {}",
        session.tag(),
        summary.stored.len(),
        summary.bytes,
        stats.files_failed,
        summary.crc_errors,
        summary.duration.as_secs_f64(),
        summary.end
    );
    live::TOTALS.sessions.fetch_add(1, Ordering::Relaxed);
    match summary.end {
        End::Completed => log::info!("{line}"),
        _ => {
            live::TOTALS.failed_sessions.fetch_add(1, Ordering::Relaxed);
            log::warn!("{line}")
        }
    }
    summary
}
