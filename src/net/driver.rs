//! The blocking loop of one connection's thread: read with a deadline, feed
//! the session, carry out its actions on the socket and on storage. The only
//! place where the protocol meets I/O.

use std::io::{self, Read, Write};
use std::net::TcpStream;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use crate::codec::{Deframer, Input, Limits};
use crate::ops::metrics::{FastBudget, FastSlot, Metrics};
use crate::session::{Action, Config, End, FileRecord, OpenFile, Published, Session};
use crate::storage::{Partial, Storage, StoreError, Stored};

mod files;
use files::*;

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

/// Bytes in, bytes out, all in memory: reading past the input is the peer
/// closing the link. (Tests and the fuzz targets run sessions over it.)
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

/// One whole session over in-memory bytes, storing into `storage`: what it
/// reports, every byte it sent back, and each file as it was stored.
pub fn run_over_bytes(
    config: &Config,
    storage: &Storage,
    input: &[u8],
) -> (Summary, Vec<u8>, Vec<Stored>) {
    let stop = AtomicBool::new(false);
    let (metrics, fast) = (Metrics::default(), FastBudget::default());
    let board = crate::ops::board::Board::default();
    let stored = std::sync::Mutex::new(Vec::new());
    let env = Env {
        config,
        storage,
        shutdown: &stop,
        on_stored: &|st| {
            stored
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .push(st.clone());
            Ok(())
        },
        on_camera: &|_| {},
        metrics: &metrics,
        fast: &fast,
        board: &board,
        live: None,
    };
    let mut link = MemoryLink {
        input,
        output: Vec::new(),
    };
    let summary = run(&env, &mut link, "in-memory".into(), 0, Instant::now());
    let stored = stored
        .into_inner()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    (summary, link.output, stored)
}

/// Everything a session needs from the server around it.
pub struct Env<'a> {
    pub config: &'a Config,
    pub storage: &'a Storage,
    pub shutdown: &'a AtomicBool,
    /// Told each stored file before the camera is: an error (its delivery
    /// could not be queued) and the camera keeps the file and sends it again.
    pub on_stored: &'a (dyn Fn(&Stored) -> Result<(), crate::net::server::HookError> + Sync),
    /// Told the IMEI once the camera is admitted.
    pub on_camera: &'a (dyn Fn(u64) + Sync),
    pub metrics: &'a Metrics,
    /// Big buffers for fast cameras, shared by the server's connections.
    pub fast: &'a FastBudget,
    /// What the cameras are doing now (`/cameras`).
    pub board: &'a crate::ops::board::Board,
    /// The terminal's progress bars, when there are.
    pub live: Option<&'a crate::ops::live::Live>,
}

/// What the summary line reports.
#[derive(Debug, Clone)]
pub struct Summary {
    pub imei: Option<u64>,
    /// Files stored by this session (new ones).
    pub stored: u32,
    /// Files the camera sent that were stored already (not stored again).
    pub already_had: u32,
    /// Bytes of the files stored (new ones).
    pub bytes: u64,
    /// Files the server would not take (the first 64).
    pub refused: Vec<crate::session::Refusal>,
    pub crc_errors: u32,
    pub duration: Duration,
    pub end: End,
}

impl Summary {
    /// A connection that ended before any session began (refused, TLS failed).
    pub fn ended(end: End) -> Summary {
        Summary {
            imei: None,
            stored: 0,
            already_had: 0,
            bytes: 0,
            refused: Vec::new(),
            crc_errors: 0,
            duration: Duration::ZERO,
            end,
        }
    }
}

/// Reads start small; they double while they come back full (the camera
/// sends faster than we read) and halve after a run of small ones, so a
/// camera on a slow link holds about 2 KiB and a fast one reads 16 KiB at a time.
struct ReadSize {
    size: usize,
    /// 16 KiB only while this connection holds a fast slot.
    max: usize,
    small_reads: u32,
    /// The last read filled all the space it was given.
    saturated: bool,
}

impl ReadSize {
    const SLOW: usize = 1024;
    const SLOW_MAX: usize = 2 * 1024;
    const FAST: usize = 16 * 1024;

