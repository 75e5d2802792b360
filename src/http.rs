//! `--http-bind`: a small blocking HTTP server (tiny_http) on a few threads
//! of its own, for operators and technicians: `/metrics` (Prometheus text),
//! `/healthz`, and the gallery with its thumbnails, media and sidecars,
//! read-only, never outside the output folder, never through a symlink.
//! Beyond loopback it asks for `--http-token` (Bearer, or basic auth with
//! the token as password, so a browser can ask for it).

use std::fmt::Write as _;
use std::fs::File;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::sync::Arc;

use anyhow::{anyhow, bail, Result};
use tiny_http::{Header, Method, Request, Response, Server};

use crate::delivery::DeliveryHandle;
use crate::metrics::Metrics;
use crate::server::StopHandle;

/// What the endpoint reads.
#[derive(Clone)]
pub struct Sources {
    pub root: PathBuf,
    pub server: StopHandle,
    pub delivery: Option<DeliveryHandle>,
    /// Videos waiting for conversion, when conversion is on.
    pub convert_queue: Option<Arc<dyn Fn() -> usize + Send + Sync>>,
    /// Conversions done and failed, when conversion is on.
    pub convert_stats: Option<Arc<crate::convert::ConvertStats>>,
}

pub struct HttpEndpoint {
    server: Arc<Server>,
    threads: Vec<std::thread::JoinHandle<()>>,
    addr: SocketAddr,
}

impl HttpEndpoint {
    /// Binds and serves on 2 threads. Beyond loopback without a token: an error.
    pub fn start(bind: SocketAddr, token: Option<String>, src: Sources) -> Result<HttpEndpoint> {
        if !bind.ip().is_loopback() && token.is_none() {
            bail!("--http-bind {bind} is reachable beyond this machine: add --http-token (the gallery shows every camera's files)");
        }
        let server = Arc::new(
            Server::http(bind).map_err(|e| anyhow!("--http-bind {bind}: cannot listen: {e}"))?,
        );
        let addr = server
            .server_addr()
            .to_ip()
            .ok_or_else(|| anyhow!("--http-bind {bind}: not an IP address"))?;
        let token = Arc::new(token);
        let threads = (0..2)
            .map(|i| {
                let (server, src, token) = (server.clone(), src.clone(), token.clone());
                std::thread::Builder::new()
                    .name(format!("http-{i}"))
                    .spawn(move || {
                        for req in server.incoming_requests() {
                            handle(req, &src, token.as_deref());
                        }
                    })
                    .map_err(|e| anyhow!("starting the HTTP thread: {e}"))
            })
            .collect::<Result<Vec<_>>>()?;
        log::info!("HTTP: /metrics, /healthz and the gallery on http://{addr}/");
        Ok(HttpEndpoint {
            server,
            threads,
            addr,
        })
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    pub fn stop(self) {
        self.server.unblock();
        self.server.unblock();
        for t in self.threads {
            let _ = t.join();
        }
    }
}

fn header(name: &str, value: &str) -> Header {
    Header::from_bytes(name.as_bytes(), value.as_bytes()).expect("ASCII header")
}

fn authorized(req: &Request, token: Option<&str>) -> bool {
    let Some(token) = token else {
        return true;
    };
    let Some(auth) = req
        .headers()
        .iter()
        .find(|h| h.field.equiv("Authorization"))
        .map(|h| h.value.as_str().trim().to_string())
    else {
        return false;
    };
    if let Some(b) = auth.strip_prefix("Bearer ") {
        return constant_eq(b.trim().as_bytes(), token.as_bytes());
    }
    if let Some(b) = auth.strip_prefix("Basic ") {
        let Some(decoded) = unbase64(b.trim()) else {
            return false;
        };
        let pass = decoded
            .iter()
            .position(|&c| c == b':')
            .map_or(&decoded[..], |i| &decoded[i + 1..]);
        return constant_eq(pass, token.as_bytes());
    }
    false
}

fn constant_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

fn unbase64(s: &str) -> Option<Vec<u8>> {
    let val = |c: u8| -> Option<u32> {
        Some(match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'+' => 62,
            b'/' => 63,
            _ => return None,
        } as u32)
    };
    let s = s.trim_end_matches('=').as_bytes();
    if s.len() > 4096 {
        return None;
    }
    let mut out = Vec::with_capacity(s.len() * 3 / 4);
    for chunk in s.chunks(4) {
        let mut n = 0u32;
        for (i, &c) in chunk.iter().enumerate() {
            n |= val(c)? << (18 - 6 * i);
        }
        let bytes = [(n >> 16) as u8, (n >> 8) as u8, n as u8];
        out.extend_from_slice(&bytes[..chunk.len().saturating_sub(1)]);
    }
    Some(out)
}

