//! Storage's answers during a transfer: the partial opened (or not), rewound
//! to a SYNC, the file finished and published, a write that failed.

use super::*;

impl Transfer {
    fn opened(&mut self, cx: &mut Cx<'_>, now: Instant, result: Result<u64, StoreError>) -> Next {
        let stored = match result {
            Err(e) => {
                log::error!(
                    "[{}] cannot store {}: {e}",
                    cx.tag,
                    self.fixed.file.spec.display()
                );
                return Next::End(End::Storage(e));
            }
            Ok(stored) => stored.min(self.max_bytes().saturating_sub(1)),
        };
        self.run.stored = stored;
        self.progress.began = now;
        self.progress.began_at = stored;
        if stored > 0 {
            self.run.resumed_from = Some(stored);
            self.run.first_after_disk_resume = true;
            self.progress.last_decile = stored * 10 / self.max_bytes();
            log::info!(
                "[{}] resuming {} at {} ({stored} bytes kept from an earlier connection)",
                cx.tag,
                self.fixed.file.spec.display(),
                self.position()
            );
        }
        Next::Resume
    }

    /// Storage kept the bytes up to the SYNC (or none, to start over); `result`
    /// is their CRC from 0. Not waiting for that (a late answer): nothing.
    pub(super) fn rewound(
        &mut self,
        cx: &mut Cx<'_>,
        _now: Instant,
        result: Result<u16, StoreError>,
    ) -> Next {
        let Phase::Rewind { offset, resume } = self.run.phase else {
            return Next::Wait;
        };
        let prefix = match result {
            Ok(crc) => crc,
            Err(e) => {
                log::error!("[{}] storage: {e}", cx.tag);
                return Next::End(End::Storage(e));
            }
        };
        let run = &mut self.run;
        run.stored = offset;
        if resume {
            return Next::Resume;
        }
        run.sync_from = offset;
        run.phase = Phase::Receiving;
        (run.inits, run.n_inits) = match *cx.convention {
            _ if offset == 0 => ([0, 0], 1),
            Some(Convention::Restart) => ([0, 0], 1),
            Some(Convention::Chained) => ([prefix, prefix], 1),
            None if prefix == 0 => ([0, 0], 1),
            None => ([0, prefix], 2),
        };
        Next::Wait
    }

    /// Storage published the file (or could not: the file failed).
    fn finished(&mut self, cx: &mut Cx<'_>, result: Result<Published, StoreError>) -> Next {
        match result {
            Ok(p) => {
                if p.duplicate {
                    cx.stats.files_duplicate += 1;
                } else {
                    log::info!(
                        "[{}] saved {} ({} bytes, CRC 0x{:04X})",
                        cx.tag,
                        p.path,
                        p.size_bytes,
                        p.crc16
                    );
                    cx.stats.files_stored += 1;
                    cx.stats.bytes_stored += p.size_bytes;
                }
                Next::Stored
            }
            Err(e) => {
                // CLOSE, not REPEAT INIT: the camera must not take the file as delivered.
                log::error!(
                    "[{}] {} not stored: {e}; CLOSE so the camera keeps it",
                    cx.tag,
                    self.fixed.file.spec.display()
                );
                cx.stats.files_failed += 1;
                Next::End(End::Storage(e))
            }
        }
    }

    /// What is kept is not this file: drop it and RESUME from the beginning,
    /// in this session.
    pub(super) fn start_over(&mut self, cx: &mut Cx<'_>) -> Next {
        self.run.resumed_from = None;
        self.run.first_after_disk_resume = false;
        self.run.phase = Phase::Rewind {
            offset: 0,
            resume: true,
        };
        // The frame that failed may have completed the file: not any more.
        // Its record took the file's metadata, which the file keeps (the
        // file that replaces the partial is the one it describes).
        let file = &mut self.fixed.file;
        cx.actions.retain_mut(|a| match a {
            Action::Finish(record) => {
                if file.metadata.is_none() {
                    file.metadata = record.metadata.take();
                }
                false
            }
            _ => true,
        });
        cx.actions.push_back(Action::Rewind { len: 0 });
        Next::Wait
    }
}

impl Session<'_> {
    /// The driver opened the partial: `stored` bytes are kept (aligned, at most
    /// [`Extent::keep_at_most`]).
    pub fn opened(&mut self, now: Instant, result: Result<u64, StoreError>) {
        self.step(now, |t, cx| t.opened(cx, now, result));
    }

    /// The driver kept the first `len` bytes asked by [`Action::Rewind`]; `crc`
    /// is their CRC from 0.
    pub fn rewound(&mut self, now: Instant, result: Result<u16, StoreError>) {
        self.step(now, |t, cx| t.rewound(cx, now, result));
    }

    /// The driver published the file (or could not: the file failed).
    pub fn finished(&mut self, now: Instant, result: Result<Published, StoreError>) {
        let kind = match &self.state {
            State::Transfer(t) => t.fixed.file.spec.kind,
            _ => return,
        };
        if result.is_ok() {
            self.remember_stored(kind);
        }
        self.step(now, |t, cx| t.finished(cx, result));
    }

    /// Writing the file failed. Bytes that are not this file's (a resumed
    /// partial, or a stored file, whose overlap the camera sent differently)
    /// start the file over from its beginning in this session; anything else
    /// ends the session.
    pub fn write_failed(&mut self, e: StoreError) {
        // (No RESUME comes of it: the instant of the last input will do.)
        self.step(self.last_rx, |t, cx| match e {
            StoreError::NotSameFile(why) => {
                log::warn!(
                    "[{}] {} is not the file kept from before ({why}): starting it over from its beginning",
                    cx.tag,
                    t.fixed.file.spec.display()
                );
                t.start_over(cx)
            }
            e => {
                log::error!("[{}] writing: {e}", cx.tag);
                Next::End(End::Storage(e))
            }
        });
    }
}
