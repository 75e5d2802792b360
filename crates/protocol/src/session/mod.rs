//! One camera's conversation as a pure state machine: it is handed inputs
//! (init packets, frames, storage answers) and the current instant, and hands
//! back bytes to send and [`Action`]s for storage. No sockets, no clock, no
//! file system: every protocol decision, and every timeout, is made here from
//! the instants it is given, so tests drive it frame by frame without sleeping.
//!
//! The server's driver runs it over a socket and storage.
//!
//! # The call order, once
//!
//! A driver (the server's `net::driver`, or a test) does this, and nothing
//! else, until [`Session::is_over`]:
//!
//! 1. [`Session::new`] with the connection's config, peer and instant.
//! 2. Bytes arrive: the codec's `Deframer` yields inputs; each goes to
//!    [`Session::handle_input`] with the current instant (an init packet
//!    first: `choose.rs` decides the flow and the files to ask for; then
//!    frames: the answers to FILE REQ, PATH REQ, METADATA REQ, and the
//!    transfer of each file in `transfer.rs`). Bytes skipped before a SYNC
//!    go to [`Session::handle_skipped`], a codec error to
//!    [`Session::handle_codec_error`].
//! 3. After each input: the bytes of [`Session::output`] are written and
//!    [`Session::sent`] called; every [`Action`] from
//!    [`Session::poll_action`] is carried out on storage, and its result
//!    handed back ([`Session::opened`], [`Session::rewound`],
//!    [`Session::finished`], [`Session::write_failed`]).
//! 4. Nothing to read: [`Session::handle_bytes`] says whether part of a
//!    frame waits; the read waits until [`Session::poll_timeout`], and a
//!    deadline that passes goes to [`Session::handle_timeout`].
//! 5. The link ends: [`Session::handle_link_lost`], or
//!    [`Session::handle_shutdown`] when the server stops. How it ended is
//!    [`Session::ended`] (an [`End`], in `end.rs`).

mod choose;
mod end;
#[cfg(test)]
mod tests;
mod timers;
mod transfer;

use std::collections::{HashSet, VecDeque};
use std::time::{Duration, Instant};

use crate::codec::{self, status_name, CodecError, Family, FileKind, Frame, Input, Limits};
pub use crate::file::{FileSpec, Unit};

pub use end::{End, GiveUp, NotACamera, ProtocolError, Refusal, Timeout};
pub use transfer::{human_bytes, CrcCheck, FileRecord, OpenFile};

mod settings;
pub use settings::*;
use timers::{Timer, TimerTable};

pub(crate) enum State {
    /// Waiting for the (first or a repeated) init packet.
    Init {
        first: bool,
        stray: u32,
    },
    /// PATH REQ sent.
    Path,
    /// METADATA REQ sent (its deadline: [`Timer::Metadata`]).
    Metadata {
        file: Box<Pending>,
    },
    /// FILE REQ sent.
    Start {
        file: Box<Pending>,
        stray: u32,
    },
    /// A file is being received.
    Transfer(Box<transfer::Transfer>),
    Done,
}

/// A file chosen and not yet started.
pub(crate) struct Pending {
    pub spec: FileSpec,
    pub family: Family,
    pub flow: Flow,
    pub metadata: Option<(Vec<u8>, codec::Metadata)>,
}

pub struct Session<'c> {
    cfg: &'c Config,
    state: State,
    out: Vec<u8>,
    actions: VecDeque<Action>,
    /// The IMEI once known, else the peer address: starts every log line.
    tag: String,
    imei: Option<u64>,
    protocol_id: u16,
    last_rx: Instant,
    /// Every deadline of the connection.
    timers: TimerTable,
    files_asked: u32,
    /// Identifiers not to ask for again in this session (failed, or empty).
    skip: HashSet<Vec<u8>>,
    /// DualCam files stored in this session (`--files` does not force them again).
    fetched: HashSet<FileKind>,
    forced_asked: HashSet<FileKind>,
    /// The last init packet: which files it offered.
    last_init: Option<codec::InitPacket>,
    convention: Option<Convention>,
    flow_logged: Option<(Flow, Option<Family>)>,
    stats: Stats,
    end: Option<End>,
}

