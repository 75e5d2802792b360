//! One camera's conversation, in the protocol's order: init, [METADATA REQ],
//! FILE REQ, START, RESUME, SYNC, DATA..., REPEAT INIT, CLOSE. Written over
//! `Read + Write` so tests can drive it with any stream.

mod reader;
mod transfer;

pub use reader::{FrameReader, ReadError};

use std::collections::HashSet;
use std::fmt;
use std::io::{self, Read, Write};
use std::net::TcpStream;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use crate::codec::{self, status_name, FileKind, Frame, InitPacket};
use crate::storage::{FileSpec, Storage, Stored};

/// Which flow asks the camera for files.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Mode {
    /// DashCam flow when the init reports any file, else the ADAS flow.
    Auto,
    /// Request the files the init's settings bits report (`%videof`, ...).
    Dashcam,
    /// Ask for file paths with PATH REQ (0x000C), then request each path.
    Adas,
}

#[derive(Debug, Clone)]
pub struct Config {
    pub mode: Mode,
    pub metadata: bool,
    pub metadata_timeout: Duration,
    pub read_timeout: Duration,
    /// `--files`: exactly these in the first round, then those of them the camera reports.
    pub files: Option<Vec<FileKind>>,
    pub max_packets: u32,
    pub allow: Option<HashSet<u64>>,
    /// Rounds of downloads, each after the first opened by REPEAT INIT.
    pub max_rounds: u32,
    /// CRC failures of one packet before its file is given up.
    pub max_crc_retries: u32,
    /// PATH REQs in one ADAS round.
    pub max_adas_paths: u32,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            mode: Mode::Auto,
            metadata: false,
            metadata_timeout: Duration::from_secs(5),
            read_timeout: Duration::from_secs(120),
            files: None,
            max_packets: 512 * 1024,
            allow: None,
            max_rounds: 4,
            max_crc_retries: 8,
            max_adas_paths: 32,
        }
    }
}

/// Lets the session shorten the wait for a METADATA answer.
pub trait ReadTimeout {
    fn set_read_timeout(&self, timeout: Option<Duration>) -> io::Result<()>;
}

impl ReadTimeout for &TcpStream {
    fn set_read_timeout(&self, timeout: Option<Duration>) -> io::Result<()> {
        TcpStream::set_read_timeout(self, timeout)
    }
}

impl ReadTimeout for &[u8] {
    fn set_read_timeout(&self, _: Option<Duration>) -> io::Result<()> {
        Ok(())
    }
}

/// How a session ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum End {
    Completed,
    NotACamera(String),
    NotAllowed,
    /// The device sent an error STATUS that ends the session (0x11 makes it disconnect).
    DeviceStatus(u32),
    Refused(String),
    Protocol(String),
    LinkLost(String),
    TimedOut,
    GaveUp(String),
    Storage(String),
    Shutdown,
}

impl fmt::Display for End {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            End::Completed => write!(f, "completed"),
            End::NotACamera(why) => write!(f, "not a camera: {why}"),
            End::NotAllowed => write!(f, "IMEI not in the allow-list"),
            End::DeviceStatus(c) => write!(f, "device status 0x{c:02X} ({})", status_name(*c)),
            End::Refused(why) => write!(f, "refused: {why}"),
            End::Protocol(why) => write!(f, "protocol error: {why}"),
            End::LinkLost(why) => write!(f, "link lost: {why}"),
            End::TimedOut => write!(f, "timed out"),
            End::GaveUp(why) => write!(f, "gave up: {why}"),
            End::Storage(why) => write!(f, "storage error: {why}"),
            End::Shutdown => write!(f, "server shutting down"),
        }
    }
}

impl From<ReadError> for End {
    fn from(e: ReadError) -> Self {
        match e {
            ReadError::Closed { .. } | ReadError::Io(_) => End::LinkLost(e.to_string()),
            ReadError::TimedOut => End::TimedOut,
            ReadError::Codec(c) => End::Protocol(c.to_string()),
        }
    }
}

/// What the summary line reports.
#[derive(Debug, Clone)]
pub struct Summary {
    pub imei: Option<u64>,
    pub stored: Vec<Stored>,
    pub bytes: u64,
    pub crc_retries: u32,
    pub duration: Duration,
    pub end: End,
}