fn handle(req: Request, src: &Sources, token: Option<&str>) {
    let url = req.url().to_string();
    let path = url.split('?').next().unwrap_or("/").to_string();
    let result = if !matches!(req.method(), Method::Get | Method::Head) {
        req.respond(Response::from_string("read-only\n").with_status_code(405))
    } else if path == "/healthz" {
        // Health carries no data: open to a load balancer's check.
        let (code, text) = health(src);
        req.respond(Response::from_string(text).with_status_code(code))
    } else if !authorized(&req, token) {
        req.respond(
            Response::from_string("a token is needed: Authorization: Bearer TOKEN\n")
                .with_status_code(401)
                .with_header(header("WWW-Authenticate", "Basic realm=\"dashcam-server\"")),
        )
    } else if path == "/metrics" {
        req.respond(Response::from_string(metrics_text(src)).with_header(header(
            "Content-Type",
            "text/plain; version=0.0.4; charset=utf-8",
        )))
    } else {
        serve_file(req, &src.root, &path)
    };
    if let Err(e) = result {
        log::debug!("HTTP {url}: {e}");
    }
}

/// 200 while the listener runs and the output folder takes a file.
fn health(src: &Sources) -> (u16, String) {
    if !src.server.is_running() {
        return (503, "stopping\n".into());
    }
    let probe = src
        .root
        .join(format!(".healthz-{}.tmp", std::process::id()));
    let writable = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .open(&probe)
        .and_then(|mut f| std::io::Write::write_all(&mut f, b"ok"))
        .and_then(|_| std::fs::remove_file(&probe));
    match writable {
        Ok(()) => (200, "ok\n".into()),
        Err(e) => (503, format!("the output folder is not writable: {e}\n")),
    }
}

fn metrics_text(src: &Sources) -> String {
    use Kind::{Counter, Gauge};
    let m: &Metrics = src.server.metrics();
    let get = |a: &std::sync::atomic::AtomicU64| a.load(Ordering::Relaxed);
    // (name, kind, help, value), in the order they are written.
    let mut rows: Vec<(&str, Kind, &str, u64)> = vec![
        (
            "dashcam_connections",
            Gauge,
            "Connections open now.",
            src.server.connections() as u64,
        ),
        (
            "dashcam_sessions_total",
            Counter,
            "Sessions ended.",
            get(&m.sessions),
        ),
        (
            "dashcam_sessions_failed_total",
            Counter,
            "Sessions that ended in error.",
            get(&m.failed_sessions),
        ),
        (
            "dashcam_files_stored_total",
            Counter,
            "Files stored (new ones).",
            get(&m.files),
        ),
        (
            "dashcam_files_duplicate_total",
            Counter,
            "Files sent again that were stored already.",
            get(&m.duplicates),
        ),
        (
            "dashcam_bytes_stored_total",
            Counter,
            "Bytes of the files stored.",
            get(&m.bytes_stored),
        ),
        (
            "dashcam_bytes_received_total",
            Counter,
            "File bytes received.",
            get(&m.bytes_received),
        ),
        (
            "dashcam_crc_errors_total",
            Counter,
            "DATA packets whose CRC did not match.",
            get(&m.crc_errors),
        ),
        (
            "dashcam_resumes_total",
            Counter,
            "Files that resumed a partial.",
            get(&m.resumes),
        ),
        (
            "dashcam_panics_total",
            Counter,
            "Camera threads that failed (bugs).",
            get(&m.panics),
        ),
    ];
    if let Some(q) = &src.convert_queue {
        rows.push((
            "dashcam_conversion_queue",
            Gauge,
            "Videos waiting for conversion.",
            q() as u64,
        ));
    }
    if let Some(c) = &src.convert_stats {
        rows.push((
            "dashcam_conversions_total",
            Counter,
            "Videos converted to mp4.",
            get(&c.done),
        ));
        rows.push((
            "dashcam_conversion_failures_total",
            Counter,
            "Conversions that failed (retried at the next start).",
            get(&c.failed),
        ));
    }
    if let Some(d) = &src.delivery {
        let s = d.stats();
        let (up, hooks) = d.queued();
        rows.extend([
            (
                "dashcam_upload_queue",
                Gauge,
                "Uploads waiting in the outbox.",
                up,
            ),
            (
                "dashcam_uploads_total",
                Counter,
                "Uploads the store confirmed.",
                get(&s.uploads_done),
            ),
            (
                "dashcam_upload_failures_total",
                Counter,
                "Upload attempts that failed (retried).",
                get(&s.upload_failures),
            ),
            (
                "dashcam_webhook_queue",
                Gauge,
                "Events waiting in the outbox.",
                hooks,
            ),
            (
                "dashcam_webhooks_total",
                Counter,
                "Events the receiver confirmed.",
                get(&s.webhooks_done),
            ),
            (
                "dashcam_webhook_failures_total",
                Counter,
                "Event attempts that failed (retried).",
                get(&s.webhook_failures),
            ),
            (
                "dashcam_outbox_set_aside_total",
                Counter,
                "Jobs set aside in the outbox (.failed: refused for good; .bad: not a job the server makes).",
                get(&s.set_aside),
            ),
            (
                "dashcam_local_kept_unconfirmed_total",
                Counter,
                "Times a local copy was kept because the store did not show its object as sent.",
                get(&s.kept_unconfirmed),
            ),
            (
                "dashcam_outbox_oldest_seconds",
                Gauge,
                "Age of the oldest upload or event still waiting (0: none); alert when it grows.",
                d.oldest_waiting().as_secs(),
            ),
        ]);
    }
    let mut out = String::new();
    for (name, kind, help, value) in rows {
        let kind = match kind {
            Counter => "counter",
            Gauge => "gauge",
        };
        let _ = writeln!(
            out,
            "# HELP {name} {help}\n# TYPE {name} {kind}\n{name} {value}"
        );
    }
    let ends = m.ends.lock().unwrap_or_else(|e| e.into_inner()).clone();
    let _ = writeln!(
        out,
        "# HELP dashcam_session_ends_total Sessions and refused connections, by how they ended.\n# TYPE dashcam_session_ends_total counter"
    );
    for (label, n) in ends {
        let _ = writeln!(out, "dashcam_session_ends_total{{reason=\"{label}\"}} {n}");
    }
    out
}

