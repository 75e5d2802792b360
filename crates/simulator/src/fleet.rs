//! A fleet of slow cameras (`simulate --cameras N --rate B --ramp S`): a few
//! threads, each driving many non-blocking sockets with mio, every camera
//! paced to a byte rate like a cellular link. Built on the codec alone. Each
//! camera offers one DualCam file in the identifier flow (CRC restarted after
//! every SYNC, as current firmware does), and counts as stored when the server
//! answers its last packet with REPEAT INIT, then CLOSEs an init offering nothing.

use std::fmt;
use std::io::{self, Read, Write};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use mio::net::TcpStream;
use mio::{Events, Interest, Poll, Token};

use dashcam_protocol::codec::metadata::encode;
use dashcam_protocol::codec::{crc16, Deframer, FileKind, Frame, InitPacket, Limits};

/// How a fleet run is set up.
#[derive(Debug, Clone)]
pub struct FleetConfig {
    pub server: SocketAddr,
    pub first_imei: u64,
    pub cameras: usize,
    /// File bytes per second, per camera.
    pub rate: u64,
    /// Cameras connect evenly spread over this.
    pub ramp: Duration,
    /// Give up on a camera silent this long.
    pub timeout: Duration,
    pub kind: FileKind,
    pub threads: usize,
}

/// What the fleet saw.
#[derive(Debug, Clone, Default)]
pub struct FleetReport {
    pub cameras: usize,
    pub stored: usize,
    pub bytes: u64,
    pub failures: Vec<(u64, String)>,
    /// Connect to CLOSE, per camera that finished, sorted.
    pub times: Vec<Duration>,
    pub wall: Duration,
    pub peak_connected: usize,
}

impl FleetReport {
    fn pct(&self, p: f64) -> Duration {
        if self.times.is_empty() {
            return Duration::ZERO;
        }
        let i = ((self.times.len() as f64 - 1.0) * p).round() as usize;
        self.times[i]
    }
}

impl fmt::Display for FleetReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "cameras {}, files stored {}, bytes {}, failures {}, camera time p50 {:.1}s p99 {:.1}s, wall {:.1}s, peak connected {}",
            self.cameras,
            self.stored,
            self.bytes,
            self.failures.len(),
            self.pct(0.5).as_secs_f64(),
            self.pct(0.99).as_secs_f64(),
            self.wall.as_secs_f64(),
            self.peak_connected
        )
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    Waiting,
    Connecting,
    Commands,
    Sending,
    SentAll,
    Taken,
    Done,
    Failed,
}

struct Cam {
    imei: u64,
    at: Instant,
    sock: Option<TcpStream>,
    phase: Phase,
    d: Deframer,
    out: Vec<u8>,
    out_pos: usize,
    pos: u64,
    crc: u16,
    allowance: f64,
    last_rx: Instant,
    /// The last byte either way: the silence limit counts from here, so a
    /// paced transfer longer than --timeout is not taken for a silent server.
    last_activity: Instant,
    began: Option<Instant>,
    why: String,
    inits: u32,
}

const TICK: Duration = Duration::from_millis(50);

impl Cam {
    fn new(imei: u64, at: Instant) -> Cam {
        Cam {
            imei,
            at,
            sock: None,
            phase: Phase::Waiting,
            d: Deframer::new(Limits::SERVER),
            out: Vec::new(),
            out_pos: 0,
            pos: 0,
            crc: 0,
            allowance: 0.0,
            last_rx: at,
            last_activity: at,
            began: None,
            why: String::new(),
            inits: 0,
        }
    }
}

struct Driver<'a> {
    cfg: &'a FleetConfig,
    file: &'a [u8],
    cams: Vec<Cam>,
    poll: Poll,
    sent: u64,
    connected: usize,
    peak: usize,
    /// The metadata time of the fleet's file.
    time_s: u64,
}

