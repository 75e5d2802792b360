//! A small blocking HTTP/1.1 server with the limits of a production one
//! (nginx's and HAProxy's defaults are the anchors), for `--http-bind`.
//!
//! Why not tiny_http (used before): it reads a request line and headers
//! without a bound (a 600 MB request line grew the server to 602 MB), keeps
//! a thread per idle connection with no idle timeout, and writes answers
//! with no deadline, so two clients that pipeline and never read stopped
//! `/healthz` for everyone. None of that can be set from outside it.
//!
//! Here: one acceptor thread and a thread per connection, at most
//! [`Limits::max_conns`] of them. A request line over 8 KiB is answered 414,
//! a head over 64 KiB 431, a head not complete in 10 s is cut, a keep-alive
//! connection idle for 30 s is closed, and every answer is written under a
//! deadline (a client that does not read loses its connection). When the
//! table is full, a new connection evicts the one that has waited longest
//! for a request (idle or still sending its head); when every connection is
//! busy answering, the newcomer gets a fast 503. The server is read-only: a
//! request with a body is refused (413) and the connection closed.

use std::collections::HashMap;
use std::fs::File;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

mod conn;
use crate::lock;
use crate::net::deadline::Deadline;
use conn::*;

/// The bounds of every connection.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// The request line's longest (414 beyond).
    pub max_line: usize,
    /// The whole head's largest: request line and headers (431 beyond).
    pub max_head: usize,
    /// The head must be complete this long after its first byte.
    pub head_deadline: Duration,
    /// A keep-alive connection waits this long for its next request.
    pub idle: Duration,
    /// An answer's head must be written in this; a body gets this plus its
    /// time at [`Limits::floor_rate`].
    pub write_deadline: Duration,
    /// Bytes a second a reader must take at least.
    pub floor_rate: u64,
    /// Connections served at once.
    pub max_conns: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_line: 8 << 10,
            max_head: 64 << 10,
            head_deadline: Duration::from_secs(10),
            idle: Duration::from_secs(30),
            write_deadline: Duration::from_secs(10),
            floor_rate: 64 << 10,
            max_conns: 64,
        }
    }
}

/// A request's head (the server takes no body).
#[derive(Debug, Clone)]
pub struct Request {
    pub method: String,
    /// As sent: the path and any query.
    pub target: String,
    /// Names as sent, values trimmed.
    pub headers: Vec<(String, String)>,
    /// HTTP/1.0 (closed after its answer unless it asks for keep-alive).
    pub http10: bool,
}

impl Request {
    /// The first header of that name (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// The path, without the query.
    pub fn path(&self) -> &str {
        self.target.split('?').next().unwrap_or("/")
    }
}

pub enum Body {
    Bytes(Vec<u8>),
    /// `len` bytes of the file from where it stands.
    File(File, u64),
}

pub struct Response {
    pub status: u16,
    pub headers: Vec<(&'static str, String)>,
    pub body: Body,
}

impl Response {
    pub fn text(status: u16, text: impl Into<String>) -> Response {
        Response {
            status,
            headers: vec![("Content-Type", "text/plain; charset=utf-8".into())],
            body: Body::Bytes(text.into().into_bytes()),
        }
    }

    pub fn with_header(mut self, name: &'static str, value: impl Into<String>) -> Response {
        self.headers.retain(|(k, _)| !k.eq_ignore_ascii_case(name));
        self.headers.push((name, value.into()));
        self
    }