/// Everything a session needs from the server around it.
pub struct Context<'a> {
    pub config: &'a Config,
    pub storage: &'a Storage,
    pub shutdown: &'a AtomicBool,
    pub on_stored: &'a (dyn Fn(&Stored) + Sync),
    /// Told the IMEI once the camera is admitted.
    pub on_camera: &'a (dyn Fn(u64) + Sync),
}

pub struct Session<'a, R, W: Write> {
    ctx: &'a Context<'a>,
    reader: FrameReader<R>,
    link: Link<W>,
    remote: String,
    protocol_id: u16,
    imei: Option<u64>,
    stored: Vec<Stored>,
    crc_retries: u32,
    /// The flow chosen at the first init: ADAS (true) or DashCam.
    adas: Option<bool>,
}

/// The sending half, apart from the reader so a frame borrowed from the
/// reader's buffer can be answered.
struct Link<W> {
    writer: W,
    out: Vec<u8>,
    /// The IMEI once known, else the peer address: starts every log line.
    tag: String,
}

impl<W: Write> Link<W> {
    fn send(&mut self, frame: Frame<'_>) -> Result<(), End> {
        self.out.clear();
        frame.encode(&mut self.out);
        log::debug!(
            "[{}] -> {} {}",
            self.tag,
            frame.name(),
            codec::hex(&self.out)
        );
        self.writer
            .write_all(&self.out)
            .and_then(|_| self.writer.flush())
            .map_err(|e| End::LinkLost(format!("sending {}: {e}", frame.name())))
    }

    /// Ends on a bad peer: CLOSE (best effort, the link may be gone), then the reason.
    fn fail(&mut self, end: End) -> End {
        if !matches!(end, End::LinkLost(_)) {
            let _ = self.send(Frame::Close);
        }
        end
    }
}

impl<'a, R: Read + ReadTimeout, W: Write> Session<'a, R, W> {
    pub fn new(ctx: &'a Context<'a>, reader: R, writer: W, remote: String) -> Self {
        Session {
            ctx,
            reader: FrameReader::new(reader),
            link: Link {
                writer,
                out: Vec::with_capacity(64),
                tag: remote.clone(),
            },
            remote,
            protocol_id: 0,
            imei: None,
            stored: Vec::new(),
            crc_retries: 0,
            adas: None,
        }
    }

    /// Runs the whole session and logs its one-line summary.
    pub fn run(mut self) -> Summary {
        let began = Instant::now();
        let end = match self.drive() {
            Ok(()) => End::Completed,
            Err(end) => end,
        };
        let summary = Summary {
            imei: self.imei,
            bytes: self.stored.iter().map(|s| s.sidecar.size_bytes).sum(),
            stored: self.stored,
            crc_retries: self.crc_retries,
            duration: began.elapsed(),
            end,
        };
        let line = format!(
            "[{}] session end: {} file(s), {} bytes stored, {} CRC retries, {:.1}s, {}",
            self.link.tag,
            summary.stored.len(),
            summary.bytes,
            summary.crc_retries,
            summary.duration.as_secs_f64(),
            summary.end
        );
        match summary.end {
            End::Completed => log::info!("{line}"),
            _ => log::warn!("{line}"),
        }
        summary
    }

    fn read_init(&mut self) -> Result<InitPacket, End> {
        match self.reader.read_init() {
            Ok(init) => Ok(init),
            Err(ReadError::Codec(e)) => Err(self.link.fail(End::NotACamera(e.to_string()))),
            Err(ReadError::Closed { buffered }) => Err(End::LinkLost(format!(
                "connection closed after {buffered} of 16 bytes of the init packet"
            ))),
            Err(e) => Err(self.link.fail(e.into())),
        }
    }

