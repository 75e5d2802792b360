//! What the cameras are doing now, for `/cameras` and `/api/cameras`: the
//! connections open (IMEI, address, family, protocol, the file being
//! received and how far it is), and the cameras seen in the last 24 hours
//! with their last file and last error. One per server (handed to each
//! connection, not a global). A connection's progress is atomics its own
//! thread stores (no lock per packet); the page reads them.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::lock;
use chrono::{DateTime, Utc};
use serde_json::{json, Value};

/// How long a camera stays on the page after its last connection.
const RECENT: Duration = Duration::from_secs(24 * 3600);
/// At most this many recent cameras are kept (the oldest go first).
const MAX_RECENT: usize = 100_000;

#[derive(Default)]
pub struct Board {
    conns: Mutex<HashMap<u64, Arc<LiveConn>>>,
    recent: Mutex<HashMap<u64, Seen>>,
}

/// One open connection.
pub struct LiveConn {
    remote: String,
    since: DateTime<Utc>,
    info: Mutex<Info>,
    /// Bytes of the current file stored, and its size (0: no file).
    pos: AtomicU64,
    total: AtomicU64,
}

#[derive(Default, Clone)]
struct Info {
    imei: Option<u64>,
    protocol: Option<u16>,
    family: Option<String>,
    file: Option<String>,
    /// When the file began, and the bytes it had then (a resume).
    began: Option<(Instant, u64)>,
}

/// A camera seen recently.
#[derive(Clone)]
struct Seen {
    remote: String,
    family: Option<String>,
    last_seen: DateTime<Utc>,
    last_file: Option<(String, DateTime<Utc>)>,
    last_error: Option<(String, DateTime<Utc>)>,
}

impl Board {
    /// A connection opened.
    pub fn connect(&self, conn: u64, remote: &str) -> Arc<LiveConn> {
        let c = Arc::new(LiveConn {
            remote: remote.to_string(),
            since: Utc::now(),
            info: Mutex::new(Info::default()),
            pos: AtomicU64::new(0),
            total: AtomicU64::new(0),
        });
        lock(&self.conns).insert(conn, c.clone());
        c
    }

    /// A file was stored (new or known) from this camera.
    pub fn stored(&self, imei: u64, name: &str) {
        let mut r = lock(&self.recent);
        if let Some(s) = r.get_mut(&imei) {
            s.last_file = Some((name.to_string(), Utc::now()));
        } else {
            drop(r);
            self.seen(imei, None, None, Some(name));
        }
    }

    /// The connection ended; `error` is how, when it was the camera's
    /// trouble (not a completed session, not a stop).
    pub fn ended(&self, conn: u64, error: Option<String>) {
        let Some(c) = lock(&self.conns).remove(&conn) else {
            return;
        };
        let info = lock(&c.info).clone();
        if let Some(imei) = info.imei {
            self.seen(imei, Some((&c.remote, info.family)), error, None);
        }
    }

    fn seen(
        &self,
        imei: u64,
        from: Option<(&str, Option<String>)>,
        error: Option<String>,
        file: Option<&str>,
    ) {
        let now = Utc::now();
        let mut r = lock(&self.recent);
        if r.len() >= MAX_RECENT && !r.contains_key(&imei) {
            let cutoff = now - chrono::Duration::from_std(RECENT).unwrap_or_default();
            r.retain(|_, s| s.last_seen > cutoff);
            if r.len() >= MAX_RECENT {
                if let Some(oldest) = r.iter().min_by_key(|(_, s)| s.last_seen).map(|(k, _)| *k) {
                    r.remove(&oldest);
                }
            }
        }
        let s = r.entry(imei).or_insert_with(|| Seen {
            remote: String::new(),
            family: None,
            last_seen: now,
            last_file: None,
            last_error: None,
        });
        s.last_seen = now;
        if let Some((remote, family)) = from {
            s.remote = remote.to_string();
            if family.is_some() {
                s.family = family;
            }
        }
        if let Some(e) = error {
            s.last_error = Some((e, now));
        }
        if let Some(f) = file {
            s.last_file = Some((f.to_string(), now));
        }
    }

