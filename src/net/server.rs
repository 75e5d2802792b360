//! The listeners (plain TCP, and TLS when configured): a blocking accept per
//! listener with a backlog of 1024, one OS thread per camera, admission
//! (connection and per-address limits, a CLOSE at once when full), and a clean
//! stop that keeps every partial.

use std::io::Write;
use std::net::{IpAddr, Shutdown, SocketAddr, TcpListener, TcpStream, ToSocketAddrs};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::thread;
use std::time::{Duration, Instant};

use anyhow::{bail, Context as _, Result};

use crate::codec::Frame;
use crate::net::admission::{Admission, Slot};
use crate::net::driver::{self, Env, Link, Summary};
use crate::ops::metrics::{FastBudget, Metrics};
use crate::session;
use crate::storage::{Storage, StorageConfig, Stored};

const CAMERA_STACK: usize = 256 * 1024;
const BACKLOG: i32 = 1024;
/// How long a stop waits for sessions to save their partials.
const STOP_GRACE: Duration = Duration::from_secs(10);
/// Connections at once from one address. Cameras on a private APN or behind
/// carrier NAT all reach the server from one or a few addresses, so this
/// serves a fleet of thousands behind one; the overall connection limit and
/// the init deadline keep one address from holding the server.
pub const DEFAULT_MAX_PER_IP: usize = 4096;
/// Why a refusal for --max-per-ip may be wrong, in the log.
const PER_IP_HINT: &str =
    "raise --max-per-ip if cameras share this address (a private APN or carrier NAT)";
/// File descriptors per connection: the socket and an open partial.
const FDS_PER_CONNECTION: u64 = 2;
/// Kept for the listener, storage, logs and the index (64), and for the HTTP
/// endpoint's own connection table (`httpd::Limits::max_conns`, 64), so a
/// full endpoint never takes a camera's descriptor.
const FDS_RESERVED: u64 = 64 + 64;

#[derive(Debug, Clone)]
pub struct ServerConfig {
    pub bind: String,
    pub port: u16,
    pub output_dir: PathBuf,
    pub session: session::Config,
    pub storage: StorageConfig,
    /// None: as many as the file-descriptor limit allows.
    pub max_connections: Option<usize>,
    pub max_per_ip: usize,
    /// TLS certificate and key (PEM); with `tls_port`, TLS on that port and
    /// plain TCP on `port`; without it, TLS on `port`.
    pub tls: Option<(PathBuf, PathBuf)>,
    pub tls_port: Option<u16>,
    /// Every connection starts with a PROXY protocol header (v1 or v2) from a
    /// load balancer; one without it is refused.
    pub proxy_protocol: bool,
    /// With `proxy_protocol`: the load balancers allowed to send PROXY
    /// headers (anyone else could claim any address); empty means loopback.
    pub trusted_proxies: Vec<IpAddr>,
}

impl ServerConfig {
    pub fn new(output_dir: impl Into<PathBuf>) -> ServerConfig {
        ServerConfig {
            bind: "0.0.0.0".into(),
            port: 5000,
            output_dir: output_dir.into(),
            session: session::Config::default(),
            storage: StorageConfig::default(),
            max_connections: None,
            max_per_ip: DEFAULT_MAX_PER_IP,
            tls: None,
            tls_port: None,
            proxy_protocol: false,
            trusted_proxies: Vec::new(),
        }
    }
}

/// Why a hook could not do its part (its own error type, boxed: `net`
/// does not know the layers that set hooks).
pub type HookError = Box<dyn std::error::Error + Send + Sync + 'static>;

type StoredHook = Box<dyn Fn(&Stored) -> Result<(), HookError> + Send + Sync>;
type EndHook = Box<dyn Fn(&Summary) + Send + Sync>;

/// Reads that stop at one deadline however slowly the bytes trickle: each read
/// waits at most for what is left of the time, and none starts after it. What
/// comes before the init packet (a PROXY header, a TLS handshake) is read
/// through it, so the whole of it fits in --init-timeout.
struct Deadline<'a> {
    s: &'a TcpStream,
    until: Instant,
}

