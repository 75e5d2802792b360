//! The listeners (plain TCP, and TLS when configured): a blocking accept per
//! listener with a backlog of 1024, one OS thread per camera, admission
//! (connection and per-address limits, a CLOSE at once when full), and a clean
//! stop that keeps every partial.

use std::net::{IpAddr, SocketAddr, TcpListener, TcpStream, ToSocketAddrs};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, RwLock};
use std::thread;
use std::time::{Duration, Instant};

use anyhow::Result;

use crate::codec::Frame;
use crate::net::admission::{Admission, Slot};
use crate::net::driver::{self, Env, Link, Summary};
use crate::ops::metrics::{FastBudget, Metrics};
use crate::session;
use crate::storage::{Storage, StorageConfig, Stored};

mod accept;
mod conn;
mod limits;

use crate::lock;
use accept::accept_loop;
use limits::RateLimit;
pub use limits::{default_max_connections, raise_fd_limit};

mod errors;
pub use errors::*;

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

fn listen(bind: &str, port: u16) -> Result<TcpListener, BindError> {
    let addr = format!("{bind}:{port}");
    let sa = match addr.to_socket_addrs().map(|mut a| a.next()) {
        Ok(Some(sa)) => sa,
        _ => {
            return Err(BindError::NotAnAddress {
                bind: bind.to_string(),
            })
        }
    };
    let failed = |source: std::io::Error| {
        let (bind, addr) = (bind.to_string(), addr.clone());
        match source.kind() {
            std::io::ErrorKind::AddrInUse => BindError::PortInUse { addr, port, source },
            std::io::ErrorKind::AddrNotAvailable => BindError::NotHere { addr, bind, source },
            std::io::ErrorKind::PermissionDenied => BindError::Denied { addr, source },
            _ => BindError::Listen { addr, source },
        }
    };
    let socket = socket2::Socket::new(
        socket2::Domain::for_address(sa),
        socket2::Type::STREAM,
        Some(socket2::Protocol::TCP),
    )
    .map_err(failed)?;
    #[cfg(unix)]
    socket.set_reuse_address(true).map_err(failed)?;
    socket.bind(&sa.into()).map_err(failed)?;
    socket.listen(BACKLOG).map_err(failed)?;
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
    pub fn bind(cfg: ServerConfig) -> Result<Server, BindError> {
        let storage = Storage::open(&cfg.output_dir, cfg.storage.clone())?;
        let abs =
            dunce::canonicalize(storage.root()).unwrap_or_else(|_| storage.root().to_path_buf());
        log::info!("output folder {}", abs.display());
        let fd_default = default_max_connections();
        let max_connections = cfg.max_connections.unwrap_or(fd_default);
        if max_connections == 0 || cfg.max_per_ip == 0 {
            return Err(BindError::Settings(
                "--max-connections and --max-per-ip must be at least 1",
            ));
        }
        let tls = match &cfg.tls {
            Some((cert, key)) => Some(
                crate::net::tls::server_config(cert, key).map_err(|e| BindError::Tls(e.into()))?,
            ),
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
            (None, Some(_)) => {
                return Err(BindError::Settings(
                    "--tls-port needs --tls-cert and --tls-key",
                ))
            }
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