    fn new() -> ReadSize {
        ReadSize {
            size: Self::SLOW,
            max: Self::SLOW_MAX,
            small_reads: 0,
            saturated: false,
        }
    }

    fn filled(&mut self, n: usize, space: usize) {
        self.saturated = n >= space;
        if self.saturated && self.size < self.max {
            self.size = (self.size * 2).min(self.max);
            self.small_reads = 0;
        } else if n < self.size / 4 {
            self.small_reads += 1;
            if self.small_reads >= 16 && self.size > Self::SLOW {
                self.size /= 2;
                self.small_reads = 0;
            }
        } else {
            self.small_reads = 0;
        }
    }

    fn is_fast(&self) -> bool {
        self.size >= Self::FAST
    }

    fn is_slow(&self) -> bool {
        self.size <= Self::SLOW
    }
}

/// One connection: the session, the bytes not yet framed, and the files.
struct Conn<'e, 'a> {
    session: Session<'a>,
    deframer: Deframer,
    files: Files<'e, 'a>,
    read: ReadSize,
    fast: Option<FastSlot<'a>>,
    timeout_set: Option<Duration>,
    /// When the last bytes were read: the time of every frame they carry
    /// (one clock reading per read, not two per frame).
    now: Instant,
}

impl<'a> Conn<'_, 'a> {
    /// Sends what the session has for the camera.
    fn send<L: Link>(&mut self, link: &mut L) {
        if self.session.output().is_empty() {
            return;
        }
        let r = link
            .write_all(self.session.output())
            .and_then(|_| link.flush());
        self.session.sent();
        if let Err(e) = r {
            self.session.handle_link_lost(format!("sending: {e}"));
        }
    }

    /// Hands the session the next whole init packet or frame, if one is buffered.
    fn next_input(&mut self) -> bool {
        let Conn {
            session,
            deframer,
            files,
            now,
            ..
        } = self;
        let now = *now;
        deframer.set_limits(session.limits());
        let mut skipped = 0;
        if session.awaits_sync() {
            skipped = deframer.skip_to_sync();
            if skipped > 0 {
                session.handle_skipped(skipped);
                if session.is_over() {
                    return true;
                }
            }
        }
        match deframer.next(session.expects_init()) {
            Ok(Some(input)) => {
                session.handle_input(now, input);
                let bytes = match &input {
                    Input::Frame(f) => f.file_bytes(),
                    Input::Init(_) => None,
                };
                files.apply(session, bytes, now);
                true
            }
            Ok(None) => skipped > 0,
            Err(e) => {
                session.handle_codec_error(e);
                true
            }
        }
    }

    /// Nothing buffered: runs a due deadline, or waits for bytes until the next one.
    fn wait_and_read<L: Link>(&mut self, link: &mut L) {
        let now = Instant::now();
        self.now = now;
        // Part of a frame is waiting for the rest: the frame deadline runs.
        self.session.handle_bytes(now, self.deframer.buffered() > 0);
        let Some(deadline) = self.session.poll_timeout() else {
            return;
        };
        if now >= deadline {
            return self.session.handle_timeout(now);
        }
        // A slow camera's bytes are written before waiting.
        if let Some(p) = &mut self.files.partial {
            if let Err(e) = p.idle(self.read.is_fast()) {
                return self
                    .session
                    .write_failed(StoreError::io("writing the partial", e));
            }
        }
        // Waking early is harmless; a setsockopt per packet is not: only
        // change the socket's timeout when it would oversleep or wake far too soon.
        let wait = (deadline - now).max(Duration::from_millis(1));
        if self.timeout_set.is_none_or(|t| t > wait || t < wait / 2) {
            let _ = link.set_read_timeout(wait);
            self.timeout_set = Some(wait);
        }
        if self.read.is_slow() {
            self.deframer.shrink();
        }
        let space = self.deframer.space(self.read.size);
        let asked = space.len();
        let read = link.read(space);
        // The server's stop closes every link: what the read then says is
        // the stop, not the camera (no camera error, partial kept).
        if matches!(read, Ok(0) | Err(_)) && self.files.env.shutdown.load(Ordering::Relaxed) {
            return self.session.handle_shutdown();
        }
        match read {
            Ok(0) => {
                let pending = self.deframer.buffered();
                self.session.handle_link_lost(if pending == 0 {
                    "connection closed by the camera".into()
                } else {
                    format!("connection closed by the camera in the middle of a frame ({pending} bytes pending)")
                });
            }
            Ok(n) => {
                self.now = Instant::now();
                self.deframer.filled(n);
                self.read.filled(n, asked);
                if self.read.saturated && self.fast.is_none() {
                    self.fast = self.files.env.fast.try_take();
                    if self.fast.is_some() {
                        self.read.max = ReadSize::FAST;
                    }
                }
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                ) =>
            {
                self.now = Instant::now();
                self.session.handle_timeout(self.now)
            }
            Err(e) => self.session.handle_link_lost(format!("read failed: {e}")),
        }
    }
}