impl std::io::Read for Deadline<'_> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let left = self.until.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(std::io::Error::new(
                std::io::ErrorKind::TimedOut,
                "--init-timeout passed before the init packet",
            ));
        }
        self.s.set_read_timeout(Some(left))?;
        (&*self.s).read(buf).map_err(|e| match e.kind() {
            std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut => std::io::Error::new(
                std::io::ErrorKind::TimedOut,
                "--init-timeout passed before the init packet",
            ),
            _ => e,
        })
    }
}

impl Write for Deadline<'_> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        (&*self.s).write(buf)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        (&*self.s).flush()
    }
}

/// A socket shared between a camera's thread and the registry that closes it
/// at stop: `Read`/`Write` through the `Arc`, so TLS can own it too.
struct SharedSocket(Arc<TcpStream>);

impl std::io::Read for SharedSocket {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        (&*self.0).read(buf)
    }
}

impl Write for SharedSocket {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        (&*self.0).write(buf)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        (&*self.0).flush()
    }
}

/// A poisoned lock (a thread panicked holding it) is still usable: the
/// registries hold plain counts and handles, valid after any panic.
fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

struct Shared {
    /// Swapped whole when SIGHUP reloads the allow-list; each connection
    /// keeps the one it started with.
    session: RwLock<Arc<session::Config>>,
    storage: Storage,
    metrics: Metrics,
    fast: FastBudget,
    stopping: AtomicBool,
    /// Every count of who is connected (`net::admission`).
    admission: Arc<Admission>,
    on_stored: StoredHook,
    /// Called with every connection's summary as it ends.
    on_end: EndHook,
    proxy_protocol: bool,
    trusted_proxies: Vec<IpAddr>,
    init_timeout: Duration,
    /// Where to connect to wake a blocking accept at stop.
    wake: Vec<SocketAddr>,
    refusals: RateLimit,
    /// Scanners, trackers and TLS on the plain port: one line each, bounded.
    not_cameras: RateLimit,
    /// What the cameras are doing now (`/cameras`).
    board: crate::ops::board::Board,
    /// The terminal's progress bars, when there are.
    live: Option<Arc<crate::ops::live::Live>>,
}

struct Listener {
    socket: TcpListener,
    tls: Option<Arc<rustls::ServerConfig>>,
}

pub struct Server {
    listeners: Vec<Listener>,
    shared: Arc<Shared>,
    summaries: Option<std::sync::mpsc::Sender<Summary>>,
    /// Run once every link is closed, before "server stopped" (conversions
    /// and uploads finishing, bounded).
    before_stopped: Option<Box<dyn FnOnce() + Send>>,
}

/// Stops a running server from another thread (a signal handler, a test).
#[derive(Clone)]
pub struct StopHandle(Arc<Shared>);

impl StopHandle {
    /// Connections holding a slot now (tests wait on it instead of sleeping).
    pub fn connections(&self) -> usize {
        self.0.admission.active()
    }

    /// The server's counters since it started.
    pub fn metrics(&self) -> &Metrics {
        &self.0.metrics
    }

    /// The cameras connected now and seen lately (`/cameras`).
    pub fn board(&self) -> &crate::ops::board::Board {
        &self.0.board
    }

    /// Replaces the allow-list (SIGHUP): new connections use the new one.
    pub fn set_allow(&self, allow: Option<std::collections::HashSet<u64>>) {
        let mut cfg = self
            .0
            .session
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let mut next = session::Config::clone(&cfg);
        next.allow = allow;
        *cfg = Arc::new(next);
    }

    /// False once a stop was asked for.
    pub fn is_running(&self) -> bool {
        !self.0.stopping.load(Ordering::SeqCst)
    }

    pub fn stop(&self) {
        if self.0.stopping.swap(true, Ordering::SeqCst) {
            return;
        }
        // Counted when the stop is asked for: the links close right after.
        log::info!(
            "stopping: {} camera(s) connected, partials kept; no new connections",
            self.0.admission.active()
        );
        // Wake the blocking accepts.
        for addr in &self.0.wake {
            let _ = TcpStream::connect_timeout(addr, Duration::from_secs(1));
        }
    }
}

