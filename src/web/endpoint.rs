//! `--http-bind`: the endpoint for operators and technicians, served by
//! [`crate::web::httpd`] (bounded heads, deadlines, a bounded connection table
//! of its own, apart from the cameras'): `/metrics` (Prometheus text),
//! `/healthz`, `/cameras` (a live page of the cameras, from `/api/cameras`),
//! and the gallery with its thumbnails, media (with `Range`, so players
//! seek) and sidecars, read-only, never outside the output folder, never
//! through a symlink.
//! Beyond loopback it asks for `--http-token` (Bearer, or basic auth with
//! the token as password, so a browser can ask for it) of 16 characters or
//! more.

use std::fmt::Write as _;
use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::sync::Arc;

use crate::delivery::DeliveryHandle;
use crate::net::server::StopHandle;
use crate::ops::metrics::Metrics;
use crate::web::httpd::{Body, HttpStats, Httpd, Limits, Request, Response};

mod metrics;
use metrics::*;

/// The shortest `--http-token` taken: a guessable one is no lock.
pub const MIN_TOKEN: usize = 16;

/// What the endpoint reads.
#[derive(Clone)]
pub struct Sources {
    pub root: PathBuf,
    pub server: StopHandle,
    pub delivery: Option<DeliveryHandle>,
    /// Videos waiting for conversion, when conversion is on.
    pub convert_queue: Option<Arc<dyn Fn() -> usize + Send + Sync>>,
    /// Conversions done and failed, when conversion is on.
    pub convert_stats: Option<Arc<crate::tools::convert::ConvertStats>>,
}

pub struct HttpEndpoint {
    server: Httpd,
}

/// Why the endpoint did not start: each is a configuration error (exit 2).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StartError {
    #[error("--http-token is blank: give a secret of {MIN_TOKEN} characters or more (e.g. openssl rand -hex 16)")]
    BlankToken,
    #[error(
        "--http-token is {0} characters: give {MIN_TOKEN} or more (e.g. openssl rand -hex 16)"
    )]
    ShortToken(usize),
    #[error("--http-token has a space or a control character: give printable characters only")]
    TokenCharacters,
    #[error("--http-bind {0} is reachable beyond this machine: add --http-token (the gallery shows every camera's files)")]
    NoToken(SocketAddr),
    #[error("--http-bind {bind}: cannot listen: {source}")]
    Listen {
        bind: SocketAddr,
        #[source]
        source: std::io::Error,
    },
    #[error("starting the HTTP endpoint: {0}")]
    Start(#[source] std::io::Error),
}

/// A 200 answer a browser must not keep: the live page and its data
/// change every second.
fn not_cached(content_type: &'static str, body: Vec<u8>) -> Response {
    Response {
        status: 200,
        headers: vec![
            ("Content-Type", content_type.into()),
            ("Cache-Control", "no-store".into()),
        ],
        body: Body::Bytes(body),
    }
}

/// A token is at least [`MIN_TOKEN`] characters, none of them blank or a
/// control character; Err says what is wrong (the server does not start).
pub fn check_token(token: &str) -> Result<(), StartError> {
    if token.trim().is_empty() {
        return Err(StartError::BlankToken);
    }
    let n = token.chars().count();
    if n < MIN_TOKEN {
        return Err(StartError::ShortToken(n));
    }
    if token.chars().any(|c| c.is_control() || c.is_whitespace()) {
        return Err(StartError::TokenCharacters);
    }
    Ok(())
}

impl HttpEndpoint {
    /// Binds and serves. Beyond loopback without a token, or with a token
    /// shorter than [`MIN_TOKEN`]: an error.
    pub fn start(
        bind: SocketAddr,
        token: Option<String>,
        src: Sources,
    ) -> Result<HttpEndpoint, StartError> {
        Self::start_with(bind, token, src, Limits::default())
    }

    pub fn start_with(
        bind: SocketAddr,
        token: Option<String>,
        src: Sources,
        limits: Limits,
    ) -> Result<HttpEndpoint, StartError> {
        if let Some(t) = &token {
            check_token(t)?;
        }
        if !bind.ip().is_loopback() && token.is_none() {
            return Err(StartError::NoToken(bind));
        }
        let listener =
            TcpListener::bind(bind).map_err(|source| StartError::Listen { bind, source })?;
        let stats: Arc<HttpStats> = Arc::default();
        let st = stats.clone();
        let handler = Arc::new(move |req: &Request| handle(req, &src, &st, token.as_deref()));
        let server = Httpd::start(listener, limits, stats, handler).map_err(StartError::Start)?;
        log::info!(
            "HTTP: /metrics, /healthz, /cameras and the gallery on http://{}/",
            server.local_addr()
        );
        Ok(HttpEndpoint { server })
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.server.local_addr()
    }

    pub fn stop(self) {
        self.server.stop();
    }
}

