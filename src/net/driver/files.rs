//! The files side of a connection: the partial being received, what the
//! session stored, and the storage actions of the session carried out.

use super::*;

/// The files side of a connection: the open partial and what was stored.
pub(super) struct Files<'e, 'a> {
    pub(super) env: &'e Env<'a>,
    /// This connection's number, for the terminal's progress bars.
    pub(super) conn: u64,
    pub(super) remote: String,
    pub(super) partial: Option<Partial<'a>>,
    /// Counters, not the files: a session of 1,000 files holds no more than one.
    pub(super) tally: Tally,
    pub(super) end: Option<End>,
    /// The camera's clock was found off (logged once a session).
    pub(super) clock_warned: bool,
    /// This connection on the live page.
    pub(super) board: std::sync::Arc<crate::ops::board::LiveConn>,
}

/// What a session stored, counted.
#[derive(Default)]
pub(super) struct Tally {
    pub(super) stored: u32,
    pub(super) already_had: u32,
    pub(super) bytes: u64,
    pub(super) refused: Vec<crate::session::Refusal>,
}

/// Refusals a summary names (each is also logged): a camera offering
/// thousands of refused files must not grow a session's memory.
pub(super) const MAX_REFUSALS_KEPT: usize = 64;

impl<'a> Files<'_, 'a> {
    // The rare, heavy steps (open, publish) are kept out of line: their stack
    // frames are then touched only when they run, not by every camera thread
    // waiting on its socket (stack probes touch a whole frame on entry).
    #[inline(never)]
    pub(super) fn open(&mut self, s: &mut Session<'_>, open: &OpenFile, now: Instant) {
        let imei = s.imei().unwrap_or_default();
        if !self.clock_warned {
            let captured = open
                .meta_timestamp_ms
                .and_then(dashcam_protocol::time::from_millis);
            if let Some(line) =
                captured.and_then(|t| dashcam_protocol::time::clock_warning(t, chrono::Utc::now()))
            {
                // Once a session: every file of that camera says the same.
                self.clock_warned = true;
                log::warn!("[{}] {line}", s.tag());
            }
        }
        match self.env.storage.begin(imei, open) {
            Ok(p) => {
                let kept = p.stored();
                if kept > 0 {
                    Metrics::add(&self.env.metrics.resumes, 1);
                }
                self.partial = Some(p);
                let total = open.extent().max_bytes();
                if let Some(l) = self.env.live {
                    l.file_started(self.conn, s.tag(), &open.spec.display(), total, kept);
                }
                self.board.file_started(
                    &open.spec.display(),
                    &s.family().map_or(String::new(), |f| f.to_string()),
                    total,
                    kept,
                );
                s.opened(now, Ok(kept));
            }
            Err(e) => s.opened(now, Err(e)),
        }
    }

    #[inline(never)]
    pub(super) fn finish(&mut self, s: &mut Session<'_>, record: &FileRecord, now: Instant) {
        if let Some(l) = self.env.live {
            l.file_ended(self.conn);
        }
        self.board.file_ended();
        let r = match self.partial.take() {
            Some(p) => p.finish(record, &self.remote),
            None => Err(io::Error::other("no open file to finish").into()),
        };
        match r {
            Ok(stored) => {
                if stored.duplicate_of.is_none() {
                    Metrics::add(&self.env.metrics.files, 1);
                }
                if let (Some(imei), Some(name)) = (s.imei(), stored.path.file_name()) {
                    self.env.board.stored(imei, &name.to_string_lossy());
                }
                if let Err(why) = (self.env.on_stored)(&stored) {
                    // Stored here, but its upload or event is not queued: the
                    // camera is not told, keeps the file and sends it again;
                    // de-dup recognises it then and the hook runs again.
                    return s.finished(
                        now,
                        Err(StoreError::io(
                            format_args!(
                                "{} is stored, but its delivery could not be queued",
                                stored.path.display()
                            ),
                            io::Error::other(why),
                        )),
                    );
                }
                let published = Published {
                    path: stored.path.display().to_string(),
                    size_bytes: stored.sidecar.size_bytes,
                    crc16: stored.sidecar.crc16,
                    duplicate: stored.duplicate_of.is_some(),
                };
                if published.duplicate {
                    self.tally.already_had += 1;
                } else {
                    self.tally.stored += 1;
                    self.tally.bytes += stored.sidecar.size_bytes;
                }
                s.finished(now, Ok(published));
            }
            Err(e) => s.finished(now, Err(e)),
        }
    }

    pub(super) fn write(
        &mut self,
        s: &mut Session<'_>,
        offset: u64,
        bytes: Option<&[u8]>,
        crc: (u16, u16),
    ) {
        let r = match (&mut self.partial, bytes) {
            (Some(p), Some(b)) => p.write_checked(offset, b, crc),
            _ => Err(io::Error::other("no open file for DATA").into()),
        };
        match r {
            Err(e) => s.write_failed(e),
            Ok(()) => {
                let n = bytes.map_or(0, |b| b.len() as u64);
                Metrics::add(&self.env.metrics.bytes_received, n);
                if let Some(l) = self.env.live {
                    l.file_progress(self.conn, offset + n);
                }
                self.board.progress(offset + n);
            }
        }
    }

    /// Carries out every pending action; `bytes` are the file bytes of the
    /// frame just handled.
    pub(super) fn apply(&mut self, s: &mut Session<'_>, bytes: Option<&[u8]>, now: Instant) {
        while let Some(action) = s.poll_action() {
            match action {
                Action::Camera(imei) => {
                    self.board.camera(imei, s.protocol_id());
                    (self.env.on_camera)(imei)
                }
                Action::Open(open) => self.open(s, &open, now),
                Action::Write { offset, crc } => self.write(s, offset, bytes, crc),
                Action::Rewind { len } => {
                    let r = match &mut self.partial {
                        Some(p) => p.rewind(len).map_err(|e| StoreError::io("rewinding", e)),
                        None => Err(io::Error::other("no open file to rewind").into()),
                    };
                    s.rewound(now, r);
                }
                Action::Finish(record) => self.finish(s, &record, now),
                Action::Abandon { crc_errors } => {
                    if let Some(l) = self.env.live {
                        l.file_ended(self.conn);
                    }
                    self.board.file_ended();
                    if let Some(p) = self.partial.take() {
                        p.abandon(crc_errors);
                    }
                }
                Action::Refused(r) => {
                    if self.tally.refused.len() < MAX_REFUSALS_KEPT {
                        self.tally.refused.push(r);
                    }
                }
                Action::End(end) => self.end = Some(end),
            }
        }
    }
}
