//! Helpers shared by the loopback tests: a server on an ephemeral port in a
//! temporary folder, test files, and a look at what landed on disk.
#![allow(dead_code)]

pub mod procs;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::sync::mpsc::Receiver;
use std::thread::JoinHandle;
use std::time::Duration;

use dashcam_server::codec::{FileKind, Frame, InitPacket};
use dashcam_server::net::driver::{self, Summary};
use dashcam_server::net::server::{Server, ServerConfig, StopHandle};
use dashcam_server::session;
use dashcam_server::simulator::SimConfig;
use dashcam_server::storage::Sidecar;
use dashcam_server::storage::Storage;

/// Every test runs with logging at `trace`: each log line's arguments are
/// evaluated (a panic hiding in one shows), then dropped, or printed to
/// stderr with `DASHCAM_TEST_LOG=1`.
struct EveryLine {
    print: bool,
}

impl log::Log for EveryLine {
    fn enabled(&self, _: &log::Metadata<'_>) -> bool {
        true
    }

    fn log(&self, record: &log::Record<'_>) {
        let line = format!("{} {}", record.level(), record.args());
        if self.print {
            eprintln!("{line}");
        }
    }

    fn flush(&self) {}
}

pub fn trace_logging() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        let print = std::env::var_os("DASHCAM_TEST_LOG").is_some_and(|v| v == "1");
        if log::set_boxed_logger(Box::new(EveryLine { print })).is_ok() {
            log::set_max_level(log::LevelFilter::Trace);
        }
    });
}

pub struct TestServer {
    pub addr: SocketAddr,
    pub dir: PathBuf,
    pub stop: StopHandle,
    pub summaries: Receiver<Summary>,
    thread: Option<JoinHandle<anyhow::Result<()>>>,
}

pub fn config(dir: &Path) -> ServerConfig {
    ServerConfig {
        bind: "127.0.0.1".into(),
        port: 0,
        output_dir: dir.to_path_buf(),
        session: session::Config {
            read_timeout: Duration::from_secs(20),
            ..session::Config::default()
        },
        storage: dashcam_server::storage::StorageConfig {
            partial_max_age: Duration::from_secs(3600),
            min_free_bytes: 0,
            ..Default::default()
        },
        max_connections: Some(1024),
        max_per_ip: 1024,
        tls: None,
        tls_port: None,
        proxy_protocol: false,
        trusted_proxies: Vec::new(),
    }
}

pub fn start_with(cfg: ServerConfig) -> TestServer {
    start_server(Server::bind(cfg).expect("bind"))
}

/// Runs a server built by the test (with hooks) on a thread.
pub fn start_server(mut server: Server) -> TestServer {
    trace_logging();
    let dir = server.output_dir().to_path_buf();
    let summaries = server.summaries();
    let addr = server.local_addr();
    let stop = server.stop_handle();
    let thread = Some(std::thread::spawn(move || server.run()));
    TestServer {
        addr,
        dir,
        stop,
        summaries,
        thread,
    }
}

pub fn start(dir: &Path, tweak: impl FnOnce(&mut ServerConfig)) -> TestServer {
    let mut cfg = config(dir);
    tweak(&mut cfg);
    start_with(cfg)
}

/// Waits until `cond` holds (at most 20 s): for something observable, never a fixed time.
pub fn wait_for(what: &str, mut cond: impl FnMut() -> bool) {
    let began = std::time::Instant::now();
    while !cond() {
        assert!(
            began.elapsed() < Duration::from_secs(20),
            "waited 20 s for {what}"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
}

impl TestServer {
    /// Connections the server holds now.
    pub fn connections(&self) -> usize {
        self.stop.connections()
    }

    pub fn sim(&self, imei: u64) -> SimConfig {
        let mut c = SimConfig::new(self.addr.to_string(), imei);
        c.timeout = Duration::from_secs(20);
        c
    }

    /// The next session summary (sessions end in any order).
    pub fn summary(&self) -> Summary {
        self.summaries
            .recv_timeout(Duration::from_secs(30))
            .expect("a session summary")
    }

    pub fn shutdown(mut self) {
        self.stop.stop();
        if let Some(t) = self.thread.take() {
            t.join().unwrap().unwrap();
        }
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        self.stop.stop();
    }
}

/// Deterministic bytes, different per seed, that are not a simple repetition.
pub fn content(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

pub fn write_file(dir: &Path, name: &str, bytes: &[u8]) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, bytes).unwrap();
    p
}

/// Finished media files (not sidecars) in a camera's folder, sorted. Not
/// a sidecar being rewritten (`X.json.tmp`, there for a moment while an
/// uploader or the converter updates it).
pub fn media(out: &Path, imei: u64) -> Vec<PathBuf> {
    let Ok(rd) = std::fs::read_dir(out.join(imei.to_string())) else {
        return Vec::new();
    };
    let mut v: Vec<PathBuf> = rd
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.is_file() && p.extension().is_some_and(|e| e != "json" && e != "tmp"))
        .collect();
    v.sort();
    v
}

pub fn sidecar_of(media: &Path) -> Sidecar {
    let text = std::fs::read_to_string(media.with_extension("json")).expect("sidecar");
    serde_json::from_str(&text).expect("sidecar JSON")
}

/// The sidecar as it is on disk: what a user's script reads.
pub fn sidecar_json(media: &Path) -> serde_json::Value {
    let text = std::fs::read_to_string(media.with_extension("json")).expect("sidecar");
    serde_json::from_str(&text).expect("sidecar JSON")
}

