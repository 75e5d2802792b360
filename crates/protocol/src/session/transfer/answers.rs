//! Storage's answers during a transfer: the partial opened (or not), rewound
//! to a SYNC, the file finished and published, a write that failed.

use super::*;

impl Session<'_> {
    /// The driver opened the partial: `stored` bytes are kept (aligned, at most
    /// [`Extent::keep_at_most`]).
    pub fn opened(&mut self, now: Instant, result: Result<u64, StoreError>) {
        let State::Transfer(t) = &mut self.state else {
            return;
        };
        match result {
            Err(e) => {
                log::error!("[{}] cannot store {}: {e}", self.tag, t.file.spec.display());
                self.finish_session(End::Storage(e), true);
            }
            Ok(stored) => {
                let stored = stored.min(t.max_bytes().saturating_sub(1));
                t.stored = stored;
                t.began = now;
                t.began_at = stored;
                if stored > 0 {
                    t.resumed_from = Some(stored);
                    t.first_after_disk_resume = true;
                    t.last_decile = stored * 10 / t.max_bytes();
                    log::info!(
                        "[{}] resuming {} at {} ({stored} bytes kept from an earlier connection)",
                        self.tag,
                        t.file.spec.display(),
                        t.position()
                    );
                }
                self.send_resume(now);
            }
        }
    }

    pub(super) fn send_resume(&mut self, now: Instant) {
        let State::Transfer(t) = &mut self.state else {
            return;
        };
        t.phase = Phase::Sync;
        t.in_flight = 0;
        t.resume_sent = now;
        let offset = t.resume_value();
        self.send(Frame::Resume { offset });
    }

    /// The driver kept the first `len` bytes asked by [`Action::Rewind`]; `crc`
    /// is their CRC from 0.
    pub fn rewound(&mut self, now: Instant, result: Result<u16, StoreError>) {
        let State::Transfer(t) = &mut self.state else {
            return;
        };
        let Phase::Rewind { offset, resume } = t.phase else {
            return;
        };
        let prefix = match result {
            Ok(crc) => crc,
            Err(e) => {
                log::error!("[{}] storage: {e}", self.tag);
                self.finish_session(End::Storage(e), true);
                return;
            }
        };
        t.stored = offset;
        if resume {
            self.send_resume(now);
            return;
        }
        t.sync_from = offset;
        t.phase = Phase::Receiving;
        if offset == 0 {
            t.inits = [0, 0];
            t.n_inits = 1;
            return;
        }
        (t.inits, t.n_inits) = match self.convention {
            Some(Convention::Restart) => ([0, 0], 1),
            Some(Convention::Chained) => ([prefix, prefix], 1),
            None if prefix == 0 => ([0, 0], 1),
            None => ([0, prefix], 2),
        };
    }

    /// The driver published the file (or could not: the file failed).
    pub fn finished(&mut self, _now: Instant, result: Result<Published, StoreError>) {
        let State::Transfer(t) = std::mem::replace(&mut self.state, State::Done) else {
            return;
        };
        match result {
            Ok(p) if p.duplicate => {
                self.stats.files_duplicate += 1;
                self.remember_stored(t.file.spec.kind);
            }
            Ok(p) => {
                log::info!(
                    "[{}] saved {} ({} bytes, CRC 0x{:04X})",
                    self.tag,
                    p.path,
                    p.size_bytes,
                    p.crc16
                );
                self.stats.files_stored += 1;
                self.stats.bytes_stored += p.size_bytes;
                self.remember_stored(t.file.spec.kind);
            }
            Err(e) => {
                // CLOSE, not REPEAT INIT: the camera must not take the file as delivered.
                log::error!(
                    "[{}] {} not stored: {e}; CLOSE so the camera keeps it",
                    self.tag,
                    t.file.spec.display()
                );
                self.stats.files_failed += 1;
                self.finish_session(End::Storage(e), true);
                return;
            }
        }
        self.next_file();
    }

    /// Writing the file failed. Bytes that are not this file's (a resumed
    /// partial, or a stored file, whose overlap the camera sent differently)
    /// start the file over from its beginning in this session; anything else
    /// ends the session.
    pub fn write_failed(&mut self, e: StoreError) {
        if let (StoreError::NotSameFile(why), State::Transfer(t)) = (&e, &mut self.state) {
            log::warn!(
                "[{}] {} is not the file kept from before ({why}): starting it over from its beginning",
                self.tag,
                t.file.spec.display()
            );
            return self.start_file_over();
        }
        log::error!("[{}] writing: {e}", self.tag);
        self.finish_session(End::Storage(e), true);
    }

    /// What is kept is not this file: drop it and RESUME from the beginning,
    /// in this session.
    pub(super) fn start_file_over(&mut self) {
        let State::Transfer(t) = &mut self.state else {
            return;
        };
        t.resumed_from = None;
        t.first_after_disk_resume = false;
        t.phase = Phase::Rewind {
            offset: 0,
            resume: true,
        };
        // The frame that failed may have completed the file: not any more.
        // Its record took the file's metadata, which the file keeps (the
        // file that replaces the partial is the one it describes).
        let mut kept = std::collections::VecDeque::with_capacity(self.actions.len());
        for a in self.actions.drain(..) {
            match a {
                Action::Finish(record) => {
                    if t.file.metadata.is_none() {
                        t.file.metadata = record.metadata;
                    }
                }
                a => kept.push_back(a),
            }
        }
        self.actions = kept;
        self.actions.push_back(Action::Rewind { len: 0 });
    }
}
