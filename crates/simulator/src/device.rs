//! One simulated camera on one connection.

use std::fs::File;
use std::io::{self, BufReader, BufWriter, Read, Seek, SeekFrom, Write};
use std::net::{Shutdown, TcpStream};
use std::path::{Path, PathBuf};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::sync::Arc;
use std::thread;

use anyhow::{anyhow, bail, Context, Result};

use super::{unix_now, CrcMode, Rng, SimConfig, SimReport};
use crate::tls::SharedTls;
use dashcam_protocol::codec::metadata::encode;
use dashcam_protocol::codec::{
    crc16, Deframer, Family, FileKind, Frame, InitPacket, Limits, PATH_BIT,
};

mod stream;

mod metadata;

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
    Gone(String),
}

/// The camera's link: plain TCP, or TLS shared by the reading and writing threads.
#[derive(Clone)]
enum Wire {
    Plain(Arc<TcpStream>),
    Tls(SharedTls),
}

impl Wire {
    fn socket(&self) -> &TcpStream {
        match self {
            Wire::Plain(s) => s,
            Wire::Tls(t) => t.socket(),
        }
    }
}

impl Read for Wire {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            Wire::Plain(s) => (&**s).read(buf),
            Wire::Tls(t) => t.read(buf),
        }
    }
}

impl Write for Wire {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            Wire::Plain(s) => (&**s).write(buf),
            Wire::Tls(t) => t.write(buf),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        match self {
            Wire::Plain(s) => (&**s).flush(),
            Wire::Tls(t) => t.flush(),
        }
    }
}