    fn drive(&mut self) -> Result<(), End> {
        let mut init = self.read_init()?;
        log::debug!("[{}] <- INIT {}", self.remote, codec::hex(&init.encode()));
        self.imei = Some(init.imei);
        self.protocol_id = init.protocol_id;
        self.link.tag = init.imei.to_string();
        log::info!(
            "[{}] camera connected from {}: protocol {}, settings 0x{:08X}, files available: {}",
            self.link.tag,
            self.remote,
            init.protocol_id,
            init.settings,
            names(&init.available())
        );
        if let Some(allow) = &self.ctx.config.allow {
            if !allow.contains(&init.imei) {
                return Err(self.link.fail(End::NotAllowed));
            }
        }
        (self.ctx.on_camera)(init.imei);
        let mut seen_paths = HashSet::new();
        let mut repeated = false;
        for round in 1..=self.ctx.config.max_rounds {
            let got = self.round(round, &init, &mut seen_paths)?;
            if got == 0 {
                break;
            }
            if round == self.ctx.config.max_rounds {
                log::warn!(
                    "[{}] {round} download rounds (--max-rounds): not asking for more files",
                    self.link.tag
                );
                break;
            }
            self.link.send(Frame::RepeatInit)?;
            repeated = true;
            let again = self.read_init()?;
            if again.imei != init.imei {
                return Err(self.link.fail(End::Protocol(format!(
                    "IMEI changed to {} after REPEAT INIT",
                    again.imei
                ))));
            }
            log::info!(
                "[{}] init repeated: settings 0x{:08X}, files available: {}",
                self.link.tag,
                again.settings,
                names(&again.available())
            );
            init = again;
        }
        // COMPLETED does not work after a REPEAT INIT: CLOSE does.
        if repeated {
            self.link.send(Frame::Close)
        } else {
            self.link.send(Frame::Status { code: 0 })
        }
    }

    /// One round of downloads; returns how many files were stored.
    fn round(
        &mut self,
        round: u32,
        init: &InitPacket,
        seen: &mut HashSet<Vec<u8>>,
    ) -> Result<usize, End> {
        let cfg = self.ctx.config;
        // Auto picks the flow on the first init: a DashCam whose later init
        // reports nothing is done, not an ADAS camera.
        let adas = *self.adas.get_or_insert(match cfg.mode {
            Mode::Dashcam => false,
            Mode::Adas => true,
            Mode::Auto => init.available().is_empty() && cfg.files.is_none(),
        });
        let before = self.stored.len();
        if adas {
            for _ in 0..cfg.max_adas_paths {
                self.link.send(Frame::PathRequest)?;
                let Some(spec) = self.read_path()? else { break };
                if !seen.insert(spec.identifier.clone()) {
                    log::info!(
                        "[{}] PATH {} was already downloaded: round ends",
                        self.link.tag,
                        spec.display()
                    );
                    break;
                }
                self.fetch(&spec)?;
            }
        } else {
            let wanted = match &cfg.files {
                Some(list) if round == 1 => list.clone(),
                Some(list) => list
                    .iter()
                    .copied()
                    .filter(|k| init.available().contains(k))
                    .collect(),
                None => init.available(),
            };
            for kind in wanted {
                self.fetch(&FileSpec::dashcam(kind))?;
            }
        }
        Ok(self.stored.len() - before)
    }

    /// Reads the answer to PATH REQ. An empty path means no file to send.
    fn read_path(&mut self) -> Result<Option<FileSpec>, End> {
        let frame = self
            .reader
            .read_frame()
            .map_err(|e| self.link.fail(e.into()))?;
        let raw = match frame {
            Frame::Path { path } => path.to_vec(),
            Frame::Status { code } => {
                let end = device_status(&self.link.tag, code, "PATH REQ");
                return if code == 0x11 { Err(end) } else { Ok(None) };
            }
            f => {
                let what = format!("expected PATH, got {}", f.name());
                return Err(self.link.fail(End::Protocol(what)));
            }
        };
        if raw.iter().all(|&b| b == 0) {
            log::info!("[{}] camera has no ADAS file to send", self.link.tag);
            return Ok(None);
        }
        match FileSpec::adas(&raw) {
            Ok(spec) => {
                log::info!("[{}] ADAS path {}", self.link.tag, spec.display());
                Ok(Some(spec))
            }
            Err(why) => {
                let shown = String::from_utf8_lossy(&raw).escape_debug().to_string();
                Err(self
                    .link
                    .fail(End::Refused(format!("ADAS path \"{shown}\": {why}"))))
            }
        }
    }

    fn check_shutdown(&self) -> Result<(), End> {
        if self.ctx.shutdown.load(Ordering::Relaxed) {
            Err(End::Shutdown)
        } else {
            Ok(())
        }
    }
}

/// A STATUS from the device, logged by name. 0x11 makes the device
/// disconnect, so it ends the session; the others end only the file.
fn device_status(tag: &str, code: u32, during: &str) -> End {
    log::warn!(
        "[{tag}] device STATUS 0x{code:02X} during {during}: {}",
        status_name(code)
    );
    End::DeviceStatus(code)
}

fn names(kinds: &[FileKind]) -> String {
    if kinds.is_empty() {
        return "none".into();
    }
    kinds
        .iter()
        .map(|k| k.identifier())
        .collect::<Vec<_>>()
        .join(", ")
}
