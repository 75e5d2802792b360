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

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
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

/// Why a head was not read.
enum HeadError {
    /// Closed, reset, or no request before the idle timeout: nothing to say.
    Gone,
    /// Begun but not complete before its deadline.
    TimedOut,
    /// Refused with this status.
    Refused(u16, &'static str),
    /// A line longer than it may be (the caller says which status).
    TooLong,
}

fn set_waiting(shared: &Shared, id: u64, waiting: bool) {
    if let Some(e) = lock(&shared.table).get_mut(&id) {
        e.waiting_since = waiting.then(Instant::now);
    }
}

fn serve(shared: &Shared, id: u64, stream: TcpStream) {
    let limits = shared.limits;
    let Ok(read_half) = stream.try_clone() else {
        return;
    };
    let mut reader = BufReader::with_capacity(8 << 10, read_half);
    let mut first = true;
    loop {
        set_waiting(shared, id, true);
        // The first request comes with the connection; later ones may wait
        // for the idle timeout.
        let wait = if first {
            limits.head_deadline
        } else {
            limits.idle
        };
        first = false;
        let req = match read_head(&mut reader, &stream, &limits, wait) {
            Ok(r) => r,
            // (read_head answers a line too long with 414 or 431.)
            Err(HeadError::Gone | HeadError::TooLong) => return,
            Err(HeadError::TimedOut) => {
                shared.stats.timed_out.fetch_add(1, Ordering::Relaxed);
                let _ = write_answer(
                    &stream,
                    "GET",
                    Response::text(408, "the request head took too long\n"),
                    false,
                    &limits,
                );
                return;
            }
            Err(HeadError::Refused(code, why)) => {
                shared.stats.refused.fetch_add(1, Ordering::Relaxed);
                let _ = write_answer(&stream, "GET", Response::text(code, why), false, &limits);
                return;
            }
        };
        set_waiting(shared, id, false);
        shared.stats.requests.fetch_add(1, Ordering::Relaxed);
        let has_body = req.header("Transfer-Encoding").is_some()
            || req
                .header("Content-Length")
                .is_some_and(|v| v.trim() != "0");
        if has_body {
            shared.stats.refused.fetch_add(1, Ordering::Relaxed);
            let _ = write_answer(
                &stream,
                &req.method,
                Response::text(413, "read-only: no request body is taken\n"),
                false,
                &limits,
            );
            return;
        }
        let keep = keep_alive(&req);
        let resp = (shared.handler)(&req);
        if let Err(e) = write_answer(&stream, &req.method, resp, keep, &limits) {
            if matches!(
                e.kind(),
                std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
            ) {
                shared.stats.timed_out.fetch_add(1, Ordering::Relaxed);
            }
            return;
        }
        if !keep || shared.stop.load(Ordering::SeqCst) {
            return;
        }
    }
}

fn keep_alive(req: &Request) -> bool {
    let conn = req.header("Connection").unwrap_or("").to_ascii_lowercase();
    if req.http10 {
        return conn.contains("keep-alive");
    }
    !conn.contains("close")
}

/// Reads one line (to `\n`) of at most `max` bytes into `line`, waiting at
/// most until `deadline` (None: until `idle_until`, for the first byte).
fn read_line(
    reader: &mut BufReader<TcpStream>,
    stream: &TcpStream,
    line: &mut Vec<u8>,
    max: usize,
    deadline: &mut Option<Instant>,
    idle_until: Instant,
    head_deadline: Duration,
) -> Result<(), HeadError> {
    loop {
        let until = deadline.unwrap_or(idle_until);
        let left = until.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(if deadline.is_some() {
                HeadError::TimedOut
            } else {
                HeadError::Gone
            });
        }
        let _ = stream.set_read_timeout(Some(left));
        let buf = match reader.fill_buf() {
            Ok([]) => return Err(HeadError::Gone),
            Ok(b) => b,
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) =>
            {
                continue
            }
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(_) => return Err(HeadError::Gone),
        };
        if deadline.is_none() {
            *deadline = Some(Instant::now() + head_deadline);
        }
        let (take, done) = match buf.iter().position(|&b| b == b'\n') {
            Some(i) => (i + 1, true),
            None => (buf.len(), false),
        };
        if line.len() + take > max {
            return Err(HeadError::TooLong);
        }
        line.extend_from_slice(&buf[..take]);
        reader.consume(take);
        if done {
            return Ok(());
        }
    }
}