    fn len(&self) -> u64 {
        match &self.body {
            Body::Bytes(b) => b.len() as u64,
            Body::File(_, n) => *n,
        }
    }
}

pub type Handler = Arc<dyn Fn(&Request) -> Response + Send + Sync>;

/// Counters for `/metrics` and tests.
#[derive(Debug, Default)]
pub struct HttpStats {
    pub requests: AtomicU64,
    /// Heads refused: too long (414/431), malformed (400), with a body (413).
    pub refused: AtomicU64,
    /// Connections closed for a deadline: head, idle, or a client that did
    /// not read its answer.
    pub timed_out: AtomicU64,
    /// Connections evicted to make room, and newcomers answered 503.
    pub evicted: AtomicU64,
    pub busy: AtomicU64,
}

/// One connection in the table: a handle to shut it, and since when it has
/// waited for a request (None while it is answering one).
struct Entry {
    stream: TcpStream,
    waiting_since: Option<Instant>,
}

struct Shared {
    limits: Limits,
    handler: Handler,
    table: Mutex<HashMap<u64, Entry>>,
    next_id: AtomicU64,
    stop: AtomicBool,
    stats: Arc<HttpStats>,
}

pub struct Httpd {
    shared: Arc<Shared>,
    addr: SocketAddr,
    acceptor: Option<JoinHandle<()>>,
}

impl Httpd {
    /// Listens on `listener` and serves with `handler`.
    pub fn start(
        listener: TcpListener,
        limits: Limits,
        stats: Arc<HttpStats>,
        handler: Handler,
    ) -> std::io::Result<Httpd> {
        let addr = listener.local_addr()?;
        let shared = Arc::new(Shared {
            limits,
            handler,
            table: Mutex::new(HashMap::new()),
            next_id: AtomicU64::new(0),
            stop: AtomicBool::new(false),
            stats,
        });
        let s = shared.clone();
        let acceptor = std::thread::Builder::new()
            .name("http-accept".into())
            .spawn(move || accept_loop(listener, s))?;
        Ok(Httpd {
            shared,
            addr,
            acceptor: Some(acceptor),
        })
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    pub fn stats(&self) -> &HttpStats {
        &self.shared.stats
    }

    /// Connections open now.
    pub fn open(&self) -> usize {
        lock(&self.shared.table).len()
    }

    /// Stops accepting and closes every connection (answers in flight end
    /// at their next write).
    pub fn stop(mut self) {
        self.shared.stop.store(true, Ordering::SeqCst);
        // Wake the acceptor's blocking accept.
        let wake = match self.addr {
            SocketAddr::V4(a) if a.ip().is_unspecified() => {
                SocketAddr::from(([127, 0, 0, 1], a.port()))
            }
            SocketAddr::V6(a) if a.ip().is_unspecified() => {
                SocketAddr::from((std::net::Ipv6Addr::LOCALHOST, a.port()))
            }
            a => a,
        };
        let _ = TcpStream::connect_timeout(&wake, Duration::from_secs(1));
        if let Some(a) = self.acceptor.take() {
            let _ = a.join();
        }
        for (_, e) in lock(&self.shared.table).drain() {
            let _ = e.stream.shutdown(Shutdown::Both);
        }
    }
}

fn accept_loop(listener: TcpListener, shared: Arc<Shared>) {
    for conn in listener.incoming() {
        if shared.stop.load(Ordering::SeqCst) {
            return;
        }
        let stream = match conn {
            Ok(s) => s,
            Err(e) => {
                // EMFILE and the like: wait a moment instead of spinning.
                log::debug!("HTTP: accept: {e}");
                std::thread::sleep(Duration::from_millis(50));
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        let Ok(handle) = stream.try_clone() else {
            continue;
        };
        let id = shared.next_id.fetch_add(1, Ordering::Relaxed);
        {
            let mut table = lock(&shared.table);
            if table.len() >= shared.limits.max_conns {
                let oldest = table
                    .iter()
                    .filter_map(|(id, e)| e.waiting_since.map(|t| (t, *id)))
                    .min();
                match oldest {
                    Some((_, victim)) => {
                        if let Some(e) = table.remove(&victim) {
                            let _ = e.stream.shutdown(Shutdown::Both);
                        }
                        shared.stats.evicted.fetch_add(1, Ordering::Relaxed);
                    }
                    None => {
                        drop(table);
                        shared.stats.busy.fetch_add(1, Ordering::Relaxed);
                        busy(stream);
                        continue;
                    }
                }
            }
            table.insert(
                id,
                Entry {
                    stream: handle,
                    waiting_since: Some(Instant::now()),
                },
            );
        }
        let s = shared.clone();
        let spawned = std::thread::Builder::new()
            .name("http".into())
            .stack_size(256 << 10)
            .spawn(move || {
                serve(&s, id, stream);
                lock(&s.table).remove(&id);
            });
        if spawned.is_err() {
            lock(&shared.table).remove(&id);
        }
    }
}

/// Every connection is answering: a fast 503, written in a short time.
fn busy(mut stream: TcpStream) {
    let _ = stream.set_write_timeout(Some(Duration::from_millis(200)));
    let _ = stream.write_all(
        b"HTTP/1.1 503 Service Unavailable\r\nContent-Length: 5\r\nConnection: close\r\nRetry-After: 1\r\n\r\nbusy\n",
    );
    let _ = stream.shutdown(Shutdown::Both);
}

fn reason(code: u16) -> &'static str {
    match code {
        200 => "OK",
        206 => "Partial Content",
        304 => "Not Modified",
        400 => "Bad Request",
        401 => "Unauthorized",
        404 => "Not Found",
        405 => "Method Not Allowed",
        408 => "Request Timeout",
        413 => "Content Too Large",
        414 => "URI Too Long",
        416 => "Range Not Satisfiable",
        431 => "Request Header Fields Too Large",
        503 => "Service Unavailable",
        _ => "",
    }
}

/// Writes an answer under its deadline: the head in
/// [`Limits::write_deadline`], the body in that plus its time at the floor
/// rate. A HEAD request gets the head only.
fn write_answer(
    stream: &TcpStream,
    method: &str,
    resp: Response,
    keep: bool,
    limits: &Limits,
) -> std::io::Result<()> {
    let len = resp.len();
    let deadline = Instant::now()
        + limits.write_deadline
        + Duration::from_millis(len.saturating_mul(1000) / limits.floor_rate.max(1));
    let mut head = format!("HTTP/1.1 {} {}\r\n", resp.status, reason(resp.status));
    for (k, v) in &resp.headers {
        head.push_str(k);
        head.push_str(": ");
        head.push_str(v);
        head.push_str("\r\n");
    }
    head.push_str(&format!("Content-Length: {len}\r\n"));
    head.push_str(if keep {
        "Connection: keep-alive\r\n\r\n"
    } else {
        "Connection: close\r\n\r\n"
    });
    let mut w = Deadline::new(stream, deadline, "the client does not take its answer");
    w.write_all(head.as_bytes())?;
    if method != "HEAD" {
        match resp.body {
            Body::Bytes(b) => w.write_all(&b)?,
            Body::File(f, n) => {
                let copied = std::io::copy(&mut f.take(n), &mut w)?;
                if copied != n {
                    return Err(std::io::Error::new(
                        std::io::ErrorKind::UnexpectedEof,
                        "the file ended early",
                    ));
                }
            }
        }
    }
    w.flush()?;
    if !keep {
        let _ = stream.shutdown(Shutdown::Write);
    }
    Ok(())
}

#[cfg(test)]
mod tests;