/// At most `burst` log lines per window; the rest are counted and summed up
/// as "N more `what` in the last 10s".
struct RateLimit {
    state: Mutex<(Instant, u32, u64)>,
    what: &'static str,
}

impl RateLimit {
    const WINDOW: Duration = Duration::from_secs(10);
    const BURST: u32 = 5;

    fn new(what: &'static str) -> RateLimit {
        RateLimit {
            state: Mutex::new((Instant::now(), 0, 0)),
            what,
        }
    }

    fn warn(&self, line: impl FnOnce() -> String) {
        let mut s = lock(&self.state);
        let now = Instant::now();
        if now.duration_since(s.0) >= Self::WINDOW {
            if s.2 > 0 {
                log::warn!(
                    "{} more {} in the last {:?} (not logged one by one)",
                    s.2,
                    self.what,
                    Self::WINDOW
                );
            }
            *s = (now, 0, 0);
        }
        if s.1 < Self::BURST {
            s.1 += 1;
            log::warn!("{}", line());
        } else {
            s.2 += 1;
        }
    }
}

/// Raises the soft limit on open files to the hard limit; returns the limit.
#[cfg(unix)]
pub fn raise_fd_limit() -> Option<u64> {
    use rustix::process::{getrlimit, setrlimit, Resource, Rlimit};
    let mut r = getrlimit(Resource::Nofile);
    // Privileged (root, CAP_SYS_RESOURCE): the hard limit can go up to the
    // kernel's per-process maximum.
    let nr_open = std::fs::read_to_string("/proc/sys/fs/nr_open")
        .ok()
        .and_then(|t| t.trim().parse::<u64>().ok())
        .unwrap_or(0)
        .min(1 << 20);
    if r.maximum.is_some_and(|max| nr_open > max) {
        let want = Rlimit {
            current: Some(nr_open),
            maximum: Some(nr_open),
        };
        if setrlimit(Resource::Nofile, want).is_ok() {
            r = want;
        }
    }
    if r.current != r.maximum {
        let want = Rlimit {
            current: r.maximum,
            maximum: r.maximum,
        };
        if setrlimit(Resource::Nofile, want).is_ok() {
            r = want;
        }
    }
    // None for the limit is "unlimited".
    Some(r.current.unwrap_or(u64::MAX))
}

/// Windows has no such limit on sockets.
#[cfg(not(unix))]
pub fn raise_fd_limit() -> Option<u64> {
    None
}

/// The default connection limit: what the file-descriptor limit allows.
pub fn default_max_connections() -> usize {
    match raise_fd_limit() {
        Some(n) => (n.saturating_sub(FDS_RESERVED) / FDS_PER_CONNECTION).max(16) as usize,
        None => 10_000,
    }
}

fn listen(bind: &str, port: u16) -> Result<TcpListener> {
    let addr = format!("{bind}:{port}");
    let sa = match addr.to_socket_addrs().map(|mut a| a.next()) {
        Ok(Some(sa)) => sa,
        _ => bail!("--bind {bind} is not an address (use an IP of this machine, 0.0.0.0 for all, or a host name that resolves)"),
    };
    let socket = socket2::Socket::new(
        socket2::Domain::for_address(sa),
        socket2::Type::STREAM,
        Some(socket2::Protocol::TCP),
    )?;
    #[cfg(unix)]
    socket.set_reuse_address(true)?;
    if let Err(e) = socket.bind(&sa.into()) {
        match e.kind() {
            std::io::ErrorKind::AddrInUse => bail!(
                "cannot listen on {addr}: port {port} is in use (another server?); pick another with --port"
            ),
            std::io::ErrorKind::AddrNotAvailable => bail!(
                "cannot listen on {addr}: --bind {bind} is not an address of this machine"
            ),
            std::io::ErrorKind::PermissionDenied => bail!(
                "cannot listen on {addr}: permission denied (ports below 1024 need administrator rights)"
            ),
            _ => bail!("cannot listen on {addr}: {e}"),
        }
    }
    socket
        .listen(BACKLOG)
        .with_context(|| format!("cannot listen on {addr}"))?;
    Ok(socket.into())
}

