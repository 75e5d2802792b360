//! `<output>/index.html`: every stored file at a glance, newest first, grouped
//! by camera, with thumbnails in `<output>/.thumbs/`. Static files only, so it
//! opens over `file://`. Rebuilt from the sidecars (after each stored file by
//! a worker off the cameras' threads, or by `dashcam-server gallery`).

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{self, Sender};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result};
use chrono::{DateTime, FixedOffset, Utc};

use crate::storage::{catalog, derived, StoredFile};
use dashcam_protocol::Media;

mod card;
use card::*;

mod worker;
pub use worker::*;

const THUMB_W: u32 = 320;

/// One stored file, as the gallery shows it.
struct Entry {
    file: StoredFile,
    when: DateTime<Utc>,
    /// The media is in the folder (not removed by --keep-days or
    /// --s3-delete-local).
    present: bool,
}

impl std::ops::Deref for Entry {
    type Target = StoredFile;
    fn deref(&self) -> &StoredFile {
        &self.file
    }
}

/// Every stored file under `root` (every family, `.mp4` included), with when it was taken.
fn scan(root: &Path) -> Vec<Entry> {
    catalog::all_known_files(root)
        .into_iter()
        .map(|(file, present)| {
            let sc = &file.sidecar;
            let when = sc
                .metadata
                .as_ref()
                .and_then(|m| m.timestamp.as_deref())
                .or(Some(sc.completed_at.as_str()))
                .and_then(|t| DateTime::parse_from_rfc3339(t).ok())
                .map(|t| t.with_timezone(&Utc))
                .unwrap_or_default();
            Entry {
                file,
                when,
                present,
            }
        })
        .collect()
}

/// ffmpeg scales a photo, or takes a video's first frame, into `out` (JPEG).
/// The camera's container is not a format ffmpeg knows: its first key frame
/// is taken out first (the server's own demultiplexer) and read as H.265.
fn make_thumbnail(media: &Path, out: &Path) -> bool {
    let key = match crate::storage::media::first_key_frame(media) {
        Ok(Some(frame)) => {
            let Ok(scratch) = derived::scratch(media, "key.h265") else {
                return false;
            };
            if std::io::Write::write_all(&mut scratch.file(), &frame).is_err() {
                return false;
            }
            Some(scratch)
        }
        _ => None,
    };
    let mut cmd = crate::tools::ffmpeg::command();
    cmd.args(["-v", "error", "-nostdin", "-y"]);
    match &key {
        Some(k) => cmd.args(["-f", "hevc", "-i"]).arg(k.path()),
        None => cmd.arg("-i").arg(media),
    };
    cmd.args([
        "-frames:v",
        "1",
        "-vf",
        &format!("scale='min({THUMB_W},iw)':-2"),
        "-f",
        "image2",
        "-c:v",
        "mjpeg",
    ])
    .arg(out)
    .stdin(Stdio::null())
    .stdout(Stdio::null())
    .stderr(Stdio::null())
    .status()
    .is_ok_and(|s| s.success())
}

/// The picture a card shows: a thumbnail (made now if missing), else a photo
/// itself (the browser scales it), else None (a placeholder is shown).
fn thumbnail(root: &Path, e: &Entry, how: &How) -> Option<PathBuf> {
    let photo = (e.sidecar.media == Media::Photo && e.present).then(|| e.media.clone());
    match derived::thumbnail(root, e.imei, &e.media, how.retry) {
        Ok(derived::Thumbnail::Ready(t)) => Some(t),
        // Removed media: the thumbnail made while it was here, or none.
        Ok(derived::Thumbnail::Make(_) | derived::Thumbnail::Failed) if !e.present => None,
        Ok(derived::Thumbnail::Failed) => photo,
        Ok(derived::Thumbnail::Make(d)) => {
            if how.stopping.load(Ordering::SeqCst) {
                // Made by the next start (or `dashcam-server gallery`).
                return photo;
            }
            if e.sidecar.media != Media::File && make_thumbnail(&e.media, d.path()) {
                if let Ok(t) = d.commit() {
                    return Some(t);
                }
            } else {
                drop(d);
                derived::thumbnail_failed(root, e.imei, &e.media);
            }
            photo
        }
        Err(err) => {
            log::warn!("gallery: thumbnail of {}: {err}", e.media.display());
            photo
        }
    }
}