#[derive(Clone, Copy)]
enum Kind {
    Counter,
    Gauge,
}

fn content_type(p: &Path) -> &'static str {
    match p.extension().and_then(|e| e.to_str()).unwrap_or("") {
        "html" => "text/html; charset=utf-8",
        "json" | "jsonl" => "application/json",
        "jpg" | "jpeg" => "image/jpeg",
        "png" => "image/png",
        "mp4" => "video/mp4",
        "css" => "text/css",
        "js" => "text/javascript",
        _ => "application/octet-stream",
    }
}

fn percent_decode(s: &str) -> Option<String> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' {
            let h = std::str::from_utf8(b.get(i + 1..i + 3)?).ok()?;
            out.push(u8::from_str_radix(h, 16).ok()?);
            i += 3;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

/// A file under the output folder: plain names, no dot files (the outbox,
/// partials), never through a symlink.
fn local_file(root: &Path, url_path: &str) -> Option<PathBuf> {
    let rel = percent_decode(url_path.trim_start_matches('/'))?;
    let rel = if rel.is_empty() {
        "index.html".to_string()
    } else {
        rel
    };
    // The gallery's thumbnails are the one dot folder served.
    let p = crate::storage::under_root(root, &rel, Some(crate::storage::derived::THUMBS))?;
    std::fs::symlink_metadata(&p)
        .is_ok_and(|m| m.is_file())
        .then_some(p)
}

fn serve_file(req: Request, root: &Path, url_path: &str) -> std::io::Result<()> {
    let Some(p) = local_file(root, url_path) else {
        return req.respond(Response::from_string("not found\n").with_status_code(404));
    };
    match File::open(&p) {
        Ok(f) => req
            .respond(Response::from_file(f).with_header(header("Content-Type", content_type(&p)))),
        Err(_) => req.respond(Response::from_string("not found\n").with_status_code(404)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_never_leave_the_output_folder() {
        let tmp = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(tmp.path().join("1/.partial")).unwrap();
        std::fs::write(tmp.path().join("1/a.jpg"), b"x").unwrap();
        std::fs::write(tmp.path().join("1/.partial/p.part"), b"x").unwrap();
        std::fs::write(tmp.path().join("index.html"), b"x").unwrap();
        assert_eq!(
            local_file(tmp.path(), "/1/a.jpg"),
            Some(tmp.path().join("1/a.jpg"))
        );
        assert_eq!(
            local_file(tmp.path(), "/"),
            Some(tmp.path().join("index.html"))
        );
        for bad in [
            "/../etc/passwd",
            "/1/%2e%2e/%2e%2e/x",
            "/1/.partial/p.part",
            "/.outbox/x",
            "/1",
            "/%00",
        ] {
            assert_eq!(local_file(tmp.path(), bad), None, "{bad}");
        }
        #[cfg(unix)]
        {
            std::os::unix::fs::symlink("/etc", tmp.path().join("2")).unwrap();
            assert_eq!(local_file(tmp.path(), "/2/passwd"), None);
        }
    }

    #[test]
    fn basic_auth_carries_the_token_as_password() {
        assert_eq!(unbase64("dTpzZWNyZXQ=").unwrap(), b"u:secret");
        assert!(constant_eq(b"abc", b"abc"));
        assert!(!constant_eq(b"abc", b"abd"));
    }
}
