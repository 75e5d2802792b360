//! One simulated camera on one connection.

use std::fs::File;
use std::io::{self, BufReader, BufWriter, Read, Seek, SeekFrom, Write};
use std::net::{Shutdown, TcpStream};
use std::path::{Path, PathBuf};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::thread;

use anyhow::{anyhow, bail, Context, Result};

use super::{Rng, SimConfig, SimReport};
use crate::codec::{crc16, FileKind, Frame, InitPacket, Metadata};
use crate::session::FrameReader;

/// A command from the server, owned so it can cross from the reader thread.
#[derive(Debug)]
enum Cmd {
    FileRequest(Vec<u8>),
    MetadataRequest(Vec<u8>),
    Resume(u32),
    RepeatInit,
    PathRequest,
    Close,
    Status(u32),
    Unexpected(String),
    Gone(String),
}

fn reader_thread(stream: TcpStream, tx: mpsc::Sender<Cmd>) {
    let mut r = FrameReader::new(stream);
    loop {
        let cmd = match r.read_frame() {
            Ok(Frame::FileRequest { identifier }) => Cmd::FileRequest(identifier.to_vec()),
            Ok(Frame::MetadataRequest { identifier }) => Cmd::MetadataRequest(identifier.to_vec()),
            Ok(Frame::Resume { offset }) => Cmd::Resume(offset),
            Ok(Frame::RepeatInit) => Cmd::RepeatInit,
            Ok(Frame::PathRequest) => Cmd::PathRequest,
            Ok(Frame::Close) => Cmd::Close,
            Ok(Frame::Status { code }) => Cmd::Status(code),
            Ok(f) => Cmd::Unexpected(f.name().to_string()),
            Err(e) => {
                let _ = tx.send(Cmd::Gone(e.to_string()));
                return;
            }
        };
        if tx.send(cmd).is_err() {
            return;
        }
    }
}

/// Splits writes into random small pieces, as a modem might.
struct Chopper<W> {
    inner: W,
    max: usize,
    rng: Rng,
}

impl<W: Write> Write for Chopper<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        if self.max == 0 {
            return self.inner.write(buf);
        }
        let n = (1 + self.rng.below(self.max as u64) as usize).min(buf.len());
        self.inner.write_all(&buf[..n])?;
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

struct Offer {
    identifier: Vec<u8>,
    kind: Option<FileKind>,
    path: PathBuf,
    packets: u32,
    len: u64,
}

impl Offer {
    fn new(identifier: Vec<u8>, kind: Option<FileKind>, path: &Path) -> Result<Offer> {
        let len = std::fs::metadata(path)
            .with_context(|| format!("reading {}", path.display()))?
            .len();
        if len == 0 {
            bail!(
                "{} is empty: a camera cannot send an empty file",
                path.display()
            );
        }
        let packets = u32::try_from(len.div_ceil(1024))
            .map_err(|_| anyhow!("{} is too large for the protocol", path.display()))?;
        Ok(Offer {
            identifier,
            kind,
            path: path.to_path_buf(),
            packets,
            len,
        })
    }

    fn name(&self) -> String {
        String::from_utf8_lossy(&self.identifier).into_owned()
    }
}

struct Camera {
    cfg: SimConfig,
    out: BufWriter<Chopper<TcpStream>>,
    rx: Receiver<Cmd>,
    pending: Vec<Offer>,
    later: Vec<Offer>,
    report: SimReport,
    /// Offer index whose last packet went out; taken once the server moves on.
    sent_all: Option<usize>,
    dropped: bool,
    spoiled: Vec<u32>,
    init_count: u32,
}