fn esc(s: &str) -> String {
    let mut o = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '<' => o.push_str("&lt;"),
            '>' => o.push_str("&gt;"),
            '&' => o.push_str("&amp;"),
            '"' => o.push_str("&quot;"),
            '\'' => o.push_str("&#39;"),
            c => o.push(c),
        }
    }
    o
}

/// What a link's path segment keeps as it is (RFC 3986 unreserved).
const SEGMENT: &percent_encoding::AsciiSet = &percent_encoding::NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'_')
    .remove(b'.')
    .remove(b'~');

/// A link relative to the gallery page, with `/` separators and escaped.
fn href(root: &Path, p: &Path) -> String {
    let rel = p.strip_prefix(root).unwrap_or(p);
    let parts: Vec<String> = rel
        .components()
        .map(|c| {
            percent_encoding::utf8_percent_encode(&c.as_os_str().to_string_lossy(), SEGMENT)
                .to_string()
        })
        .collect();
    parts.join("/")
}

const PLACEHOLDER: &str = "data:image/svg+xml,%3Csvg xmlns='http://www.w3.org/2000/svg' width='320' height='240'%3E%3Crect width='320' height='240' fill='%23ddd'/%3E%3Ctext x='160' y='125' font-size='20' text-anchor='middle' fill='%23777'%3Eno preview%3C/text%3E%3C/svg%3E";

const STYLE: &str = "body{font-family:sans-serif;margin:1em;background:#f6f6f6;color:#222}\
h1{font-size:1.4em}h2{font-size:1.15em;margin-top:1.5em}\
.grid{display:flex;flex-wrap:wrap;gap:12px}\
.card{background:#fff;border:1px solid #ccc;border-radius:6px;padding:8px;width:330px;font-size:12px}\
.card img{width:320px;height:240px;object-fit:contain;background:#222;display:block}\
.card video{width:320px;display:block;margin-top:4px;background:#000}\
.card table{border-collapse:collapse;margin-top:6px;width:100%}\
.card td{padding:1px 4px;vertical-align:top}.card td:first-child{color:#666;white-space:nowrap}\
.mono{font-family:monospace;word-break:break-all}.bad{color:#b00}\
.gone{color:#666;font-style:italic}.removed img{opacity:.5}";

/// Marks each thumbnail loaded (or broken, then shows the placeholder), with
/// its place on the page: what a browser test reads back.
const SCRIPT: &str = "window.addEventListener('load',function(){\
document.querySelectorAll('img.thumb').forEach(function(i){\
var r=i.getBoundingClientRect();\
i.dataset.rect=[Math.round(r.left),Math.round(r.top),Math.round(r.width),Math.round(r.height)].join(',');\
i.dataset.loaded=(i.complete&&i.naturalWidth>0)?'1':'0';});\
document.body.dataset.ready='1';});";

/// Rebuilds `<root>/index.html` from the sidecars; returns how many files it shows.
pub fn build(root: &Path) -> Result<usize> {
    build_with(root, false)
}

/// [`build`]; with `retry`, thumbnails that failed before are tried again
/// (`dashcam-server gallery`: the cause, such as a missing ffmpeg, may be gone).
pub fn build_with(root: &Path, retry: bool) -> Result<usize> {
    let never = AtomicBool::new(false);
    build_how(
        root,
        &How {
            retry,
            stopping: &never,
        },
    )
}