/// Runs one camera's session over `link` to its end, and logs its summary
/// line. `conn` numbers the connection (for the terminal's progress bars);
/// `accepted` is when it was accepted: the init deadline counts from there,
/// whatever came before the session (a PROXY header, a TLS handshake).
pub fn run<L: Link>(
    env: &Env<'_>,
    mut link: L,
    remote: String,
    conn: u64,
    accepted: Instant,
) -> Summary {
    let began = accepted;
    let board = env.board.connect(conn, &remote);
    let mut c = Conn {
        session: Session::new(env.config, remote.clone(), began),
        deframer: Deframer::new(Limits::PATH),
        files: Files {
            env,
            conn,
            remote,
            partial: None,
            tally: Tally::default(),
            end: None,
            clock_warned: false,
            board,
        },
        read: ReadSize::new(),
        fast: None,
        timeout_set: None,
        now: began,
    };
    loop {
        c.send(&mut link);
        c.files.apply(&mut c.session, None, c.now);
        if c.session.is_over() {
            c.send(&mut link);
            break;
        }
        if env.shutdown.load(Ordering::Relaxed) {
            c.session.handle_shutdown();
        } else if !c.next_input() {
            c.wait_and_read(&mut link);
        }
    }
    c.files.partial = None;
    if let Some(l) = env.live {
        l.file_ended(conn);
    }
    let summary = summarize(env, c.session, c.files.tally, c.files.end, began);
    env.board.ended(
        conn,
        match &summary.end {
            End::Completed | End::Shutdown => None,
            end => Some(end.to_string()),
        },
    );
    summary
}

fn summarize(
    env: &Env<'_>,
    session: Session<'_>,
    tally: Tally,
    end: Option<End>,
    began: Instant,
) -> Summary {
    let stats = session.stats().clone();
    let summary = Summary {
        imei: session.imei(),
        stored: tally.stored,
        already_had: tally.already_had,
        bytes: tally.bytes,
        refused: tally.refused,
        crc_errors: stats.crc_errors,
        duration: began.elapsed(),
        end: end
            .or_else(|| session.ended().cloned())
            .unwrap_or(End::Completed),
    };
    let line = format!(
        "[{}] session end: {} stored ({} bytes), {} already had, {} failed, {} CRC errors, {:.1}s, {}",
        session.tag(),
        summary.stored,
        summary.bytes,
        summary.already_had,
        stats.files_failed,
        summary.crc_errors,
        summary.duration.as_secs_f64(),
        summary.end
    );
    Metrics::add(&env.metrics.sessions, 1);
    Metrics::add(&env.metrics.bytes_stored, summary.bytes);
    Metrics::add(&env.metrics.duplicates, summary.already_had as u64);
    Metrics::add(&env.metrics.crc_errors, summary.crc_errors as u64);
    match summary.end {
        // A stop on purpose is not an error.
        End::Completed | End::Shutdown => log::info!("{line}"),
        // Not a camera's session at all: the server logs it once,
        // rate-limited, and counts it by kind.
        End::NotACamera(_) => {}
        _ => {
            Metrics::add(&env.metrics.failed_sessions, 1);
            log::warn!("{line}")
        }
    }
    summary
}