fn authorized(req: &Request, token: Option<&str>) -> bool {
    let Some(token) = token else {
        return true;
    };
    let Some(auth) = req.header("Authorization") else {
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

/// Equal, in a time that does not tell how much of a guess was right.
fn constant_eq(a: &[u8], b: &[u8]) -> bool {
    use subtle::ConstantTimeEq;
    a.ct_eq(b).into()
}

/// Basic auth's base64 (bounded: a header is at most a few KiB anyway).
fn unbase64(s: &str) -> Option<Vec<u8>> {
    use base64::Engine;
    if s.len() > 4096 {
        return None;
    }
    base64::engine::general_purpose::STANDARD.decode(s).ok()
}

fn handle(req: &Request, src: &Sources, http: &HttpStats, token: Option<&str>) -> Response {
    let path = req.path();
    if !matches!(req.method.as_str(), "GET" | "HEAD") {
        Response::text(405, "read-only\n").with_header("Allow", "GET, HEAD")
    } else if path == "/healthz" {
        // Health carries no data: open to a load balancer's check.
        let (code, text) = health(src);
        Response::text(code, text)
    } else if !authorized(req, token) {
        Response::text(401, "a token is needed: Authorization: Bearer TOKEN\n")
            .with_header("WWW-Authenticate", "Basic realm=\"dashcam-server\"")
    } else if path == "/api/cameras" {
        not_cached(
            "application/json",
            src.server.board().snapshot().to_string().into_bytes(),
        )
    } else if path == "/cameras" {
        not_cached("text/html; charset=utf-8", CAMERAS_PAGE.as_bytes().to_vec())
    } else if path == "/metrics" {
        Response::text(200, metrics_text(src, http))
            .with_header("Content-Type", "text/plain; version=0.0.4; charset=utf-8")
    } else {
        serve_file(&src.root, path, req.header("Range"))
    }
}

/// `/cameras`: the cameras connected now (with their file's progress) and
/// those seen in the last 24 hours, from `/api/cameras`, refreshed every
/// second by the page itself (short polling: one small GET, no connection
/// held open, so the endpoint's bounded connection table is not tied up).
const CAMERAS_PAGE: &str = r#"<!doctype html>
<html><head><meta charset="utf-8"><title>dashcam-server: cameras</title>
<meta name="viewport" content="width=device-width,initial-scale=1">
<style>
body{font-family:sans-serif;margin:1em;background:#f6f6f6;color:#222}
h1{font-size:1.4em}h2{font-size:1.15em;margin-top:1.4em}
table{border-collapse:collapse;background:#fff;font-size:13px}
th,td{border:1px solid #ccc;padding:3px 6px;text-align:left;vertical-align:top}
th{background:#eee}.mono{font-family:monospace}.bad{color:#b00}
.bar{width:160px;height:14px;background:#ddd;border-radius:3px;overflow:hidden;display:inline-block;vertical-align:middle}
.bar>i{display:block;height:100%;background:#2a7}
#status{color:#666;font-size:12px}
</style></head><body>
<h1>Cameras</h1>
<p id="status">loading...</p>
<h2>Connected now (<span id="n-now">0</span>)</h2>
<table id="now"><thead><tr><th>IMEI</th><th>address</th><th>family</th><th>protocol</th><th>file</th><th>progress</th><th>rate</th><th>time left</th></tr></thead><tbody></tbody></table>
<h2>Seen in the last 24 h (<span id="n-recent">0</span>)</h2>
<table id="recent"><thead><tr><th>IMEI</th><th>address</th><th>family</th><th>last seen</th><th>last file</th><th>last error</th></tr></thead><tbody></tbody></table>
<p><a href="/">the gallery</a> · <a href="/api/cameras">as JSON</a></p>
<script>
function esc(s){return String(s==null?'':s).replace(/[&<>"']/g,function(c){return{'&':'&amp;','<':'&lt;','>':'&gt;','"':'&quot;',"'":'&#39;'}[c];});}
function size(b){if(b==null)return'';return b>=1e6?(b/1e6).toFixed(1)+' MB':(b/1e3).toFixed(1)+' kB';}
function left(s){if(s==null)return'';return s>=60?Math.floor(s/60)+' min '+(s%60)+' s':s+' s';}
function rows(id,list,cells){var b=document.querySelector('#'+id+' tbody');b.innerHTML=list.map(function(c){return'<tr>'+cells(c).map(function(x){return'<td>'+x+'</td>';}).join('')+'</tr>';}).join('');document.getElementById('n-'+(id=='now'?'now':'recent')).textContent=list.length;}
function draw(d){
rows('now',d.connected,function(c){var p=c.percent;return['<span class="mono">'+esc(c.imei||'(before init)')+'</span>',esc(c.address),esc(c.family),esc(c.protocol),'<span class="mono">'+esc(c.file||'')+'</span>',p==null?'':'<span class="bar"><i style="width:'+p+'%"></i></span> '+p.toFixed(1)+'% ('+size(c.bytes)+' of '+size(c.total)+')',c.bytes_per_s==null?'':size(c.bytes_per_s)+'/s',left(c.seconds_left)];});
rows('recent',d.recent,function(c){return['<span class="mono">'+esc(c.imei)+'</span>',esc(c.address),esc(c.family),esc(c.last_seen),'<span class="mono">'+esc(c.last_file||'')+'</span>',c.last_error?'<span class="bad">'+esc(c.last_error)+'</span>':''];});
document.getElementById('status').textContent='updated '+d.now;document.body.dataset.updated=d.now;}
function poll(){fetch('/api/cameras',{cache:'no-store',credentials:'same-origin'}).then(function(r){if(!r.ok)throw new Error('HTTP '+r.status);return r.json();}).then(draw).catch(function(e){document.getElementById('status').textContent='cannot reach the server: '+e.message;}).finally(function(){setTimeout(poll,1000);});}
poll();
</script></body></html>
"#;

/// 200 while the listener runs and the output folder takes a file.
fn health(src: &Sources) -> (u16, String) {
    if !src.server.is_running() {
        return (503, "stopping\n".into());
    }
    // Created new, never through a symlink planted under that name.
    let probe = format!(".healthz-{}.tmp", std::process::id());
    match crate::storage::probe_write(&src.root, &probe) {
        Ok(()) => (200, "ok\n".into()),
        Err(e) => (503, format!("the output folder is not writable: {e}\n")),
    }
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
    percent_encoding::percent_decode_str(s)
        .decode_utf8()
        .ok()
        .map(|c| c.into_owned())
}

/// A file under the output folder: plain names, no dot files (the outbox,
/// partials), never through a symlink.
/// The relative path a URL names under the output folder, by the names
/// rule ([`crate::storage::under_root`]): `/` is the gallery page.
fn local_rel(root: &Path, url_path: &str) -> Option<String> {
    let rel = percent_decode(url_path.trim_start_matches('/'))?;
    let rel = if rel.is_empty() {
        "index.html".to_string()
    } else {
        rel
    };
    crate::storage::under_root(root, &rel, Some(crate::storage::derived::THUMBS))?;
    Some(rel)
}

#[cfg(test)]
fn local_file(root: &Path, url_path: &str) -> Option<PathBuf> {
    let rel = local_rel(root, url_path)?;
    crate::storage::open_beneath(root, &rel)
        .ok()
        .map(|_| root.join(rel))
}

/// A file under the output folder, opened from the folder's own descriptor
/// one name at a time without following a link (a symlink swapped in
/// between a check and the open is never read).
fn serve_file(root: &Path, url_path: &str, range: Option<&str>) -> Response {
    use std::io::{Seek, SeekFrom};
    let not_found = || Response::text(404, "not found\n");
    let Some(rel) = local_rel(root, url_path) else {
        return not_found();
    };
    let Ok(mut f) = crate::storage::open_beneath(root, &rel) else {
        return not_found();
    };
    let Ok(len) = f.metadata().map(|m| m.len()) else {
        return not_found();
    };
    let kind = content_type(Path::new(&rel));
    // One range (what a video player asks to seek); anything else: the whole file.
    match range.map(|r| byte_range(r, len)) {
        Some(Ok((first, last))) => {
            if f.seek(SeekFrom::Start(first)).is_err() {
                return not_found();
            }
            Response {
                status: 206,
                headers: vec![
                    ("Content-Type", kind.into()),
                    ("Accept-Ranges", "bytes".into()),
                    ("Content-Range", format!("bytes {first}-{last}/{len}")),
                ],
                body: Body::File(f, last - first + 1),
            }
        }
        Some(Err(true)) => Response::text(416, "range not satisfiable\n")
            .with_header("Content-Range", format!("bytes */{len}"))
            .with_header("Accept-Ranges", "bytes"),
        Some(Err(false)) | None => Response {
            status: 200,
            headers: vec![
                ("Content-Type", kind.into()),
                ("Accept-Ranges", "bytes".into()),
            ],
            body: Body::File(f, len),
        },
    }
}

/// A `Range: bytes=...` header of one range, as (first, last) inclusive,
/// within a file of `len` bytes: `100-199`, `100-` (to the end), `-500`
/// (the last 500). Err(true): outside the file (416); Err(false): a form
/// not served (several ranges, another unit): the whole file is sent.
fn byte_range(header: &str, len: u64) -> Result<(u64, u64), bool> {
    let spec = header.trim().strip_prefix("bytes=").ok_or(false)?.trim();
    if spec.contains(',') {
        return Err(false);
    }
    let (a, b) = spec.split_once('-').ok_or(false)?;
    let num = |t: &str| t.trim().parse::<u64>().map_err(|_| false);
    let (first, last) = match (a.trim().is_empty(), b.trim().is_empty()) {
        (false, false) => (num(a)?, num(b)?.min(len.saturating_sub(1))),
        (false, true) => (num(a)?, len.saturating_sub(1)),
        (true, false) => {
            let n = num(b)?;
            if n == 0 {
                return Err(true);
            }
            (len.saturating_sub(n), len.saturating_sub(1))
        }
        (true, true) => return Err(false),
    };
    if len == 0 || first >= len || first > last {
        return Err(true);
    }
    Ok((first, last))
}

#[cfg(test)]
mod tests;
