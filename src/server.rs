//! The listener: one OS thread per camera, a bound on connections, timeouts,
//! and a clean stop that keeps every partial.

use std::collections::HashMap;
use std::io::Write;
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result};

use crate::codec::Frame;
use crate::driver::{self, Env, Summary};
use crate::session;
use crate::storage::{Storage, StorageConfig, Stored};

const CAMERA_STACK: usize = 256 * 1024;
const IDLE_POLL: Duration = Duration::from_millis(10);
/// How long a stop waits for sessions to save their partials.
const STOP_GRACE: Duration = Duration::from_secs(10);

#[derive(Debug, Clone)]
pub struct ServerConfig {
    pub bind: String,
    pub port: u16,
    pub output_dir: PathBuf,
    pub session: session::Config,
    pub storage: StorageConfig,
    pub max_connections: usize,
}

type StoredHook = Box<dyn Fn(&Stored) + Send + Sync>;

struct Shared {
    session: session::Config,
    storage: Storage,
    stopping: AtomicBool,
    active: AtomicUsize,
    next_id: AtomicU64,
    /// Open connections: id -> (IMEI once known, a handle to shut it down).
    conns: Mutex<HashMap<u64, (Option<u64>, TcpStream)>>,
    on_stored: StoredHook,
    max_connections: usize,
}

pub struct Server {
    listener: TcpListener,
    shared: Arc<Shared>,
    summaries: Option<std::sync::mpsc::Sender<Summary>>,
}

/// Stops a running server from another thread (a signal handler, a test).
#[derive(Clone)]
pub struct StopHandle(Arc<Shared>);

impl StopHandle {
    pub fn stop(&self) {
        self.0.stopping.store(true, Ordering::SeqCst);
    }
}

impl Server {
    pub fn bind(cfg: ServerConfig) -> Result<Server> {
        let storage = Storage::open(&cfg.output_dir, cfg.storage.clone())?;
        let abs =
            std::fs::canonicalize(storage.root()).unwrap_or_else(|_| storage.root().to_path_buf());
        log::info!("output folder {}", abs.display());
        let addr = format!("{}:{}", cfg.bind, cfg.port);
        let listener = TcpListener::bind(&addr).with_context(|| {
            format!("cannot listen on {addr}: is another server using the port? (try --port)")
        })?;
        listener.set_nonblocking(true)?;
        Ok(Server {
            listener,
            shared: Arc::new(Shared {
                session: cfg.session,
                storage,
                stopping: AtomicBool::new(false),
                active: AtomicUsize::new(0),
                next_id: AtomicU64::new(1),
                conns: Mutex::new(HashMap::new()),
                on_stored: Box::new(|_| {}),
                max_connections: cfg.max_connections,
            }),
            summaries: None,
        })
    }

    /// Called (on the camera's thread) for each file stored.
    pub fn on_stored(mut self, hook: impl Fn(&Stored) + Send + Sync + 'static) -> Self {
        Arc::get_mut(&mut self.shared)
            .expect("not running yet")
            .on_stored = Box::new(hook);
        self
    }

    /// Receives every session's summary (tests read what each camera achieved).
    pub fn summaries(&mut self) -> std::sync::mpsc::Receiver<Summary> {
        let (tx, rx) = std::sync::mpsc::channel();
        self.summaries = Some(tx);
        rx
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.listener.local_addr().expect("bound listener")
    }

    pub fn stop_handle(&self) -> StopHandle {
        StopHandle(self.shared.clone())
    }