impl Driver<'_> {
    fn queue(&mut self, i: usize, f: Frame<'_>) {
        // The fleet's frames are small: they always fit.
        let _ = f.encode(&mut self.cams[i].out);
    }

    fn init(&mut self, i: usize) {
        let c = &mut self.cams[i];
        c.inits += 1;
        let settings = if c.inits == 1 {
            InitPacket::settings_for(&[self.cfg.kind]) | 0x4000_0000
        } else {
            0x4000_0000
        };
        let init = InitPacket {
            protocol_id: 5,
            imei: c.imei,
            settings,
        };
        c.out.extend_from_slice(&init.encode());
    }

    fn fail(&mut self, i: usize, why: String) {
        let c = &mut self.cams[i];
        if matches!(c.phase, Phase::Done | Phase::Failed) {
            return;
        }
        c.phase = Phase::Failed;
        c.why = why;
        if let Some(mut s) = c.sock.take() {
            let _ = self.poll.registry().deregister(&mut s);
            self.connected -= 1;
        }
    }

    fn finish(&mut self, i: usize) {
        let c = &mut self.cams[i];
        c.phase = Phase::Done;
        if let Some(mut s) = c.sock.take() {
            let _ = self.poll.registry().deregister(&mut s);
            self.connected -= 1;
        }
    }

    fn flush(&mut self, i: usize) {
        let c = &mut self.cams[i];
        let Some(s) = c.sock.as_mut() else { return };
        while c.out_pos < c.out.len() {
            match s.write(&c.out[c.out_pos..]) {
                Ok(0) => break,
                Ok(n) => c.out_pos += n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return self.fail(i, format!("write: {e}")),
            }
        }
        if c.out_pos == c.out.len() {
            c.out.clear();
            c.out_pos = 0;
        }
    }

    fn readable(&mut self, i: usize, now: Instant) {
        // One piece (over 80 lines): one camera's answer to each server frame,
        // in the fleet's event loop, on that camera's state.
        let mut eof = false;
        loop {
            let c = &mut self.cams[i];
            let Some(s) = c.sock.as_mut() else { return };
            match s.read(c.d.space(2048)) {
                Ok(0) => {
                    eof = true;
                    break;
                }
                Ok(n) => {
                    c.d.filled(n);
                    c.last_rx = now;
                    c.last_activity = now;
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return self.fail(i, format!("read: {e}")),
            }
        }
        loop {
            let cmd = match self.cams[i].d.next_frame() {
                Ok(Some(f)) => match f {
                    Frame::FileRequest { .. } => 1,
                    Frame::Resume { offset } => 100 + offset as u64,
                    Frame::RepeatInit => 2,
                    Frame::Close => 3,
                    Frame::MetadataRequest { .. } => 4,
                    Frame::PathRequest => 5,
                    other => {
                        let why = format!("unexpected {}", other.name());
                        return self.fail(i, why);
                    }
                },
                Ok(None) => {
                    if eof {
                        let why =
                            format!("server closed the link in phase {:?}", self.cams[i].phase);
                        return self.fail(i, why);
                    }
                    break;
                }
                Err(e) => return self.fail(i, format!("bad bytes: {e}")),
            };
            match cmd {
                1 => {
                    let total = self.file.len().div_ceil(1024) as u32;
                    self.queue(i, Frame::Start { total, field: 0 });
                    self.cams[i].phase = Phase::Commands;
                }
                4 => {
                    // One time for the whole run: a camera that reconnects
                    // offers the same file with the same metadata.
                    let now_s = self.time_s;
                    let m = encode::dualcam(
                        self.cfg.kind.bit(),
                        now_s * 1000,
                        3,
                        10,
                        25,
                        0,
                        54.7,
                        25.3,
                    );
                    self.queue(i, Frame::Metadata { payload: &m });
                }
                5 => self.queue(i, Frame::Path { path: b"" }),
                2 => {
                    let c = &mut self.cams[i];
                    if c.phase == Phase::SentAll {
                        c.phase = Phase::Taken;
                    }
                    self.init(i);
                }
                3 => {
                    if self.cams[i].phase == Phase::Taken {
                        self.finish(i);
                    } else {
                        let why = format!("CLOSE in phase {:?}", self.cams[i].phase);
                        self.fail(i, why);
                    }
                    return;
                }
                r => {
                    let r = (r - 100) as u32;
                    let c = &mut self.cams[i];
                    c.pos = (r.max(1) as u64 - 1) * 1024;
                    c.crc = 0;
                    c.phase = Phase::Sending;
                    c.began.get_or_insert(now);
                    // Devices answer RESUME 0 with SYNC 1.
                    self.queue(i, Frame::Sync { offset: r.max(1) });
                }
            }
        }
        self.flush(i);
    }

    /// Paced sending: each camera's allowance grows at its rate.
    fn tick(&mut self, i: usize, dt: f64) {
        let rate = self.cfg.rate as f64;
        let c = &mut self.cams[i];
        if c.phase != Phase::Sending {
            return;
        }
        c.allowance = (c.allowance + rate * dt).min(rate * 0.5 + 1024.0);
        let len = self.file.len() as u64;
        while c.pos < len && c.out.len() < 64 * 1024 {
            let n = (len - c.pos).min(1024) as usize;
            if c.allowance < n as f64 {
                break;
            }
            let chunk = &self.file[c.pos as usize..c.pos as usize + n];
            c.crc = crc16(c.crc, chunk);
            Frame::Data {
                payload: chunk,
                crc: c.crc,
            }
            .encode(&mut c.out)
            .expect("1 KiB of DATA fits a frame");
            c.pos += n as u64;
            c.allowance -= n as f64;
            c.last_activity = Instant::now();
            self.sent += n as u64;
        }
        if c.pos >= len {
            c.phase = Phase::SentAll;
        }
        self.flush(i);
    }

    fn connect(&mut self, i: usize, now: Instant) {
        match TcpStream::connect(self.cfg.server) {
            Ok(mut s) => {
                let _ = s.set_nodelay(true);
                if let Err(e) = self.poll.registry().register(
                    &mut s,
                    Token(i),
                    Interest::READABLE | Interest::WRITABLE,
                ) {
                    return self.fail(i, format!("register: {e}"));
                }
                let c = &mut self.cams[i];
                c.sock = Some(s);
                c.phase = Phase::Connecting;
                c.last_rx = now;
                c.last_activity = now;
                c.at = now;
                self.connected += 1;
                self.peak = self.peak.max(self.connected);
                self.init(i);
            }
            Err(e) => self.fail(i, format!("connect: {e}")),
        }
    }
}