fn read_head(
    reader: &mut BufReader<TcpStream>,
    stream: &TcpStream,
    limits: &Limits,
    wait: Duration,
) -> Result<Request, HeadError> {
    let idle_until = Instant::now() + wait;
    let mut deadline = None;
    let mut line = Vec::with_capacity(256);
    // Empty lines before a request are allowed (RFC 9112 2.2), a few.
    let mut blank = 0;
    let request_line = loop {
        line.clear();
        match read_line(
            reader,
            stream,
            &mut line,
            limits.max_line,
            &mut deadline,
            idle_until,
            limits.head_deadline,
        ) {
            Err(HeadError::TooLong) => {
                return Err(HeadError::Refused(
                    414,
                    "request line too long (8 KiB at most)\n",
                ))
            }
            Err(e) => return Err(e),
            Ok(()) => {}
        }
        let text = trim_eol(&line);
        if !text.is_empty() {
            break text.to_vec();
        }
        blank += 1;
        if blank > 4 {
            return Err(HeadError::Refused(400, "bad request\n"));
        }
    };
    let bad = HeadError::Refused(400, "bad request\n");
    let request_line = String::from_utf8(request_line).map_err(|_| bad)?;
    let mut parts = request_line.split(' ');
    let (Some(method), Some(target), Some(version), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(HeadError::Refused(400, "bad request\n"));
    };
    if !version.starts_with("HTTP/1.")
        || method.is_empty()
        || !method.bytes().all(|b| b.is_ascii_uppercase())
        || !target.starts_with('/')
    {
        return Err(HeadError::Refused(400, "bad request\n"));
    }
    let mut total = line.len();
    let mut headers = Vec::new();
    loop {
        line.clear();
        let room = limits.max_head.saturating_sub(total);
        match read_line(
            reader,
            stream,
            &mut line,
            room.min(limits.max_head),
            &mut deadline,
            idle_until,
            limits.head_deadline,
        ) {
            Err(HeadError::TooLong) => {
                return Err(HeadError::Refused(
                    431,
                    "request headers too large (64 KiB at most)\n",
                ))
            }
            Err(e) => return Err(e),
            Ok(()) => {}
        }
        total += line.len();
        let text = trim_eol(&line);
        if text.is_empty() {
            break;
        }
        if text[0] == b' ' || text[0] == b'\t' {
            return Err(HeadError::Refused(400, "bad request (folded header)\n"));
        }
        let text =
            std::str::from_utf8(text).map_err(|_| HeadError::Refused(400, "bad request\n"))?;
        let Some((name, value)) = text.split_once(':') else {
            return Err(HeadError::Refused(400, "bad request\n"));
        };
        if name.is_empty() || name.contains([' ', '\t']) {
            return Err(HeadError::Refused(400, "bad request\n"));
        }
        headers.push((name.to_string(), value.trim().to_string()));
    }
    Ok(Request {
        method: method.to_string(),
        target: target.to_string(),
        headers,
        http10: version == "HTTP/1.0",
    })
}

fn trim_eol(line: &[u8]) -> &[u8] {
    let line = line.strip_suffix(b"\n").unwrap_or(line);
    line.strip_suffix(b"\r").unwrap_or(line)
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
    let mut w = Deadlined { stream, deadline };
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

/// A writer whose every write must end before one deadline.
struct Deadlined<'a> {
    stream: &'a TcpStream,
    deadline: Instant,
}

impl Write for Deadlined<'_> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let left = self.deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(std::io::Error::new(
                std::io::ErrorKind::TimedOut,
                "the client does not take its answer",
            ));
        }
        self.stream.set_write_timeout(Some(left))?;
        (&mut &*self.stream).write(buf)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn serve_ok(limits: Limits) -> Httpd {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        Httpd::start(
            l,
            limits,
            Arc::default(),
            Arc::new(|r: &Request| Response::text(200, format!("{} {}\n", r.method, r.path()))),
        )
        .unwrap()
    }

    fn exchange(addr: SocketAddr, bytes: &[u8]) -> String {
        let mut s = TcpStream::connect(addr).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        let _ = s.write_all(bytes);
        let mut out = Vec::new();
        let _ = s.read_to_end(&mut out);
        String::from_utf8_lossy(&out).into_owned()
    }

    #[test]
    fn bounded_heads_get_414_431_and_400() {
        let h = serve_ok(Limits::default());
        let a = h.local_addr();
        let ok = exchange(
            a,
            b"GET /x HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n",
        );
        assert!(
            ok.starts_with("HTTP/1.1 200 OK\r\n") && ok.ends_with("GET /x\n"),
            "{ok}"
        );
        let long = format!("GET /{} HTTP/1.1\r\n\r\n", "a".repeat(9000));
        assert!(exchange(a, long.as_bytes()).starts_with("HTTP/1.1 414"));
        let mut many = String::from("GET / HTTP/1.1\r\n");
        for i in 0..3000 {
            many.push_str(&format!("X-{i}: {}\r\n", "v".repeat(20)));
        }
        many.push_str("\r\n");
        assert!(exchange(a, many.as_bytes()).starts_with("HTTP/1.1 431"));
        assert!(exchange(a, b"BLAH\r\n\r\n").starts_with("HTTP/1.1 400"));
        assert!(
            exchange(a, b"POST / HTTP/1.1\r\nContent-Length: 5\r\n\r\nhello")
                .starts_with("HTTP/1.1 413")
        );
        let head = exchange(a, b"HEAD /y HTTP/1.1\r\nConnection: close\r\n\r\n");
        assert!(
            head.contains("Content-Length: 8\r\n") && head.ends_with("\r\n\r\n"),
            "{head}"
        );
        h.stop();
    }

    #[test]
    fn pipelined_requests_are_answered_in_order() {
        let h = serve_ok(Limits::default());
        let out = exchange(
            h.local_addr(),
            b"GET /a HTTP/1.1\r\n\r\nGET /b HTTP/1.1\r\nConnection: close\r\n\r\n",
        );
        let a = out.find("GET /a").unwrap();
        let b = out.find("GET /b").unwrap();
        assert!(a < b, "{out}");
        h.stop();
    }

    #[test]
    fn a_full_table_evicts_the_longest_waiting_connection() {
        let limits = Limits {
            max_conns: 4,
            ..Limits::default()
        };
        let h = serve_ok(limits);
        let idle: Vec<TcpStream> = (0..4)
            .map(|_| TcpStream::connect(h.local_addr()).unwrap())
            .collect();
        let began = Instant::now();
        while h.open() < 4 {
            assert!(began.elapsed() < Duration::from_secs(10));
            std::thread::sleep(Duration::from_millis(5));
        }
        let ok = exchange(
            h.local_addr(),
            b"GET /healthz HTTP/1.1\r\nConnection: close\r\n\r\n",
        );
        assert!(ok.starts_with("HTTP/1.1 200"), "{ok}");
        assert!(h.stats().evicted.load(Ordering::Relaxed) >= 1);
        drop(idle);
        h.stop();
    }
}