/// How a build goes: whether failed thumbnails are tried again, and the
/// worker's stop (no new thumbnail is begun once it is set).
struct How<'a> {
    retry: bool,
    stopping: &'a AtomicBool,
}

fn build_how(root: &Path, how: &How) -> Result<usize> {
    let mut entries = scan(root);
    entries.sort_by(|a, b| b.when.cmp(&a.when).then(b.media.cmp(&a.media)));
    let mut by_cam: BTreeMap<u64, Vec<&Entry>> = BTreeMap::new();
    for e in &entries {
        by_cam.entry(e.imei).or_default().push(e);
    }
    // Cameras with the newest file first.
    let mut cams: Vec<(u64, Vec<&Entry>)> = by_cam.into_iter().collect();
    cams.sort_by(|a, b| b.1[0].when.cmp(&a.1[0].when));
    // index.html: each camera's newest files; the rest on its own pages of
    // PAGE files, so a page stays light however many files there are.
    let mut html = page_head(&format!(
        "dashcam-server: {} file(s) from {} camera(s)",
        entries.len(),
        cams.len()
    ));
    for (imei, files) in &cams {
        let pages = files.len().div_ceil(PAGE);
        let _ = write!(
            html,
            "<h2>Camera {imei} ({} file(s))</h2><div class=\"grid\">",
            files.len()
        );
        for e in files.iter().take(ON_INDEX) {
            card(root, e, how, &mut html);
        }
        html.push_str("</div>");
        if files.len() > ON_INDEX {
            let _ = write!(
                html,
                "<p class=\"more\"><a href=\"{}\">all {} file(s) of camera {imei}, {PAGE} a page</a></p>",
                page_name(*imei, 1),
                files.len()
            );
            for (n, chunk) in files.chunks(PAGE).enumerate() {
                let n = n + 1;
                let mut p = page_head(&format!(
                    "camera {imei}: files {}..{} of {} (page {n} of {pages})",
                    (n - 1) * PAGE + 1,
                    (n - 1) * PAGE + chunk.len(),
                    files.len()
                ));
                nav(&mut p, *imei, n, pages);
                p.push_str("<div class=\"grid\">");
                for e in chunk {
                    card(root, e, how, &mut p);
                }
                p.push_str("</div>");
                nav(&mut p, *imei, n, pages);
                p.push_str("</body></html>\n");
                derived::write_page(root, &page_name(*imei, n), p.as_bytes())
                    .with_context(|| format!("writing {}", page_name(*imei, n)))?;
            }
        }
    }
    html.push_str("</body></html>\n");
    derived::write_page(root, "index.html", html.as_bytes()).context("writing index.html")?;
    Ok(entries.len())
}

/// Files of each camera on index.html; the others on its pages.
const ON_INDEX: usize = 24;
/// Files on a camera's page.
const PAGE: usize = 200;

fn page_name(imei: u64, n: usize) -> String {
    format!("camera-{imei}-{n}.html")
}

fn page_head(title: &str) -> String {
    let mut html = String::with_capacity(64 * 1024);
    let _ = write!(
        html,
        "<!DOCTYPE html><html><head><meta charset=\"utf-8\"><title>{t}</title>\
         <style>{STYLE}</style><script>{SCRIPT}</script></head><body>\
         <h1>{t}</h1><p>Updated {u} UTC. Newest first. <a href=\"index.html\">All cameras</a></p>",
        t = esc(title),
        u = Utc::now().format("%Y-%m-%d %H:%M:%S"),
    );
    html
}

fn nav(html: &mut String, imei: u64, n: usize, pages: usize) {
    html.push_str("<p class=\"nav\">");
    if n > 1 {
        let _ = write!(html, "<a href=\"{}\">newer</a> ", page_name(imei, n - 1));
    }
    let _ = write!(html, "page {n} of {pages}");
    if n < pages {
        let _ = write!(html, " <a href=\"{}\">older</a>", page_name(imei, n + 1));
    }
    html.push_str("</p>");
}