    /// Accepts until stopped, then closes every link and waits for sessions to
    /// save their partials.
    pub fn run(self) -> Result<()> {
        let mut threads: Vec<JoinHandle<()>> = Vec::new();
        while !self.shared.stopping.load(Ordering::SeqCst) {
            match self.listener.accept() {
                Ok((stream, peer)) => {
                    if let Some(t) = self.admit(stream, peer) {
                        threads.push(t);
                    }
                }
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                    threads.retain(|t| !t.is_finished());
                    thread::sleep(IDLE_POLL);
                }
                Err(e) => {
                    // Out of file descriptors and the like: wait, do not spin or die.
                    log::warn!("accept failed: {e}");
                    thread::sleep(Duration::from_millis(100));
                }
            }
        }
        drop(self.listener);
        let open: Vec<TcpStream> = {
            let conns = self.shared.conns.lock().unwrap();
            conns
                .values()
                .filter_map(|(_, s)| s.try_clone().ok())
                .collect()
        };
        log::info!(
            "stopping: no new connections; closing {} open link(s), partials are kept",
            open.len()
        );
        for s in open {
            let _ = s.shutdown(Shutdown::Both);
        }
        let deadline = Instant::now() + STOP_GRACE;
        while threads.iter().any(|t| !t.is_finished()) && Instant::now() < deadline {
            thread::sleep(IDLE_POLL);
        }
        log::info!("server stopped");
        Ok(())
    }

    fn admit(&self, stream: TcpStream, peer: SocketAddr) -> Option<JoinHandle<()>> {
        // Windows hands out sockets that inherit the listener's non-blocking mode.
        let _ = stream.set_nonblocking(false);
        let shared = &self.shared;
        if shared.active.load(Ordering::SeqCst) >= shared.max_connections {
            log::warn!(
                "[{peer}] refused: {} connections open (--max-connections {})",
                shared.max_connections,
                shared.max_connections
            );
            let _ = (&stream).write_all(&Frame::Close.to_vec());
            let _ = stream.shutdown(Shutdown::Both);
            return None;
        }
        let id = shared.next_id.fetch_add(1, Ordering::Relaxed);
        let registered = stream.try_clone().ok()?;
        shared.conns.lock().unwrap().insert(id, (None, registered));
        shared.active.fetch_add(1, Ordering::SeqCst);
        let summaries = self.summaries.clone();
        let spawned = thread::Builder::new()
            .name(format!("camera-{peer}"))
            .stack_size(CAMERA_STACK)
            .spawn({
                let shared = shared.clone();
                move || {
                    let summary = serve_camera(&shared, id, stream, peer);
                    shared.conns.lock().unwrap().remove(&id);
                    shared.active.fetch_sub(1, Ordering::SeqCst);
                    if let Some(tx) = summaries {
                        let _ = tx.send(summary);
                    }
                }
            });
        match spawned {
            Ok(t) => Some(t),
            Err(e) => {
                log::error!("[{peer}] could not start a thread for the camera: {e}");
                shared.conns.lock().unwrap().remove(&id);
                shared.active.fetch_sub(1, Ordering::SeqCst);
                None
            }
        }
    }
}

fn serve_camera(shared: &Shared, id: u64, stream: TcpStream, peer: SocketAddr) -> Summary {
    let _ = stream.set_nodelay(true);
    let _ = stream.set_write_timeout(Some(shared.session.read_timeout));
    log::debug!("[{peer}] connected");
    let on_camera = |imei: u64| replace_older_links(shared, id, imei);
    let env = Env {
        config: &shared.session,
        storage: &shared.storage,
        shutdown: &shared.stopping,
        on_stored: &*shared.on_stored,
        on_camera: &on_camera,
    };
    driver::run(&env, &stream, peer.to_string())
}

/// A camera keeps one link: when it reconnects (a cellular drop the server has
/// not noticed yet), the older link is closed so its partial is freed for resume.
fn replace_older_links(shared: &Shared, id: u64, imei: u64) {
    let mut conns = shared.conns.lock().unwrap();
    for (other, (who, s)) in conns.iter_mut() {
        if *other != id && *who == Some(imei) {
            log::info!("[{imei}] reconnected: closing its older link");
            let _ = s.shutdown(Shutdown::Both);
        }
    }
    if let Some(entry) = conns.get_mut(&id) {
        entry.0 = Some(imei);
    }
}
