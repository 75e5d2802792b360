//! Counters of one server since it started: for the status line, the
//! shutdown summary and (later) an HTTP endpoint. An object handed to each
//! connection, not a global: two servers in one process (tests) count apart.

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

#[derive(Debug, Default)]
pub struct Metrics {
    pub sessions: AtomicU64,
    pub failed_sessions: AtomicU64,
    pub files: AtomicU64,
    pub bytes_received: AtomicU64,
    /// Camera threads that panicked (a bug; their slots were given back).
    pub panics: AtomicU64,
    /// Bytes of the files stored (new ones).
    pub bytes_stored: AtomicU64,
    /// Files the cameras sent again that were stored already.
    pub duplicates: AtomicU64,
    pub crc_errors: AtomicU64,
    /// Files that resumed a partial.
    pub resumes: AtomicU64,
    /// Connections closed before their init packet to make room for a new
    /// one (the table was full).
    pub evicted_pre_init: AtomicU64,
    /// Sessions by how they ended (`completed`, `refused_max_per_ip` ...).
    pub ends: std::sync::Mutex<std::collections::BTreeMap<&'static str, u64>>,
    /// Connections that were not cameras, by what they looked like (`avl`,
    /// `http`, `rdp`, `tls` ...).
    pub not_cameras: std::sync::Mutex<std::collections::BTreeMap<&'static str, u64>>,
}

/// A session's end as a metric label.
pub fn end_label(end: &dashcam_protocol::session::End) -> &'static str {
    use dashcam_protocol::session::{End, Refusal};
    match end {
        End::Completed => "completed",
        End::NotACamera(_) => "not_a_camera",
        End::NotAllowed => "not_allowed",
        End::DeviceStatus(_) => "device_status",
        End::Refused(Refusal::Path { .. }) => "refused_path",
        End::Refused(Refusal::TooLarge { .. }) => "refused_too_large",
        End::Refused(Refusal::MaxPerIp) => "refused_max_per_ip",
        End::Refused(Refusal::MaxConnections) => "refused_max_connections",
        End::Refused(_) => "refused_other",
        End::Protocol(_) => "protocol_error",
        End::LinkLost(_) => "link_lost",
        End::TimedOut(_) => "timed_out",
        End::GaveUp(_) => "gave_up",
        End::Storage(_) => "storage_error",
        End::Shutdown => "shutdown",
        End::Internal(_) => "internal_error",
        _ => "other",
    }
}

impl Metrics {
    pub fn get(n: &AtomicU64) -> u64 {
        n.load(Ordering::Relaxed)
    }

    pub fn add(n: &AtomicU64, by: u64) {
        n.fetch_add(by, Ordering::Relaxed);
    }

    /// Counts a connection that was not a camera, by kind.
    pub fn not_a_camera(&self, kind: &'static str) {
        let mut m = self.not_cameras.lock().unwrap_or_else(|e| e.into_inner());
        *m.entry(kind).or_default() += 1;
    }

    /// Counts a session's end.
    pub fn ended(&self, end: &dashcam_protocol::session::End) {
        let mut m = self.ends.lock().unwrap_or_else(|e| e.into_inner());
        *m.entry(end_label(end)).or_default() += 1;
    }
}

/// Connections allowed big buffers (16 KiB reads, 64 KiB writes) at once: a
/// camera that sends fast gets one. When a whole fleet falls behind, every
/// socket looks fast; the cap keeps memory at a few KiB per camera then.
#[derive(Debug)]
pub struct FastBudget {
    taken: AtomicUsize,
    max: usize,
}

impl FastBudget {
    pub const DEFAULT: usize = 64;

    pub fn new(max: usize) -> FastBudget {
        FastBudget {
            taken: AtomicUsize::new(0),
            max,
        }
    }

    /// A slot if one is free, given back when the returned guard drops.
    pub fn try_take(&self) -> Option<FastSlot<'_>> {
        self.taken
            .fetch_update(Ordering::AcqRel, Ordering::Relaxed, |n| {
                (n < self.max).then_some(n + 1)
            })
            .ok()
            .map(|_| FastSlot(self))
    }

    pub fn taken(&self) -> usize {
        self.taken.load(Ordering::Relaxed)
    }
}

impl Default for FastBudget {
    fn default() -> Self {
        FastBudget::new(FastBudget::DEFAULT)
    }
}

/// A fast-buffer slot, given back when the connection ends.
#[derive(Debug)]
pub struct FastSlot<'a>(&'a FastBudget);

impl Drop for FastSlot<'_> {
    fn drop(&mut self) {
        self.0.taken.fetch_sub(1, Ordering::AcqRel);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fast_slots_come_back_when_dropped() {
        let b = FastBudget::new(2);
        let a = b.try_take().unwrap();
        let c = b.try_take().unwrap();
        assert!(b.try_take().is_none());
        drop(a);
        assert!(b.try_take().is_some());
        drop(c);
        assert_eq!(b.taken(), 0);
    }
}
