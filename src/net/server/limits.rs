//! Limits of the machine and of the log: file descriptors (how many
//! connections fit), a spare descriptor for when they run out, and log lines
//! that a flood of refusals would otherwise repeat.

use std::sync::Mutex;
use std::time::{Duration, Instant};

use super::lock;

/// File descriptors per connection: the socket and an open partial.
pub(super) const FDS_PER_CONNECTION: u64 = 2;
/// Kept for the listener, storage, logs and the index (64), and for the HTTP
/// endpoint's own connection table (`httpd::Limits::max_conns`, 64), so a
/// full endpoint never takes a camera's descriptor.
pub(super) const FDS_RESERVED: u64 = 64 + 64;

/// At most `burst` log lines per window; the rest are counted and summed up
/// as "N more `what` in the last 10s".
pub(super) struct RateLimit {
    state: Mutex<(Instant, u32, u64)>,
    what: &'static str,
}

impl RateLimit {
    const WINDOW: Duration = Duration::from_secs(10);
    const BURST: u32 = 5;

    pub(super) fn new(what: &'static str) -> RateLimit {
        RateLimit {
            state: Mutex::new((Instant::now(), 0, 0)),
            what,
        }
    }

    pub(super) fn warn(&self, line: impl FnOnce() -> String) {
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

/// A spare descriptor: when accept runs out of descriptors, it is let go for
/// a moment, so the connection waiting in the backlog gets CLOSE, not a hang.
#[cfg(unix)]
pub(super) fn spare_fd() -> Option<std::fs::File> {
    std::fs::File::open("/dev/null").ok()
}

#[cfg(not(unix))]
pub(super) fn spare_fd() -> Option<std::fs::File> {
    None
}