/// Runs one camera session to its end.
pub fn run_camera(cfg: &SimConfig) -> Result<SimReport> {
    let mut pending = Vec::new();
    for (k, p) in &cfg.files {
        pending.push(Offer::new(k.identifier().as_bytes().to_vec(), Some(*k), p)?);
    }
    for (id, p) in &cfg.adas {
        pending.push(Offer::new(id.clone(), None, p)?);
    }
    let mut later = Vec::new();
    for (k, p) in &cfg.later_files {
        later.push(Offer::new(k.identifier().as_bytes().to_vec(), Some(*k), p)?);
    }
    let stream = TcpStream::connect(&cfg.server)
        .with_context(|| format!("connecting to the server at {}", cfg.server))?;
    stream.set_nodelay(true)?;
    let (tx, rx) = mpsc::channel();
    let rs = stream.try_clone()?;
    let reader = thread::Builder::new()
        .stack_size(128 * 1024)
        .spawn(move || reader_thread(rs, tx))?;
    let chop = Chopper {
        inner: stream,
        max: cfg.max_write,
        rng: Rng::new(cfg.seed),
    };
    let mut cam = Camera {
        cfg: cfg.clone(),
        out: BufWriter::with_capacity(64 * 1024, chop),
        rx,
        pending,
        later,
        report: SimReport::default(),
        sent_all: None,
        dropped: false,
        spoiled: Vec::new(),
        init_count: 0,
    };
    let result = cam.serve();
    let _ = cam.out.get_ref().inner.shutdown(Shutdown::Both);
    let _ = reader.join();
    result?;
    Ok(cam.report)
}

impl Camera {
    fn send(&mut self, f: Frame<'_>) -> Result<()> {
        let mut v = Vec::with_capacity(16);
        f.encode(&mut v);
        self.out.write_all(&v)?;
        self.out.flush()?;
        Ok(())
    }

    fn send_init(&mut self) -> Result<()> {
        self.init_count += 1;
        if self.init_count == 2 {
            self.pending.append(&mut self.later);
        }
        let kinds: Vec<FileKind> = self.pending.iter().filter_map(|o| o.kind).collect();
        let init = InitPacket {
            protocol_id: self.cfg.protocol_id,
            imei: self.cfg.imei,
            // A real device also sets the undocumented 0x40 bit.
            settings: InitPacket::settings_for(&kinds) | 0x4000_0000,
        };
        self.out.write_all(&init.encode())?;
        self.out.flush()?;
        Ok(())
    }

    fn next(&mut self) -> Result<Cmd> {
        match self.rx.recv_timeout(self.cfg.timeout) {
            Ok(c) => Ok(c),
            Err(RecvTimeoutError::Timeout) => bail!("server silent for {:?}", self.cfg.timeout),
            Err(RecvTimeoutError::Disconnected) => Ok(Cmd::Gone("reader ended".into())),
        }
    }

    /// A command other than RESUME after the last packet: the server took the file.
    fn settle(&mut self, cmd: &Cmd) {
        if matches!(cmd, Cmd::Resume(_)) {
            return;
        }
        if let Some(i) = self.sent_all.take() {
            let offer = self.pending.remove(i);
            self.report.taken.push(offer.name());
        }
    }

    fn serve(&mut self) -> Result<()> {
        self.send_init()?;
        let mut current: Option<usize> = None;
        loop {
            let cmd = self.next()?;
            self.settle(&cmd);
            match cmd {
                Cmd::FileRequest(id) => {
                    match self.pending.iter().position(|o| o.identifier == id) {
                        Some(i) => {
                            current = Some(i);
                            let packets = self.pending[i].packets;
                            self.send(Frame::Start { packets })?;
                        }
                        None => {
                            // What a camera does for a file it does not have: 0x11, then hang up.
                            self.send(Frame::Status { code: 0x11 })?;
                            self.report.ended_by = format!(
                                "refused {} with STATUS 0x11",
                                String::from_utf8_lossy(&id)
                            );
                            return Ok(());
                        }
                    }
                }
                Cmd::MetadataRequest(id) => {
                    self.report.metadata_requests += 1;
                    if self.cfg.metadata {
                        let payload = self.metadata_for(&id);
                        self.send(Frame::Metadata { payload: &payload })?;
                    }
                }
                Cmd::Resume(k) => {
                    let Some(i) = current else {
                        bail!("RESUME {k} before any FILE REQ")
                    };
                    self.report.resumes.push((self.pending[i].name(), k));
                    if !self.stream_from(i, k)? {
                        return Ok(());
                    }
                }
                Cmd::RepeatInit => self.send_init()?,
                Cmd::PathRequest => {
                    self.report.path_requests += 1;
                    let path = self
                        .pending
                        .iter()
                        .find(|o| o.kind.is_none())
                        .map(|o| o.identifier.clone())
                        .unwrap_or_default();
                    self.send(Frame::Path { path: &path })?;
                }
                Cmd::Close | Cmd::Status(0) => {
                    self.report.ended_by = if matches!(cmd, Cmd::Close) {
                        "CLOSE"
                    } else {
                        "COMPLETED"
                    }
                    .into();
                    self.report.complete = self.pending.is_empty();
                    return Ok(());
                }
                Cmd::Status(code) => bail!("server sent STATUS 0x{code:02X}"),
                Cmd::Unexpected(name) => bail!("server sent a device-to-server frame: {name}"),
                Cmd::Gone(why) => {
                    self.report.ended_by = format!("link ended: {why}");
                    return Ok(());
                }
            }
        }
    }