fn run_share(cfg: &FleetConfig, file: &[u8], imeis: Vec<(u64, Instant)>) -> (Vec<Cam>, u64, usize) {
    let cams: Vec<Cam> = imeis
        .into_iter()
        .map(|(imei, at)| Cam::new(imei, at))
        .collect();
    let poll = match Poll::new() {
        Ok(p) => p,
        Err(e) => {
            let mut cams = cams;
            for c in &mut cams {
                c.phase = Phase::Failed;
                c.why = format!("poll: {e}");
            }
            return (cams, 0, 0);
        }
    };
    let mut d = Driver {
        cfg,
        file,
        cams,
        poll,
        sent: 0,
        connected: 0,
        peak: 0,
        time_s: crate::unix_now(),
    };
    let mut events = Events::with_capacity(1024);
    let mut last_tick = Instant::now();
    let mut next_connect = 0;
    loop {
        let now = Instant::now();
        while next_connect < d.cams.len() && d.cams[next_connect].at <= now {
            d.connect(next_connect, now);
            next_connect += 1;
        }
        if next_connect == d.cams.len()
            && d.cams
                .iter()
                .all(|c| matches!(c.phase, Phase::Done | Phase::Failed))
        {
            break;
        }
        let wait = TICK.saturating_sub(now - last_tick);
        if d.poll.poll(&mut events, Some(wait)).is_err() {
            continue;
        }
        let now = Instant::now();
        for ev in events.iter() {
            let i = ev.token().0;
            if ev.is_readable() || ev.is_read_closed() || ev.is_error() {
                d.readable(i, now);
            }
            if ev.is_writable() {
                d.flush(i);
            }
        }
        if now - last_tick >= TICK {
            let dt = (now - last_tick).as_secs_f64();
            last_tick = now;
            for i in 0..d.cams.len() {
                d.tick(i, dt);
                let c = &d.cams[i];
                if c.sock.is_some() && now - c.last_activity > cfg.timeout {
                    let why = format!("server silent for {:?} in phase {:?}", cfg.timeout, c.phase);
                    d.fail(i, why);
                }
            }
        }
    }
    (d.cams, d.sent, d.peak)
}

/// Runs the fleet to its end (the caller raises the open-file limit first).
pub fn run_fleet(cfg: &FleetConfig, file: Vec<u8>) -> FleetReport {
    let began = Instant::now();
    let file = Arc::new(file);
    let threads = cfg.threads.clamp(1, 64);
    let mut shares: Vec<Vec<(u64, Instant)>> = vec![Vec::new(); threads];
    for i in 0..cfg.cameras {
        let at = began + cfg.ramp.mul_f64(i as f64 / cfg.cameras.max(1) as f64);
        shares[i % threads].push((cfg.first_imei + i as u64, at));
    }
    let handles: Vec<_> = shares
        .into_iter()
        .map(|share| {
            let cfg = cfg.clone();
            let file = file.clone();
            std::thread::spawn(move || run_share(&cfg, &file, share))
        })
        .collect();
    let mut report = FleetReport {
        cameras: cfg.cameras,
        ..FleetReport::default()
    };
    for h in handles {
        let Ok((cams, sent, peak)) = h.join() else {
            report.failures.push((0, "a fleet thread panicked".into()));
            continue;
        };
        report.bytes += sent;
        report.peak_connected += peak;
        for c in cams {
            match c.phase {
                Phase::Done => {
                    report.stored += 1;
                    report.times.push(c.last_rx.saturating_duration_since(c.at));
                }
                _ => report.failures.push((c.imei, c.why)),
            }
        }
    }
    report.times.sort();
    report.wall = began.elapsed();
    report
}
