//! The camera's frames during a transfer: SYNC, DATA (every check of a packet,
//! in the protocol's order) and what a bad packet does.

use super::*;

impl Transfer {
    pub(super) fn on_sync(&mut self, cx: &mut Cx<'_>, now: Instant, offset: u32) -> Next {
        let unaligned = std::mem::take(&mut self.run.unaligned);
        let skipped = std::mem::take(&mut self.run.skipped);
        if skipped > 0 {
            log::info!(
                "[{}] dropped {skipped} bytes in flight that were not whole frames, up to the SYNC",
                cx.tag
            );
        }
        let stored = self.run.stored;
        match self.sync_bytes(offset) {
            Some(at) if at <= stored => {
                let need_prefix = at > 0 && *cx.convention != Some(Convention::Restart);
                self.run.phase = Phase::Rewind {
                    offset: at,
                    resume: false,
                };
                if at == stored && !need_prefix {
                    return self.rewound(cx, now, Ok(0));
                }
                if at < stored {
                    log::info!(
                        "[{}] SYNC {offset} is behind what is stored: receiving from there again",
                        cx.tag
                    );
                }
                cx.actions.push_back(Action::Rewind { len: at });
                Next::Wait
            }
            _ => {
                log::warn!(
                    "[{}] SYNC {offset} is ahead of what is stored or outside the file: RESUME again at {}",
                    cx.tag,
                    self.position()
                );
                if self.run.resends < cx.cfg.max_resends {
                    self.run.resends += 1;
                    self.run.unaligned = unaligned;
                    return Next::Resume;
                }
                let why = GiveUp::SyncNeverMatched {
                    file: self.fixed.file.spec.display(),
                };
                Next::End(End::GaveUp(why))
            }
        }
    }

    /// One DATA frame, checked in the order the protocol applies the checks
    /// (its offset and length, then its CRC under each convention still
    /// possible), then written.
    pub(super) fn on_data(
        &mut self,
        cx: &mut Cx<'_>,
        now: Instant,
        offset: Option<u32>,
        payload: &[u8],
        crc: u16,
    ) -> Next {
        let run = &self.run;
        let n = payload.len() as u64;
        let shape_ok =
            self.extent().accepts(run.stored, n) && offset.is_none_or(|o| o as u64 == run.stored);
        let matched = if !shape_ok {
            None
        } else if crc16(run.inits[0], payload) == crc {
            Some(0)
        } else if run.n_inits == 2 && crc16(run.inits[1], payload) == crc {
            Some(1)
        } else {
            None
        };
        let Some(which) = matched else {
            return self.bad_packet(cx, offset, payload.len(), crc, shape_ok);
        };
        let chain_from = run.inits[which];
        if run.n_inits == 2 {
            let conv = if which == 0 {
                Convention::Restart
            } else {
                Convention::Chained
            };
            log::info!(
                "[{}] the camera {} its CRC chain after SYNC ({} convention): kept for this session",
                cx.tag,
                if conv == Convention::Restart {
                    "restarts"
                } else {
                    "carries on"
                },
                conv.name()
            );
            *cx.convention = Some(conv);
        }
        let run = &mut self.run;
        run.n_inits = 1;
        run.inits[0] = crc;
        run.chain = crc;
        run.retries_here = 0;
        run.first_after_disk_resume = false;
        run.data_frames += 1;
        cx.actions.push_back(Action::Write {
            offset: run.stored,
            crc: (chain_from, crc),
        });
        run.stored += n;
        if self.complete() {
            return self.file_complete(cx);
        }
        self.log_progress(cx, now);
        Next::Wait
    }

    /// Every 10%, but not more often than every few seconds: a fleet of
    /// small files would fill the log with progress.
    fn log_progress(&mut self, cx: &Cx<'_>, now: Instant) {
        let stored = self.run.stored;
        let max = self.total_bytes().unwrap_or(self.max_bytes());
        let decile = stored * 10 / max;
        let p = &mut self.progress;
        let due = p
            .last_progress
            .is_none_or(|at| now.saturating_duration_since(at) >= PROGRESS_EVERY);
        if decile <= p.last_decile || max < 10 * crate::file::PACKET_BYTES || !due {
            return;
        }
        p.last_decile = decile;
        p.last_progress = Some(now);
        let secs = now.saturating_duration_since(p.began).as_secs_f64();
        let rate = (stored - p.began_at) as f64 / secs.max(1e-3);
        let eta = (max - stored) as f64 / rate.max(1.0);
        // Target "progress": the terminal's bars show the same, and the
        // server's logger leaves these lines out while bars are shown.
        log::info!(
            target: "progress",
            "[{}] {} {}%: {} of {} bytes, {}/s, about {:.0} s left",
            cx.tag,
            self.fixed.file.spec.display(),
            decile * 10,
            stored,
            max,
            human_bytes(rate as u64),
            eta.ceil()
        );
    }

    pub(super) fn bad_packet(
        &mut self,
        cx: &mut Cx<'_>,
        offset: Option<u32>,
        len: usize,
        crc: u16,
        shape_ok: bool,
    ) -> Next {
        self.run.crc_errors += 1;
        cx.stats.crc_errors += 1;
        if shape_ok && self.run.first_after_disk_resume {
            // Neither CRC reading matches the first frame after resuming a
            // partial from disk: the camera's file is not the one stored.
            log::warn!(
                "[{}] the first frame after resuming {} at {} matches neither CRC reading: the stored part is not this file; starting it over",
                cx.tag,
                self.fixed.file.spec.display(),
                self.position()
            );
            return self.start_over(cx);
        }
        self.run.retries_here += 1;
        let stored = self.run.stored;
        let why = match offset {
            _ if shape_ok => format!("CRC 0x{crc:04X} does not match"),
            Some(o) if o as u64 != stored => {
                format!("ENHANCED_DATA at offset {o}, expected {stored}")
            }
            _ => format!("{len} bytes do not fit the file there"),
        };
        if self.run.retries_here > cx.cfg.max_crc_retries {
            log::warn!(
                "[{}] giving the file up: {} at {} failed {} times ({why}); partial kept for a later resume",
                cx.tag,
                self.fixed.file.spec.display(),
                self.position(),
                self.run.retries_here
            );
            let crc_errors = self.run.crc_errors;
            cx.actions.push_back(Action::Abandon { crc_errors });
            return Next::GiveUpFile {
                skip: self.fixed.file.spec.identifier.clone(),
            };
        }
        log::warn!(
            "[{}] bad packet at {} of {} ({why}): RESUME there",
            cx.tag,
            self.position(),
            self.fixed.file.spec.display()
        );
        self.run.resends = 0;
        self.run.unaligned = true;
        Next::Resume
    }
}