fn reader_thread(mut stream: Wire, tx: mpsc::Sender<Cmd>) {
    let mut d = Deframer::new(Limits::SERVER);
    loop {
        loop {
            let cmd = match d.next_frame() {
                Ok(None) => break,
                Ok(Some(f)) => match f {
                    Frame::FileRequest { identifier } => Cmd::FileRequest(identifier.to_vec()),
                    Frame::MetadataRequest { identifier } => {
                        Cmd::MetadataRequest(identifier.to_vec())
                    }
                    Frame::Resume { offset } => Cmd::Resume(offset),
                    Frame::RepeatInit => Cmd::RepeatInit,
                    Frame::PathRequest => Cmd::PathRequest,
                    Frame::Close => Cmd::Close,
                    Frame::Status { code } => Cmd::Status(code),
                    other => Cmd::Gone(format!("server sent a device frame: {}", other.name())),
                },
                Err(e) => Cmd::Gone(format!("bad bytes from the server: {e}")),
            };
            let gone = matches!(cmd, Cmd::Gone(_));
            if tx.send(cmd).is_err() || gone {
                return;
            }
        }
        match stream.read(d.space(16 * 1024)) {
            Ok(0) => {
                let _ = tx.send(Cmd::Gone("server closed the link".into()));
                return;
            }
            Ok(n) => d.filled(n),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => {
                let _ = tx.send(Cmd::Gone(e.to_string()));
                return;
            }
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
    /// Reported by a settings bit (identifier flow) rather than by PATH.
    kind: Option<FileKind>,
    path: PathBuf,
    len: u64,
}

impl Offer {
    fn new(identifier: Vec<u8>, kind: Option<FileKind>, path: &Path) -> Result<Offer> {
        let len = std::fs::metadata(path)
            .with_context(|| format!("reading {}", path.display()))?
            .len();
        if len > u32::MAX as u64 {
            bail!("{} is too large for the protocol", path.display());
        }
        Ok(Offer {
            identifier,
            kind,
            path: path.to_path_buf(),
            len,
        })
    }

    fn name(&self) -> String {
        String::from_utf8_lossy(&self.identifier).into_owned()
    }

    fn packets(&self) -> u32 {
        self.len.div_ceil(1024) as u32
    }
}

struct Camera {
    cfg: SimConfig,
    out: BufWriter<Chopper<Wire>>,
    rx: Receiver<Cmd>,
    pending: Vec<Offer>,
    later: Vec<Offer>,
    report: SimReport,
    /// Offer index whose last byte went out; taken once the server moves on.
    sent_all: Option<usize>,
    /// The path answered to the last PATH REQ.
    offered_path: Option<Vec<u8>>,
    dropped: bool,
    spoiled: Vec<(Vec<u8>, u32)>,
    frame: Vec<u8>,
}

/// The path a DualCam file has on protocol >= 6.
fn v6_path(kind: FileKind, n: usize) -> Vec<u8> {
    let dir = if kind.is_front() {
        "dualcam_front"
    } else {
        "dualcam_rear"
    };
    let ext = if kind.is_video() { "h265" } else { "jpg" };
    format!("/mnt/sd/{dir}/{}_{n:04}.{ext}", kind.name()).into_bytes()
}

fn connect(cfg: &SimConfig) -> Result<TcpStream> {
    let Some(src) = cfg.source_ip else {
        return Ok(TcpStream::connect(&cfg.server)?);
    };
    use std::net::ToSocketAddrs;
    let to = cfg
        .server
        .to_socket_addrs()?
        .next()
        .ok_or_else(|| anyhow!("{} resolves to nothing", cfg.server))?;
    let s = socket2::Socket::new(
        socket2::Domain::for_address(to),
        socket2::Type::STREAM,
        None,
    )?;
    s.bind(&std::net::SocketAddr::new(src, 0).into())?;
    s.connect(&to.into())?;
    Ok(s.into())
}

/// Runs one camera session to its end.
pub fn run_camera(cfg: &SimConfig) -> Result<SimReport> {
    let v6 = cfg.protocol_id >= 6;
    let offer_kind = |k: FileKind, p: &Path, n: usize| {
        if v6 {
            Offer::new(v6_path(k, n), None, p)
        } else {
            Offer::new(k.identifier().as_bytes().to_vec(), Some(k), p)
        }
    };
    let mut pending = Vec::new();
    for (n, (k, p)) in cfg.files.iter().enumerate() {
        pending.push(offer_kind(*k, p, n)?);
    }
    for (id, p) in &cfg.paths {
        pending.push(Offer::new(id.clone(), None, p)?);
    }
    let mut later = Vec::new();
    for (n, (k, p)) in cfg.later_files.iter().enumerate() {
        later.push(offer_kind(*k, p, 1000 + n)?);
    }
    let stream =
        connect(cfg).with_context(|| format!("connecting to the server at {}", cfg.server))?;
    stream.set_nodelay(true)?;
    let stream = match &cfg.tls {
        None => Wire::Plain(Arc::new(stream)),
        Some(trust) => {
            let host = cfg
                .server
                .rsplit_once(':')
                .map_or(cfg.server.as_str(), |(h, _)| h)
                .trim_matches(['[', ']']);
            let tls = SharedTls::connect(stream, host, crate::tls::client_config(trust)?)
                .with_context(|| format!("TLS handshake with {}", cfg.server))?;
            Wire::Tls(tls)
        }
    };
    let (tx, rx) = mpsc::channel();
    let rs = stream.clone();
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
        offered_path: None,
        dropped: false,
        spoiled: Vec::new(),
        frame: Vec::with_capacity(70 * 1024),
    };
    let result = cam.serve();
    let _ = cam.out.flush();
    let _ = cam.out.get_ref().inner.socket().shutdown(Shutdown::Both);
    let _ = reader.join();
    result?;
    Ok(cam.report)
}

impl Camera {
    fn send(&mut self, f: Frame<'_>) -> Result<()> {
        self.frame.clear();
        f.encode(&mut self.frame)?;
        self.out.write_all(&self.frame)?;
        self.out.flush()?;
        Ok(())
    }

    fn send_init(&mut self) -> Result<()> {
        self.report.inits_sent += 1;
        if self.report.inits_sent == 2 {
            self.pending.append(&mut self.later);
        }
        let kinds: Vec<FileKind> = self.pending.iter().filter_map(|o| o.kind).collect();
        let path_bit = if self.pending.iter().any(|o| o.kind.is_none()) {
            (PATH_BIT as u32) << 24
        } else {
            0
        };
        let init = InitPacket {
            protocol_id: self.cfg.protocol_id,
            imei: self.cfg.imei,
            // A real device also sets the undocumented 0x40 bit.
            settings: InitPacket::settings_for(&kinds) | path_bit | 0x4000_0000,
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

    /// REPEAT INIT after the last byte: the server took the file. CLOSE (or a
    /// dropped link) right after it means the server did not store it.
    fn settle(&mut self, cmd: &Cmd) {
        if matches!(cmd, Cmd::Resume(_)) {
            return;
        }
        let taken = matches!(cmd, Cmd::RepeatInit | Cmd::Status(0));
        if let (true, Some(i)) = (taken, self.sent_all) {
            let offer = self.pending.remove(i);
            self.report.taken.push(offer.name());
        }
        self.sent_all = None;
    }

    /// The offer's flow counts packets (identifier flow on protocol <= 5).
    fn in_packets(&self, o: &Offer) -> bool {
        o.kind.is_some() && self.cfg.protocol_id <= 5
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
                            let o = &self.pending[i];
                            let total = if self.in_packets(o) {
                                o.packets()
                            } else {
                                o.len as u32
                            };
                            if total == 0 {
                                // Nothing to send: the server moves on, the file is done.
                                self.sent_all = Some(i);
                            }
                            self.send(Frame::Start { total, field: 0 })?;
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
                Cmd::Resume(r) => {
                    let Some(i) = current else {
                        bail!("RESUME {r} before any FILE REQ")
                    };
                    self.report.resumes.push((self.pending[i].name(), r));
                    if !self.stream_from(i, r)? {
                        return Ok(());
                    }
                }
                Cmd::RepeatInit => {
                    current = None;
                    self.send_init()?
                }
                Cmd::PathRequest => {
                    self.report.path_requests += 1;
                    let path = self
                        .pending
                        .iter()
                        .find(|o| o.kind.is_none())
                        .map(|o| o.identifier.clone())
                        .unwrap_or_default();
                    self.offered_path = Some(path.clone());
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
                Cmd::Gone(why) => {
                    self.report.ended_by = format!("link ended: {why}");
                    return Ok(());
                }
            }
        }
    }
}

/// The CRC from 0 of a file's first `len` bytes: where a chained device starts.
fn prefix_crc(file: &mut BufReader<File>, len: u64) -> Result<u16> {
    file.seek(SeekFrom::Start(0))?;
    let mut crc = 0u16;
    let mut buf = [0u8; 8192];
    let mut left = len;
    while left > 0 {
        let n = left.min(buf.len() as u64) as usize;
        file.read_exact(&mut buf[..n])
            .map_err(|e| anyhow!("reading the file's first {len} bytes: {e}"))?;
        crc = crc16(crc, &buf[..n]);
        left -= n as u64;
    }
    Ok(crc)
}