/// Every regular file under `dir`, recursively.
pub fn all_files(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).into_iter().flatten().flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
            } else {
                out.push(p);
            }
        }
    }
    out.sort();
    out
}

pub fn kind_file(
    dir: &Path,
    kind: FileKind,
    len: usize,
    seed: u64,
) -> (FileKind, PathBuf, Vec<u8>) {
    let bytes = content(len, seed);
    let p = write_file(dir, &format!("{}-{seed}.bin", kind.name()), &bytes);
    (kind, p, bytes)
}

/// A hand-driven camera for hostile and edge-case input.
pub struct Raw {
    pub s: TcpStream,
}

impl Raw {
    pub fn connect(addr: SocketAddr) -> Raw {
        let s = TcpStream::connect(addr).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
        s.set_nodelay(true).unwrap();
        Raw { s }
    }

    pub fn send(&mut self, bytes: &[u8]) {
        // The server may already have hung up: that is fine for hostile input.
        let _ = self.s.write_all(bytes);
    }

    pub fn init(&mut self, imei: u64, kinds: &[FileKind]) {
        let init = InitPacket {
            protocol_id: 5,
            imei,
            settings: InitPacket::settings_for(kinds),
        };
        self.send(&init.encode());
    }

    pub fn init_settings(&mut self, imei: u64, settings: u32) {
        let init = InitPacket {
            protocol_id: 5,
            imei,
            settings,
        };
        self.send(&init.encode());
    }

    pub fn frame(&mut self, f: Frame<'_>) {
        self.send(&f.to_vec());
    }

    /// Reads exactly `n` bytes.
    pub fn expect(&mut self, n: usize) -> Vec<u8> {
        let mut b = vec![0; n];
        self.s.read_exact(&mut b).expect("bytes from the server");
        b
    }

    /// Everything the server sends until it closes the link.
    pub fn rest(&mut self) -> Vec<u8> {
        let mut v = Vec::new();
        let _ = self.s.read_to_end(&mut v);
        v
    }
}

/// One server session over in-memory bytes, storing under `dir`: what it
/// reports, every byte it sent back, and each file as it was stored.
pub fn session_over_bytes(
    cfg: &session::Config,
    dir: &Path,
    input: &[u8],
) -> (Summary, Vec<u8>, Vec<dashcam_server::storage::Stored>) {
    trace_logging();
    let storage = Storage::new(dir, Duration::from_secs(3600)).unwrap();
    driver::run_over_bytes(cfg, &storage, input)
}

/// What a camera sends for a one-packet file after the server's FILE REQ
/// and RESUME(1) (START, SYNC, DATA), then its init packet again for REPEAT INIT.
pub fn one_packet_file_then_init(init: &InitPacket, data: &[u8]) -> Vec<u8> {
    let mut v = Frame::Start { total: 1, field: 0 }.to_vec();
    v.extend(Frame::Sync { offset: 1 }.to_vec());
    v.extend(
        Frame::Data {
            payload: data,
            crc: dashcam_server::codec::crc16(0, data),
        }
        .to_vec(),
    );
    v.extend(init.encode());
    v
}

/// Runs the real binary's `simulate` against a server process that may still
/// be starting: retried until it is served (at most 20 s); the last output.
pub fn simulate_until_served(bin: &str, server: &str, args: &[String]) -> std::process::Output {
    let began = std::time::Instant::now();
    loop {
        let o = std::process::Command::new(bin)
            .args(["simulate", "--server", server])
            .args(args)
            .output()
            .unwrap();
        if o.status.success() || began.elapsed() > Duration::from_secs(20) {
            return o;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// A port free on loopback now (for a server started as a process, which
/// binds it a moment later).
///
/// Not one the kernel picks for `bind(…:0)`: that comes from the ephemeral
/// range, which every client socket, s3s-fs and the test receivers draw
/// from too, so between this call and the server's bind another test could
/// be handed the same port, and a camera would talk to the wrong process
/// ("server silent for 60s", seen once in 40 runs of tests/delivery.rs).
/// These come from below the ephemeral range (20000-32767), each at most
/// once per test process, and are checked free.
pub fn free_port() -> u16 {
    use std::sync::atomic::{AtomicU32, Ordering};
    static NEXT: AtomicU32 = AtomicU32::new(0);
    const LOW: u32 = 20_000;
    const SPAN: u32 = 12_000;
    // Test binaries run one after another; a per-process start keeps two
    // runs on one machine (a developer and CI) apart too.
    let start = std::process::id().wrapping_mul(2_654_435_761) % SPAN;
    loop {
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        assert!(n < SPAN, "no free port left below the ephemeral range");
        let port = (LOW + (start + n) % SPAN) as u16;
        if std::net::TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
}

/// `deploy/haproxy.cfg` with the test's ports: the front on `front`, the
/// three instances at `backends`.
pub fn haproxy_config(front: u16, backends: &[SocketAddr]) -> String {
    let text =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy/haproxy.cfg"))
            .unwrap();
    let mut out = text.replace("    bind :5000", &format!("    bind 127.0.0.1:{front}"));
    for (i, b) in backends.iter().enumerate() {
        out = out.replace(&format!("127.0.0.1:{}", 5001 + i), &b.to_string());
    }
    assert!(out.contains(&format!("127.0.0.1:{front}")) && out.contains(&backends[2].to_string()));
    out
}