fn wake_addr(local: SocketAddr) -> SocketAddr {
    let ip: IpAddr = match local.ip() {
        IpAddr::V4(v) if v.is_unspecified() => IpAddr::V4(std::net::Ipv4Addr::LOCALHOST),
        IpAddr::V6(v) if v.is_unspecified() => IpAddr::V6(std::net::Ipv6Addr::LOCALHOST),
        ip => ip,
    };
    SocketAddr::new(ip, local.port())
}

impl Server {
    pub fn bind(cfg: ServerConfig) -> Result<Server> {
        let storage = Storage::open(&cfg.output_dir, cfg.storage.clone())?;
        let abs =
            dunce::canonicalize(storage.root()).unwrap_or_else(|_| storage.root().to_path_buf());
        log::info!("output folder {}", abs.display());
        let fd_default = default_max_connections();
        let max_connections = cfg.max_connections.unwrap_or(fd_default);
        if max_connections == 0 || cfg.max_per_ip == 0 {
            bail!("--max-connections and --max-per-ip must be at least 1");
        }
        let tls = match &cfg.tls {
            Some((cert, key)) => Some(crate::net::tls::server_config(cert, key)?),
            None => None,
        };
        let mut listeners = Vec::new();
        match (&tls, cfg.tls_port) {
            (Some(t), Some(tls_port)) => {
                listeners.push(Listener {
                    socket: listen(&cfg.bind, cfg.port)?,
                    tls: None,
                });
                listeners.push(Listener {
                    socket: listen(&cfg.bind, tls_port)?,
                    tls: Some(t.clone()),
                });
            }
            (None, Some(_)) => bail!("--tls-port needs --tls-cert and --tls-key"),
            (t, None) => listeners.push(Listener {
                socket: listen(&cfg.bind, cfg.port)?,
                tls: t.clone(),
            }),
        }
        let init_timeout = cfg.session.init_timeout;
        let wake = listeners
            .iter()
            .filter_map(|l| l.socket.local_addr().ok())
            .map(wake_addr)
            .collect();
        log::info!(
            "up to {max_connections} connections ({} per address)",
            cfg.max_per_ip
        );
        Ok(Server {
            listeners,
            shared: Arc::new(Shared {
                session: RwLock::new(Arc::new(cfg.session)),
                storage,
                metrics: Metrics::default(),
                fast: FastBudget::default(),
                stopping: AtomicBool::new(false),
                admission: Admission::new(max_connections, cfg.max_per_ip),
                on_stored: Box::new(|_| Ok(())),
                on_end: Box::new(|_| {}),
                proxy_protocol: cfg.proxy_protocol,
                trusted_proxies: cfg.trusted_proxies,
                init_timeout,
                wake,
                refusals: RateLimit::new("connection(s) refused"),
                board: crate::ops::board::Board::default(),
                live: None,
                not_cameras: RateLimit::new(
                    "connection(s) that were not cameras (dashcam_not_a_camera_total in /metrics, by kind)",
                ),
            }),
            summaries: None,
            before_stopped: None,
        })
    }

    /// Storage calls this before each publish step (tests inject crashes and panics).
    pub fn fault_hook(mut self, hook: crate::storage::FaultHook) -> Self {
        Arc::get_mut(&mut self.shared)
            .expect("not running yet")
            .storage
            .set_fault(Some(hook));
        self
    }

    /// The output folder.
    pub fn output_dir(&self) -> &Path {
        self.shared.storage.root()
    }

    /// Called (on the camera's thread) for each file stored.
    /// An error: the camera is not told the file is stored (it sends it again).
    pub fn on_stored(
        mut self,
        hook: impl Fn(&Stored) -> Result<(), HookError> + Send + Sync + 'static,
    ) -> Self {
        Arc::get_mut(&mut self.shared)
            .expect("not running yet")
            .on_stored = Box::new(hook);
        self
    }

