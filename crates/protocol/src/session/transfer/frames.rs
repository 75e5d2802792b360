//! The camera's frames during a transfer: SYNC, DATA (every check of a packet,
//! in the protocol's order) and what a bad packet does.

use super::*;

impl Session<'_> {
    pub(super) fn on_sync(&mut self, now: Instant, offset: u32) {
        let State::Transfer(t) = &mut self.state else {
            return;
        };
        let unaligned = std::mem::take(&mut t.unaligned);
        let skipped = std::mem::take(&mut t.skipped);
        if skipped > 0 {
            log::info!(
                "[{}] dropped {skipped} bytes in flight that were not whole frames, up to the SYNC",
                self.tag
            );
        }
        match t.sync_bytes(offset) {
            Some(at) if at <= t.stored => {
                let need_prefix = at > 0 && self.convention != Some(Convention::Restart);
                if at == t.stored && !need_prefix {
                    t.phase = Phase::Rewind {
                        offset: at,
                        resume: false,
                    };
                    self.rewound(now, Ok(0));
                } else {
                    if at < t.stored {
                        log::info!(
                            "[{}] SYNC {offset} is behind what is stored: receiving from there again",
                            self.tag
                        );
                    }
                    t.phase = Phase::Rewind {
                        offset: at,
                        resume: false,
                    };
                    self.actions.push_back(Action::Rewind { len: at });
                }
            }
            _ => {
                let resend = t.resends < self.cfg.max_resends;
                log::warn!(
                    "[{}] SYNC {offset} is ahead of what is stored or outside the file: RESUME again at {}",
                    self.tag,
                    t.position()
                );
                if resend {
                    t.resends += 1;
                    t.unaligned = unaligned;
                    self.send_resume(now);
                } else {
                    let why = GiveUp::SyncNeverMatched {
                        file: t.file.spec.display(),
                    };
                    self.finish_session(End::GaveUp(why), true);
                }
            }
        }
    }

    pub(super) fn on_data(&mut self, now: Instant, offset: Option<u32>, payload: &[u8], crc: u16) {
        // One piece (over 80 lines): the checks of one DATA frame (offset, length,
        // CRC, what is in flight) in the order the protocol applies them, on
        // the whole transfer state; split, each part would take all of it.
        let State::Transfer(t) = &mut self.state else {
            return;
        };
        let n = payload.len() as u64;
        let shape_ok =
            t.extent().accepts(t.stored, n) && offset.is_none_or(|o| o as u64 == t.stored);
        let matched = if shape_ok {
            let c0 = crc16(t.inits[0], payload);
            if c0 == crc {
                Some(0)
            } else if t.n_inits == 2 && crc16(t.inits[1], payload) == crc {
                Some(1)
            } else {
                None
            }
        } else {
            None
        };
        let Some(which) = matched else {
            return self.bad_packet(now, offset, payload.len(), crc, shape_ok);
        };
        let chain_from = t.inits[which];
        if t.n_inits == 2 {
            let conv = if which == 0 {
                Convention::Restart
            } else {
                Convention::Chained
            };
            log::info!(
                "[{}] the camera {} its CRC chain after SYNC ({} convention): kept for this session",
                self.tag,
                if conv == Convention::Restart {
                    "restarts"
                } else {
                    "carries on"
                },
                conv.name()
            );
            self.convention = Some(conv);
        }
        let State::Transfer(t) = &mut self.state else {
            return;
        };
        t.n_inits = 1;
        t.inits[0] = crc;
        t.chain = crc;
        t.retries_here = 0;
        t.first_after_disk_resume = false;
        t.data_frames += 1;
        self.actions.push_back(Action::Write {
            offset: t.stored,
            crc: (chain_from, crc),
        });
        t.stored += n;
        if t.complete() {
            self.file_complete();
            return;
        }
        let max = t.total_bytes().unwrap_or(t.max_bytes());
        let decile = t.stored * 10 / max;
        // Every 10%, but not more often than every few seconds: a fleet of
        // small files would fill the log with progress.
        let due = t
            .last_progress
            .is_none_or(|at| now.saturating_duration_since(at) >= PROGRESS_EVERY);
        if decile > t.last_decile && max >= 10 * crate::file::PACKET_BYTES && due {
            t.last_decile = decile;
            t.last_progress = Some(now);
            let secs = now.saturating_duration_since(t.began).as_secs_f64();
            let rate = (t.stored - t.began_at) as f64 / secs.max(1e-3);
            let eta = (max - t.stored) as f64 / rate.max(1.0);
            // Target "progress": the terminal's bars show the same, and the
            // server's logger leaves these lines out while bars are shown.
            log::info!(
                target: "progress",
                "[{}] {} {}%: {} of {} bytes, {}/s, about {:.0} s left",
                self.tag,
                t.file.spec.display(),
                decile * 10,
                t.stored,
                max,
                human_bytes(rate as u64),
                eta.ceil()
            );
        }
    }

    pub(super) fn bad_packet(
        &mut self,
        now: Instant,
        offset: Option<u32>,
        len: usize,
        crc: u16,
        shape_ok: bool,
    ) {
        let State::Transfer(t) = &mut self.state else {
            return;
        };
        if shape_ok && t.first_after_disk_resume {
            // Neither CRC reading matches the first frame after resuming a
            // partial from disk: the camera's file is not the one stored.
            t.first_after_disk_resume = false;
            t.crc_errors += 1;
            self.stats.crc_errors += 1;
            log::warn!(
                "[{}] the first frame after resuming {} at {} matches neither CRC reading: the stored part is not this file; starting it over",
                self.tag,
                t.file.spec.display(),
                t.position()
            );
            return self.start_file_over();
        }
        t.crc_errors += 1;
        t.retries_here += 1;
        self.stats.crc_errors += 1;
        let why = if !shape_ok {
            match offset {
                Some(o) if o as u64 != t.stored => {
                    format!("ENHANCED_DATA at offset {o}, expected {}", t.stored)
                }
                _ => format!("{len} bytes do not fit the file there"),
            }
        } else {
            format!("CRC 0x{crc:04X} does not match")
        };
        if t.retries_here > self.cfg.max_crc_retries {
            let what = format!(
                "{} at {} failed {} times ({why}); partial kept for a later resume",
                t.file.spec.display(),
                t.position(),
                t.retries_here
            );
            log::warn!("[{}] giving the file up: {what}", self.tag);
            let id = t.file.spec.identifier.clone();
            let crc_errors = t.crc_errors;
            self.actions.push_back(Action::Abandon { crc_errors });
            self.skip.insert(id);
            self.stats.files_failed += 1;
            self.state = State::Init {
                first: false,
                stray: 0,
            };
            self.next_file();
            return;
        }
        log::warn!(
            "[{}] bad packet at {} of {} ({why}): RESUME there",
            self.tag,
            t.position(),
            t.file.spec.display()
        );
        t.resends = 0;
        t.unaligned = true;
        self.send_resume(now);
    }
}