    /// SYNC, then DATA from packet `k`, restarting wherever a RESUME asks.
    /// Returns false when the camera dropped the link on purpose.
    fn stream_from(&mut self, i: usize, mut k: u32) -> Result<bool> {
        let (packets, len) = (self.pending[i].packets, self.pending[i].len);
        'sync: loop {
            if k < 1 || k > packets {
                bail!("RESUME {k} outside 1..={packets}");
            }
            self.send(Frame::Sync { offset: k })?;
            let mut file = BufReader::with_capacity(64 * 1024, File::open(&self.pending[i].path)?);
            let start = (k as u64 - 1) * 1024;
            // The CRC chain up to packet k-1 is the CRC of the file's first bytes.
            let mut crc = 0u16;
            let mut buf = [0u8; 1024];
            let mut pos = 0u64;
            while pos < start {
                let n = (start - pos).min(1024) as usize;
                file.read_exact(&mut buf[..n])?;
                crc = crc16(crc, &buf[..n]);
                pos += n as u64;
            }
            file.seek(SeekFrom::Start(start))?;
            let mut frame = [0u8; 1030];
            let mut until_poll = 0u32;
            while k <= packets {
                let n = (len - (k as u64 - 1) * 1024).min(1024) as usize;
                file.read_exact(&mut buf[..n])?;
                crc = crc16(crc, &buf[..n]);
                let mut sent_crc = crc;
                if self.cfg.corrupt_packets.contains(&k) && !self.spoiled.contains(&k) {
                    self.spoiled.push(k);
                    sent_crc ^= 0xFFFF;
                    // Keep going a few packets: they are in flight when the RESUME comes.
                    until_poll = 4;
                }
                frame[..2].copy_from_slice(&4u16.to_be_bytes());
                frame[2..4].copy_from_slice(&(n as u16 + 2).to_be_bytes());
                frame[4..4 + n].copy_from_slice(&buf[..n]);
                frame[4 + n..6 + n].copy_from_slice(&sent_crc.to_be_bytes());
                self.out.write_all(&frame[..6 + n])?;
                self.report.bytes_sent += n as u64;
                if self.cfg.drop_after == Some(k) && !self.dropped {
                    self.dropped = true;
                    self.out.flush()?;
                    self.report.ended_by = format!("dropped the link after packet {k}");
                    return Ok(false);
                }
                k += 1;
                if until_poll > 0 {
                    until_poll -= 1;
                    continue;
                }
                if let Ok(cmd) = self.rx.try_recv() {
                    match cmd {
                        Cmd::Resume(j) => {
                            self.report.resumes.push((self.pending[i].name(), j));
                            k = j;
                            continue 'sync;
                        }
                        other => bail!("server sent {other:?} in the middle of a file"),
                    }
                }
            }
            self.out.flush()?;
            self.sent_all = Some(i);
            return Ok(true);
        }
    }

    fn metadata_for(&self, id: &[u8]) -> Vec<u8> {
        let kind = FileKind::from_identifier(id);
        let now = chrono::Utc::now().timestamp_millis() as u64;
        Metadata {
            command_version: Some(1),
            file_type: kind.map(|k| k.bit()),
            timestamp_ms: Some(now - now % 1000),
            trigger: Some(4),
            duration_s: Some(if kind.is_some_and(|k| k.is_video()) {
                10
            } else {
                0
            }),
            frame_rate: Some(self.cfg.frame_rate),
            timezone_minutes: Some(120),
            latitude: Some(54.7004183),
            longitude: Some(25.2797),
            trigger_timestamp_ms: Some(now - now % 1000),
            extra: Vec::new(),
        }
        .encode()
    }
}