    /// Called (on the connection's thread) with each session's summary.
    pub fn on_end(mut self, hook: impl Fn(&Summary) + Send + Sync + 'static) -> Self {
        Arc::get_mut(&mut self.shared)
            .expect("not running yet")
            .on_end = Box::new(hook);
        self
    }

    /// Shows each connection's file as a progress bar on these bars.
    pub fn live(mut self, live: Arc<crate::ops::live::Live>) -> Self {
        Arc::get_mut(&mut self.shared)
            .expect("not running yet")
            .live = Some(live);
        self
    }

    /// Runs `hook` after the links are closed and before "server stopped".
    pub fn before_stopped(mut self, hook: impl FnOnce() + Send + 'static) -> Self {
        self.before_stopped = Some(Box::new(hook));
        self
    }

    /// Receives every session's summary (tests read what each camera achieved).
    pub fn summaries(&mut self) -> std::sync::mpsc::Receiver<Summary> {
        let (tx, rx) = std::sync::mpsc::channel();
        self.summaries = Some(tx);
        rx
    }

    /// The first listener's address (plain TCP, or TLS when only TLS is served).
    pub fn local_addr(&self) -> SocketAddr {
        self.listeners[0]
            .socket
            .local_addr()
            .expect("bound listener")
    }

    /// Every listener's address, and whether it is TLS.
    pub fn addrs(&self) -> Vec<(SocketAddr, bool)> {
        self.listeners
            .iter()
            .filter_map(|l| Some((l.socket.local_addr().ok()?, l.tls.is_some())))
            .collect()
    }

    pub fn stop_handle(&self) -> StopHandle {
        StopHandle(self.shared.clone())
    }

    /// Accepts until stopped, then closes every link and waits for sessions to
    /// save their partials.
    pub fn run(self) -> Result<()> {
        let summaries = self.summaries.clone();
        let mut accepts = Vec::new();
        for l in self.listeners {
            let shared = self.shared.clone();
            let summaries = summaries.clone();
            accepts.push(
                thread::Builder::new()
                    .name("accept".into())
                    .spawn(move || accept_loop(&shared, l, summaries))?,
            );
        }
        let status = {
            let shared = self.shared.clone();
            thread::Builder::new()
                .name("status".into())
                .spawn(move || status_loop(&shared))?
        };
        {
            // What is stored already, known before the first file arrives.
            let shared = self.shared.clone();
            thread::Builder::new()
                .name("dedup-warm-up".into())
                .spawn(move || {
                    let began = Instant::now();
                    shared.storage.warm_up();
                    log::debug!(
                        "stored files read for de-duplication in {:?}",
                        began.elapsed()
                    );
                })?;
        }
        for a in accepts {
            let _ = a.join();
        }
        let _ = status.join();
        self.shared.admission.close_all();
        let deadline = Instant::now() + STOP_GRACE;
        while self.shared.admission.active() > 0 && Instant::now() < deadline {
            thread::sleep(Duration::from_millis(10));
        }
        if let Some(l) = &self.shared.live {
            l.clear();
        }
        if let Some(hook) = self.before_stopped {
            hook();
        }
        let m = &self.shared.metrics;
        log::info!(
            "server stopped; since start: {} session(s), {} file(s) stored, {} received, {} session(s) ended in error",
            Metrics::get(&m.sessions),
            Metrics::get(&m.files),
            crate::session::human_bytes(Metrics::get(&m.bytes_received)),
            Metrics::get(&m.failed_sessions)
        );
        Ok(())
    }
}

/// Every 60 s while cameras are connected: how many, and the bytes per second.
fn status_loop(shared: &Shared) {
    const EVERY: Duration = Duration::from_secs(60);
    let mut last = (Instant::now(), Metrics::get(&shared.metrics.bytes_received));
    while !shared.stopping.load(Ordering::SeqCst) {
        thread::sleep(Duration::from_millis(250));
        if last.0.elapsed() < EVERY {
            continue;
        }
        let bytes = Metrics::get(&shared.metrics.bytes_received);
        let rate = (bytes - last.1) as f64 / last.0.elapsed().as_secs_f64();
        last = (Instant::now(), bytes);
        let active = shared.admission.active();
        if active > 0 {
            log::info!(
                "status: {active} camera(s) connected, {}/s over the last minute, {} file(s) stored since start",
                crate::session::human_bytes(rate as u64),
                Metrics::get(&shared.metrics.files)
            );
        }
    }
}