impl<'c> Session<'c> {
    pub fn new(cfg: &'c Config, peer: String, now: Instant) -> Session<'c> {
        Session {
            cfg,
            state: State::Init {
                first: true,
                stray: 0,
            },
            out: Vec::with_capacity(64),
            actions: VecDeque::with_capacity(8),
            tag: peer,
            imei: None,
            protocol_id: 0,
            last_rx: now,
            timers: {
                let mut t = TimerTable::default();
                t.set(Timer::Init, now + cfg.init_timeout);
                t.set(Timer::Silent, now + cfg.read_timeout);
                t
            },
            files_asked: 0,
            skip: HashSet::new(),
            fetched: HashSet::new(),
            forced_asked: HashSet::new(),
            last_init: None,
            convention: None,
            flow_logged: None,
            stats: Stats::default(),
            end: None,
        }
    }

    pub fn tag(&self) -> &str {
        &self.tag
    }

    pub fn imei(&self) -> Option<u64> {
        self.imei
    }

    /// The family of the file being received (None between files).
    pub fn family(&self) -> Option<Family> {
        match &self.state {
            State::Transfer(t) => Some(t.fixed.file.family),
            _ => None,
        }
    }

    pub fn protocol_id(&self) -> u16 {
        self.protocol_id
    }

    pub fn stats(&self) -> &Stats {
        &self.stats
    }

    pub fn convention(&self) -> Option<Convention> {
        self.convention
    }

    /// How the session ended, once it has.
    pub fn ended(&self) -> Option<&End> {
        self.end.as_ref()
    }

    pub fn is_over(&self) -> bool {
        self.end.is_some()
    }

    /// The next input is an init packet (a `00 00` header).
    pub fn expects_init(&self) -> bool {
        matches!(self.state, State::Init { .. })
    }

    /// Frame bounds for what comes next: DATA up to 1024 bytes in the identifier
    /// flow, up to a frame's limit in the path flow.
    pub fn limits(&self) -> Limits {
        match &self.state {
            State::Transfer(t) if t.fixed.file.flow == Flow::Identifier => Limits::IDENTIFIER,
            _ => Limits::PATH,
        }
    }

    /// Bytes to send, in order; the driver sends them and calls [`Session::sent`].
    pub fn output(&self) -> &[u8] {
        &self.out
    }

    pub fn sent(&mut self) {
        self.out.clear();
    }

    pub fn poll_action(&mut self) -> Option<Action> {
        self.actions.pop_front()
    }

    /// The instant at which [`Session::handle_timeout`] must be called.
    pub fn poll_timeout(&self) -> Option<Instant> {
        match self.state {
            State::Done => None,
            _ => self.timers.next(),
        }
    }

    pub(crate) fn send(&mut self, frame: Frame<'_>) {
        let at = self.out.len();
        if let Err(e) = frame.encode(&mut self.out) {
            // Never for what the session builds (paths are checked to 255 bytes).
            log::error!("[{}] not sent: {e}", self.tag);
            return;
        }
        if log::log_enabled!(log::Level::Debug) {
            log::debug!(
                "[{}] -> {} {}",
                self.tag,
                frame.name(),
                codec::hex(&self.out[at..])
            );
        }
    }

    /// Ends the session: keeps any open partial, sends CLOSE when `close`.
    pub(crate) fn finish_session(&mut self, end: End, close: bool) {
        if self.is_over() {
            return;
        }
        if let State::Transfer(t) = &self.state {
            if t.is_open() {
                let crc_errors = t.crc_errors();
                // A stop on purpose is not the camera's trouble.
                let level = if end == End::Shutdown {
                    log::Level::Info
                } else {
                    log::Level::Warn
                };
                log::log!(
                    level,
                    "[{}] {}: {} partial kept at {}",
                    self.tag,
                    end,
                    t.fixed.file.spec.display(),
                    t.kept()
                );
                self.actions.push_back(Action::Abandon { crc_errors });
            }
        }
        if close {
            self.send(Frame::Close);
        }
        self.state = State::Done;
        self.timers.clear();
        self.end = Some(end.clone());
        self.actions.push_back(Action::End(end));
    }

    /// An init packet or a frame from the camera.
    pub fn handle_input(&mut self, now: Instant, input: Input<'_>) {
        self.last_rx = now;
        self.timers.set(Timer::Silent, now + self.cfg.read_timeout);
        self.timers.stop(Timer::Frame);
        match input {
            Input::Init(init) => {
                self.timers.stop(Timer::Init);
                self.on_init(now, init)
            }
            Input::Frame(frame) => {
                if log::log_enabled!(log::Level::Trace) {
                    // Every byte, DATA included (RUST_LOG=trace).
                    log::trace!("[{}] <- {}", self.tag, codec::hex(&frame.to_vec()));
                } else if log::log_enabled!(log::Level::Debug) {
                    log::debug!("[{}] <- {}", self.tag, frame_summary(&frame));
                }
                self.on_frame(now, frame)
            }
        }
    }

    /// The bytes from the camera broke the protocol.
    /// After a RESUME for a bad packet, the bytes before the device's SYNC
    /// are not to be read as frames: the driver drops them
    /// ([`crate::codec::Deframer::skip_to_sync`]) and reports how many with
    /// [`Session::handle_skipped`].
    pub fn awaits_sync(&self) -> bool {
        matches!(&self.state, State::Transfer(t) if t.awaits_sync())
    }

    /// `n` bytes were dropped before a SYNC (bounded: past what
    /// [`transfer::MAX_IN_FLIGHT`] frames could hold, the session ends).
    pub fn handle_skipped(&mut self, n: usize) {
        let max_data = self.limits().max_data;
        self.step(self.last_rx, |t, cx| t.skipped(cx, n, max_data));
    }

    pub fn handle_codec_error(&mut self, e: CodecError) {
        let end = match (&self.state, &e) {
            (State::Init { first: true, .. }, _) | (_, CodecError::NotACamera(_)) => {
                End::NotACamera(NotACamera::Codec(e))
            }
            _ => End::Protocol(ProtocolError::Codec(e)),
        };
        // Not a camera: the server logs it once, rate-limited (scanners
        // come by the thousand); a camera's error is logged here.
        if !matches!(end, End::NotACamera(_)) {
            log::warn!("[{}] {end}", self.tag);
        }
        self.finish_session(end, true);
    }

    /// The link closed or failed.
    pub fn handle_link_lost(&mut self, why: String) {
        if !self.is_over() {
            self.finish_session(End::LinkLost(why), false);
        }
    }

    pub fn handle_shutdown(&mut self) {
        self.finish_session(End::Shutdown, true);
    }

    /// Bytes arrived: `pending` says whether part of a frame is still awaited.
    pub fn handle_bytes(&mut self, now: Instant, pending: bool) {
        if !pending {
            self.timers.stop(Timer::Frame);
        } else if self.timers.get(Timer::Frame).is_none() {
            self.timers.set(Timer::Frame, now + self.cfg.frame_timeout);
        }
    }

    /// Called at (or after) [`Session::poll_timeout`]: acts on the first
    /// timer that passed.
    pub fn handle_timeout(&mut self, now: Instant) {
        if self.is_over() {
            return;
        }
        let Some(timer) = self.timers.expired(now) else {
            return;
        };
        match timer {
            Timer::Init => {
                log::warn!(
                    "[{}] no init packet within {:?} (--init-timeout): dropping the link",
                    self.tag,
                    self.cfg.init_timeout
                );
                self.finish_session(End::TimedOut(Timeout::Init), true);
            }
            Timer::Frame => {
                log::warn!(
                    "[{}] a frame took longer than {:?} to arrive (--frame-timeout): dropping the link",
                    self.tag,
                    self.cfg.frame_timeout
                );
                self.finish_session(End::TimedOut(Timeout::Frame), true);
            }
            Timer::Silent => {
                log::warn!(
                    "[{}] no byte from the camera for {:?}: dropping the link{}",
                    self.tag,
                    self.cfg.read_timeout,
                    if matches!(self.state, State::Transfer(_)) {
                        " (partial kept)"
                    } else {
                        ""
                    }
                );
                self.finish_session(End::TimedOut(Timeout::Silent), true);
            }
            Timer::Metadata => {
                self.timers.stop(Timer::Metadata);
                match std::mem::replace(&mut self.state, State::Done) {
                    State::Metadata { file } => {
                        log::info!(
                            "[{}] no METADATA for {} within {:?} (firmware before 03.27.04?): requesting the file anyway",
                            self.tag,
                            file.spec.display(),
                            self.cfg.metadata_timeout
                        );
                        self.request_file(file);
                    }
                    other => self.state = other,
                }
            }
            Timer::Sync => {
                // Set again by the RESUME it may send.
                self.timers.stop(Timer::Sync);
                self.step(now, |t, cx| t.on_timeout(cx));
            }
        }
    }

    fn on_frame(&mut self, now: Instant, frame: Frame<'_>) {
        if let State::Transfer(_) = self.state {
            return self.step(now, |t, cx| t.on_frame(cx, now, frame));
        }
        match std::mem::replace(&mut self.state, State::Done) {
            State::Init { first, stray } => self.frame_before_init(first, stray, frame),
            State::Path => self.on_path_answer(frame),
            State::Metadata { file } => self.on_metadata(file, frame),
            State::Start { file, stray } => self.on_start(file, stray, frame),
            State::Transfer(_) | State::Done => {}
        }
    }

    fn frame_before_init(&mut self, first: bool, stray: u32, frame: Frame<'_>) {
        // A device STATUS after a file's last packet: logged by name; the
        // device goes on (or, after 0x11, disconnects).
        if let (false, Frame::Status { code }) = (first, &frame) {
            if !self.device_status(*code, "the wait for the repeated init") {
                self.state = State::Init { first, stray };
            }
            return;
        }
        // DATA still in flight after the server gave a file up, before the init.
        if !first && frame.file_bytes().is_some() && stray < transfer::MAX_IN_FLIGHT {
            self.state = State::Init {
                first,
                stray: stray + 1,
            };
            return;
        }
        let end = if first {
            End::NotACamera(NotACamera::FrameBeforeInit(frame.name()))
        } else {
            End::Protocol(ProtocolError::NotRepeatedInit(frame.name()))
        };
        if !first {
            log::warn!("[{}] {end}", self.tag);
        }
        self.finish_session(end, true);
    }

    /// A STATUS from the device, logged by name. 0x11 makes it disconnect.
    fn device_status(&mut self, code: u32, during: &str) -> bool {
        log_status(&self.tag, code, during);
        if code == DISCONNECTS {
            self.finish_session(End::DeviceStatus(code), true);
            true
        } else {
            false
        }
    }

    fn unexpected(&mut self, frame: &Frame<'_>, waiting_for: &'static str) {
        let end = End::Protocol(ProtocolError::Unexpected {
            expected: waiting_for,
            got: frame.name(),
        });
        log::warn!("[{}] {end}", self.tag);
        self.finish_session(end, true);
    }
}

/// The STATUS after which the device disconnects.
const DISCONNECTS: u32 = 0x11;

/// A STATUS from the device, logged by name.
fn log_status(tag: &str, code: u32, during: &str) {
    log::warn!(
        "[{tag}] device STATUS {code} (0x{code:02X}) during {during}: {}",
        status_name(code)
    );
}

pub(crate) fn frame_summary(f: &Frame<'_>) -> String {
    match f {
        Frame::Data { payload, crc } => format!(
            "DATA {} bytes, CRC 0x{crc:04X}, starts {}",
            payload.len(),
            codec::hex(&payload[..payload.len().min(16)])
        ),
        Frame::EnhancedData {
            offset,
            payload,
            crc,
        } => format!(
            "ENHANCED_DATA at {offset}, {} bytes, CRC 0x{crc:04X}",
            payload.len()
        ),
        other => format!("{} {}", other.name(), codec::hex(&other.to_vec())),
    }
}