    /// `/api/cameras`: the cameras connected now, and those seen in the
    /// last 24 hours (newest first).
    pub fn snapshot(&self) -> Value {
        let now = Instant::now();
        let wall = Utc::now();
        let conns: Vec<Arc<LiveConn>> = lock(&self.conns).values().cloned().collect();
        let mut connected: Vec<Value> = conns
            .iter()
            .map(|c| {
                let info = lock(&c.info).clone();
                c.json(&info, now)
            })
            .collect();
        connected.sort_by_key(|v| v["imei"].as_u64().unwrap_or(u64::MAX));
        let cutoff = wall - chrono::Duration::from_std(RECENT).unwrap_or_default();
        let mut recent: Vec<(u64, Seen)> = lock(&self.recent)
            .iter()
            .filter(|(_, s)| s.last_seen > cutoff)
            .map(|(k, s)| (*k, s.clone()))
            .collect();
        recent.sort_by(|a, b| b.1.last_seen.cmp(&a.1.last_seen).then(a.0.cmp(&b.0)));
        let t = |d: &DateTime<Utc>| dashcam_protocol::time::rfc3339(*d);
        let recent: Vec<Value> = recent
            .iter()
            .map(|(imei, s)| {
                json!({
                    "imei": imei.to_string(),
                    "address": s.remote,
                    "family": s.family,
                    "last_seen": t(&s.last_seen),
                    "last_file": s.last_file.as_ref().map(|(f, _)| f),
                    "last_file_at": s.last_file.as_ref().map(|(_, at)| t(at)),
                    "last_error": s.last_error.as_ref().map(|(e, _)| e),
                    "last_error_at": s.last_error.as_ref().map(|(_, at)| t(at)),
                })
            })
            .collect();
        json!({
            "now": t(&wall),
            "connected": connected,
            "recent": recent,
        })
    }
}

impl LiveConn {
    /// The camera's init packet was taken.
    pub fn camera(&self, imei: u64, protocol: u16) {
        let mut i = lock(&self.info);
        i.imei = Some(imei);
        i.protocol = Some(protocol);
    }

    /// A file of up to `total` bytes began, `kept` of them already stored.
    pub fn file_started(&self, file: &str, family: &str, total: u64, kept: u64) {
        {
            let mut i = lock(&self.info);
            i.file = Some(file.to_string());
            i.family = Some(family.to_string());
            i.began = Some((Instant::now(), kept));
        }
        self.total.store(total, Ordering::Relaxed);
        self.pos.store(kept, Ordering::Relaxed);
    }

    /// Stored up to `pos` bytes of the current file.
    pub fn progress(&self, pos: u64) {
        self.pos.store(pos, Ordering::Relaxed);
    }

    pub fn file_ended(&self) {
        lock(&self.info).file = None;
        self.total.store(0, Ordering::Relaxed);
    }

    fn json(&self, info: &Info, now: Instant) -> Value {
        let pos = self.pos.load(Ordering::Relaxed);
        let total = self.total.load(Ordering::Relaxed);
        let receiving = info.file.is_some() && total > 0;
        let rate = info.began.filter(|_| receiving).and_then(|(at, from)| {
            let secs = now.duration_since(at).as_secs_f64();
            (secs >= 0.5).then(|| pos.saturating_sub(from) as f64 / secs)
        });
        let left = rate
            .filter(|r| *r > 0.0)
            .map(|r| (total.saturating_sub(pos) as f64 / r).round() as u64);
        json!({
            "imei": info.imei.map(|i| i.to_string()),
            "address": self.remote,
            "connected_at": dashcam_protocol::time::rfc3339(self.since),
            "protocol": info.protocol,
            "family": info.family,
            "file": info.file,
            "bytes": receiving.then_some(pos),
            "total": receiving.then_some(total),
            "percent": receiving.then(|| ((pos.min(total) * 1000 / total) as f64) / 10.0),
            "bytes_per_s": rate.map(|r| r.round() as u64),
            "seconds_left": left,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_connection_shows_its_file_then_the_camera_stays_as_recent() {
        let b = Board::default();
        let c = b.connect(7, "127.0.0.2:4000");
        c.camera(350612071913857, 5);
        c.file_started("%videof", "dualcam", 10_000, 2_000);
        c.progress(5_000);
        let s = b.snapshot();
        let live = &s["connected"][0];
        assert_eq!(live["imei"], "350612071913857");
        assert_eq!(live["file"], "%videof");
        assert_eq!(live["percent"], 50.0);
        assert_eq!(live["protocol"], 5);
        b.stored(350612071913857, "20261205_videof.h265");
        c.file_ended();
        b.ended(7, Some("link lost: reset".into()));
        let s = b.snapshot();
        assert_eq!(s["connected"].as_array().unwrap().len(), 0);
        let r = &s["recent"][0];
        assert_eq!(r["imei"], "350612071913857");
        assert_eq!(r["last_file"], "20261205_videof.h265");
        assert_eq!(r["last_error"], "link lost: reset");
        assert_eq!(r["family"], "dualcam");
        // A scanner (no IMEI) is not a camera seen.
        let _ = b.connect(8, "127.0.0.3:1");
        b.ended(8, Some("not a camera".into()));
        assert_eq!(b.snapshot()["recent"].as_array().unwrap().len(), 1);
    }
}