/// A spare descriptor: when accept runs out of descriptors, it is let go for
/// a moment, so the connection waiting in the backlog gets CLOSE, not a hang.
#[cfg(unix)]
fn spare_fd() -> Option<std::fs::File> {
    std::fs::File::open("/dev/null").ok()
}

#[cfg(not(unix))]
fn spare_fd() -> Option<std::fs::File> {
    None
}

fn accept_loop(
    shared: &Arc<Shared>,
    l: Listener,
    summaries: Option<std::sync::mpsc::Sender<Summary>>,
) {
    let mut spare = spare_fd();
    loop {
        let accepted = l.socket.accept();
        if shared.stopping.load(Ordering::SeqCst) {
            return;
        }
        match accepted {
            Ok((stream, peer)) => admit(shared, stream, peer, l.tls.clone(), summaries.clone()),
            Err(e) if e.raw_os_error() == Some(24) || e.raw_os_error() == Some(23) => {
                // EMFILE/ENFILE: free the spare, accept, CLOSE, take it back.
                drop(spare.take());
                if let Ok((s, peer)) = l.socket.accept() {
                    refuse(
                        shared,
                        &s,
                        Some(session::End::Refused(session::Refusal::MaxConnections)),
                        || format!("[{peer}] refused: out of file descriptors"),
                    );
                }
                spare = spare_fd();
                if spare.is_none() {
                    thread::sleep(Duration::from_millis(50));
                }
            }
            Err(e) => {
                log::warn!("accept failed: {e}");
                thread::sleep(Duration::from_millis(50));
            }
        }
    }
}

/// CLOSE at once. `end`: counted here (None: the connection's thread counts
/// the summary it returns).
fn refuse(
    shared: &Shared,
    stream: &TcpStream,
    end: Option<session::End>,
    why: impl FnOnce() -> String,
) {
    if let Some(end) = end {
        shared.metrics.ended(&end);
    }
    shared.refusals.warn(why);
    let _ = stream.set_write_timeout(Some(Duration::from_secs(1)));
    let _ = (&*stream).write_all(&Frame::Close.to_vec());
    let _ = stream.shutdown(Shutdown::Both);
}

fn admit(
    shared: &Arc<Shared>,
    stream: TcpStream,
    peer: SocketAddr,
    tls: Option<Arc<rustls::ServerConfig>>,
    summaries: Option<std::sync::mpsc::Sender<Summary>>,
) {
    // Windows hands out sockets that inherit the listener's mode.
    let _ = stream.set_nonblocking(false);
    let stream = Arc::new(stream);
    // The count is checked and taken in one step (`Admission::take`), so
    // two listeners never both take the last slot.
    let admission = &shared.admission;
    let Some(taken) = admission.take(stream.clone()) else {
        return refuse(
            shared,
            &stream,
            Some(session::End::Refused(session::Refusal::MaxConnections)),
            || {
                format!(
                    "[{peer}] refused: {} connections open, all past their init packet (--max-connections)",
                    admission.max_connections()
                )
            },
        );
    };
    let slot = taken.slot;
    if let Some(id) = taken.evicted {
        Metrics::add(&shared.metrics.evicted_pre_init, 1);
        shared.refusals.warn(|| {
            format!(
                "connection {id} closed before its init packet to make room for {peer} (--max-connections {} full; cameras past their init are never closed)",
                admission.max_connections()
            )
        });
    }
    // Behind a load balancer only it may connect: a PROXY header from anyone
    // else could claim any camera's address. (The slot, dropped on return,
    // gives everything back.)
    if shared.proxy_protocol && !trusted_proxy(shared, peer.ip()) {
        return refuse(shared, &stream, Some(session::End::NotAllowed), || {
            format!("[{peer}] refused: not a trusted load balancer (--trusted-proxy; --proxy-protocol is on)")
        });
    }
    // Behind a load balancer the address is known only after the PROXY header.
    if !shared.proxy_protocol && !slot.claim_ip(peer.ip()) {
        return refuse(
            shared,
            &stream,
            Some(session::End::Refused(session::Refusal::MaxPerIp)),
            || {
                format!(
                    "[{peer}] refused: {} connections from {} already (--max-per-ip): {PER_IP_HINT}",
                    admission.max_per_ip(),
                    peer.ip()
                )
            },
        );
    }
    let spawned = thread::Builder::new()
        .name(format!("camera-{peer}"))
        .stack_size(CAMERA_STACK)
        .spawn({
            let shared = shared.clone();
            let stream = stream.clone();
            move || {
                // The slot goes back when this closure ends, however it ends
                // (and before the summary is out: whoever reads it may connect at once).
                let slot = slot;
                let served = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                    serve_camera(&shared, &slot, stream, peer, tls)
                }));
                let summary = served.unwrap_or_else(|panic| {
                    let what = panic
                        .downcast_ref::<&str>()
                        .map(|s| s.to_string())
                        .or_else(|| panic.downcast_ref::<String>().cloned())
                        .unwrap_or_else(|| "a panic".into());
                    Metrics::add(&shared.metrics.panics, 1);
                    log::error!("[{peer}] the camera's thread failed ({what}): this is a bug; its slot is given back");
                    Summary::ended(session::End::Internal(what))
                });
                drop(slot);
                shared.metrics.ended(&summary.end);
                if let session::End::NotACamera(why) = &summary.end {
                    shared.metrics.not_a_camera(why.kind());
                    // A bad PROXY header was logged as a refusal.
                    if !matches!(why, session::NotACamera::Proxy(_)) {
                        shared
                            .not_cameras
                            .warn(|| format!("[{peer}] not a camera: {why}"));
                    }
                }
                (shared.on_end)(&summary);
                if let Some(tx) = summaries {
                    let _ = tx.send(summary);
                }
            }
        });
    if let Err(e) = spawned {
        // The closure (and the slot in it) is dropped: the slot is back.
        log::error!("[{peer}] could not start a thread for the camera: {e}");
        let _ = (&*stream).write_all(&Frame::Close.to_vec());
    }
}

fn trusted_proxy(shared: &Shared, ip: IpAddr) -> bool {
    let ip = match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    };
    if shared.trusted_proxies.is_empty() {
        ip.is_loopback()
    } else {
        shared.trusted_proxies.contains(&ip)
    }
}

/// A TLS stream is a link like a socket: its read timeout is the socket's.
impl Link for rustls::StreamOwned<rustls::ServerConnection, SharedSocket> {
    fn set_read_timeout(&mut self, timeout: Duration) -> std::io::Result<()> {
        self.sock.0.set_read_timeout(Some(timeout))
    }
}

fn serve_camera(
    shared: &Shared,
    slot: &Slot,
    stream: Arc<TcpStream>,
    peer: SocketAddr,
    tls: Option<Arc<rustls::ServerConfig>>,
) -> Summary {
    let _ = stream.set_nodelay(true);
    let read_timeout = shared
        .session
        .read()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .read_timeout;
    let _ = stream.set_write_timeout(Some(read_timeout));
    // One deadline for every byte before the init packet: PROXY header, TLS
    // handshake and the init packet itself.
    let accepted = Instant::now();
    let until = accepted + shared.init_timeout;
    let mut peer = peer;
    if shared.proxy_protocol {
        let header = crate::net::proxy::read_header(&mut Deadline { s: &stream, until });
        let refused = Summary::ended;
        match header {
            Ok(Some(real)) => {
                if !slot.claim_ip(real.ip()) {
                    refuse(shared, &stream, None, || {
                        format!(
                            "[{real} via {peer}] refused: {} connections from {} already (--max-per-ip): {PER_IP_HINT}",
                            shared.admission.max_per_ip(),
                            real.ip()
                        )
                    });
                    return refused(session::End::Refused(session::Refusal::MaxPerIp));
                }
                log::debug!("[{real}] through the load balancer at {peer}");
                peer = real;
            }
            Ok(None) => {
                let _ = stream.shutdown(Shutdown::Both);
                return refused(session::End::LinkLost(
                    "load balancer check (PROXY LOCAL)".into(),
                ));
            }
            Err(e) => {
                refuse(shared, &stream, None, || {
                    format!("[{peer}] refused: {e} (--proxy-protocol)")
                });
                return refused(session::End::NotACamera(session::NotACamera::Proxy(
                    e.to_string(),
                )));
            }
        }
    }
    log::debug!(
        "[{peer}] connected{}",
        if tls.is_some() { " (TLS)" } else { "" }
    );
    // A camera keeps one link: when it reconnects (a cellular drop the
    // server has not noticed yet), the older link is closed so its partial
    // is freed for resume.
    let on_camera = |imei: u64| {
        if shared.admission.one_link_per_camera(slot, imei) > 0 {
            log::info!("[{imei}] reconnected: closing its older link");
        }
    };
    let id = slot.id();
    let config = shared
        .session
        .read()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .clone();
    let env = Env {
        config: &config,
        storage: &shared.storage,
        shutdown: &shared.stopping,
        on_stored: &*shared.on_stored,
        on_camera: &on_camera,
        metrics: &shared.metrics,
        fast: &shared.fast,
        board: &shared.board,
        live: shared.live.as_deref(),
    };
    match tls {
        None => driver::run(&env, &*stream, peer.to_string(), id, accepted),
        Some(cfg) => serve_tls(&env, stream, peer, cfg, id, (accepted, until)),
    }
}

/// Kept out of line: a TLS connection's state is large, and a plain camera's
/// thread should not carry its stack frame.
#[inline(never)]
fn serve_tls(
    env: &Env<'_>,
    stream: Arc<TcpStream>,
    peer: SocketAddr,
    cfg: Arc<rustls::ServerConfig>,
    id: u64,
    (accepted, until): (Instant, Instant),
) -> Summary {
    let mut conn = match rustls::ServerConnection::new(cfg) {
        Ok(c) => c,
        Err(e) => {
            log::warn!("[{peer}] TLS setup failed: {e}");
            let _ = stream.shutdown(Shutdown::Both);
            return Summary::ended(session::End::NotACamera(session::NotACamera::Tls(
                e.to_string(),
            )));
        }
    };
    // The handshake, byte by byte if it must, within the init deadline.
    let mut io = Deadline { s: &stream, until };
    while conn.is_handshaking() {
        // Why the handshake cannot go on, if it cannot.
        let failure: Option<String> = if conn.wants_write() {
            conn.write_tls(&mut io).err().map(|e| e.to_string())
        } else {
            match conn.read_tls(&mut io) {
                Ok(0) => Some("the peer closed the link during the handshake".into()),
                Ok(_) => conn.process_new_packets().err().map(|e| match e {
                    // A camera's init packet starts 00 00: plain TCP on the TLS port.
                    rustls::Error::InvalidMessage(rustls::InvalidMessage::InvalidContentType) => {
                        format!("the peer speaks plain TCP, and this port speaks TLS: turn TLS on in the camera, or use the server's plain port ({e})")
                    }
                    e => e.to_string(),
                }),
                Err(e) => Some(e.to_string()),
            }
        };
        if let Some(why) = failure {
            // Tell the peer why (a TLS alert), when rustls has one to send.
            let _ = conn.write_tls(&mut io);
            let _ = stream.shutdown(Shutdown::Both);
            return Summary::ended(session::End::NotACamera(session::NotACamera::Tls(why)));
        }
    }
    let tls_stream = rustls::StreamOwned::new(conn, SharedSocket(stream.clone()));
    driver::run(env, tls_stream, format!("{peer} (TLS)"), id, accepted)
}
