//! One file: START, RESUME, SYNC, DATA... with every packet's CRC checked,
//! in packets (identifier flow) or bytes (path flow), under either CRC
//! convention, with RESUME resent when no SYNC comes.

use std::time::Instant;

use super::{
    Action, Convention, End, Flow, GiveUp, Pending, ProtocolError, Published, Session, State, Unit,
};
use crate::codec::frame::HEADER_LEN;
use crate::codec::{crc16, Family, Frame};
use crate::file::StoreError;
use crate::file::{Extent, FileSpec};

mod answers;

mod frames;

mod step;

/// DATA frames still in flight after a RESUME are discarded; a device that sends
/// more than this many without a SYNC is not following the protocol.
pub(crate) const MAX_IN_FLIGHT: u32 = 4096;
/// Progress lines of one file at most this often.
const PROGRESS_EVERY: std::time::Duration = std::time::Duration::from_secs(5);

pub(crate) fn unit_of(flow: Flow) -> Unit {
    match flow {
        Flow::Identifier => Unit::Packets,
        Flow::Path => Unit::Bytes,
    }
}

/// What the driver needs to open a partial.
#[derive(Debug, Clone, PartialEq)]
pub struct OpenFile {
    pub spec: FileSpec,
    pub unit: Unit,
    /// START's value: packets or bytes.
    pub total: u32,
    /// The metadata's timestamp, when metadata is on: part of the file's identity.
    pub meta_timestamp_ms: Option<u64>,
}

impl OpenFile {
    pub fn extent(&self) -> Extent {
        Extent::new(self.unit, self.total)
    }
}

/// The device's CRC over the end of the file: `crc16(0, file[from..])` must
/// equal `crc`. Storage checks it on the bytes on disk before publishing, so a
/// packet matched under the wrong convention, or a bad write, is caught.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CrcCheck {
    pub from: u64,
    pub crc: u16,
}

/// Everything storage needs to publish a file and write its sidecar.
#[derive(Debug, Clone, PartialEq)]
pub struct FileRecord {
    pub spec: FileSpec,
    pub family: Family,
    pub flow: Flow,
    pub unit: Unit,
    pub start_total: u32,
    /// START's 2-byte field: once documented as the file's CRC; devices send 0.
    pub start_field: u16,
    pub protocol_id: u16,
    pub metadata: Option<(Vec<u8>, crate::codec::Metadata)>,
    pub crc_errors: u32,
    pub convention: Option<Convention>,
    pub check: CrcCheck,
    /// Where this connection started, when earlier bytes came on an earlier one.
    pub resumed_from: Option<u64>,
    pub data_frames: u32,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// Open sent; waiting for the driver.
    Open,
    /// RESUME sent; DATA in flight is discarded until the SYNC.
    Sync,
    /// SYNC taken (or a partial dropped); waiting for the CRC of the kept
    /// bytes, then DATA (or, with `resume`, a RESUME first).
    Rewind {
        offset: u64,
        resume: bool,
    },
    Receiving,
    /// Finish sent; waiting for the driver.
    Finish,
}

/// One file being received: what is fixed for the file, what moves with
/// each packet, and what is counted for the progress lines.
pub(crate) struct Transfer {
    pub fixed: Fixed,
    run: Run,
    progress: Progress,
}

/// Fixed for the file from its START on. (Its metadata is lent to the
/// record when the file completes, and given back if it starts over.)
pub(crate) struct Fixed {
    /// The file asked for (its flow, family, name and metadata).
    pub file: Box<Pending>,
    unit: Unit,
    total: u32,
    /// START's 2-byte field (0 from every device seen).
    start_field: u16,
}

/// What moves with each packet, SYNC and answer from storage.
struct Run {
    phase: Phase,
    /// Bytes verified and written.
    stored: u64,
    /// CRC the next packet must be computed from: one value, or two before the
    /// convention is known (restart = 0, chained = CRC of what is stored).
    inits: [u16; 2],
    n_inits: usize,
    /// The device's running CRC since the last SYNC, and where that SYNC was.
    chain: u16,
    sync_from: u64,
    crc_errors: u32,
    retries_here: u32,
    in_flight: u32,
    resends: u32,
    data_frames: u32,
    resumed_from: Option<u64>,
    /// A partial from disk was resumed and no frame has matched since.
    first_after_disk_resume: bool,
    /// RESUME was sent for a bad packet: the bytes before the device's SYNC
    /// may not be aligned to frames, and are dropped (counted here).
    unaligned: bool,
    skipped: u64,
}

/// For the progress lines: when this connection began receiving the file,
/// from which byte, and the last line logged.
struct Progress {
    began: Instant,
    began_at: u64,
    last_decile: u64,
    last_progress: Option<Instant>,
}

/// The parts of the session a transfer step reads and writes, besides the
/// transfer itself.
pub(super) struct Cx<'a> {
    pub cfg: &'a super::Config,
    pub tag: &'a str,
    pub protocol_id: u16,
    pub convention: &'a mut Option<Convention>,
    pub stats: &'a mut super::Stats,
    pub actions: &'a mut std::collections::VecDeque<Action>,
}

/// What the session does after a transfer step: every way out of a step
/// is one of these (nothing is put back, nothing returns silently).
#[must_use]
pub(super) enum Next {
    /// Nothing more until the next input: the transfer goes on.
    Wait,
    /// Send RESUME at what is stored.
    Resume,
    /// This file is given up (its partial kept when it was open, an
    /// `Abandon` already queued): not asked again in this session; the
    /// next file.
    GiveUpFile { skip: Vec<u8> },
    /// The file is published (or a duplicate recorded): the next file.
    Stored,
    /// The session ends, with CLOSE (the step logged why).
    End(End),
}

impl Transfer {
    pub fn new(file: Box<Pending>, unit: Unit, total: u32, start_field: u16, now: Instant) -> Self {
        Transfer {
            fixed: Fixed {
                file,
                unit,
                total,
                start_field,
            },
            run: Run {
                phase: Phase::Open,
                stored: 0,
                inits: [0, 0],
                n_inits: 1,
                chain: 0,
                sync_from: 0,
                crc_errors: 0,
                retries_here: 0,
                in_flight: 0,
                resends: 0,
                data_frames: 0,
                resumed_from: None,
                first_after_disk_resume: false,
                unaligned: false,
                skipped: 0,
            },
            progress: Progress {
                began: now,
                began_at: 0,
                last_decile: 0,
                last_progress: None,
            },
        }
    }

    pub fn crc_errors(&self) -> u32 {
        self.run.crc_errors
    }

    fn extent(&self) -> Extent {
        Extent::new(self.fixed.unit, self.fixed.total)
    }

    /// "12288 of 20813 bytes" (a packet-counted file's size is known only at its end).
    pub fn kept(&self) -> String {
        self.extent().kept(self.run.stored)
    }

    pub fn is_open(&self) -> bool {
        !matches!(self.run.phase, Phase::Open | Phase::Finish)
    }

    /// RESUME was sent and its SYNC has not come ([`super::Timer::Sync`] runs).
    pub fn waits_for_sync(&self) -> bool {
        self.run.phase == Phase::Sync
    }

    /// Whether the bytes before the next SYNC are to be dropped unread.
    pub fn awaits_sync(&self) -> bool {
        self.run.unaligned && self.run.phase == Phase::Sync
    }

    fn total_bytes(&self) -> Option<u64> {
        self.extent().exact_bytes()
    }

    fn max_bytes(&self) -> u64 {
        self.extent().max_bytes()
    }

    fn complete(&self) -> bool {
        self.extent().is_complete(self.run.stored)
    }

    /// The RESUME value for what is stored.
    fn resume_value(&self) -> u32 {
        self.extent().resume_offset(self.run.stored)
    }

    /// A SYNC offset in bytes, or None when it is outside the file.
    fn sync_bytes(&self, offset: u32) -> Option<u64> {
        self.extent().byte_of(offset)
    }

    fn position(&self) -> String {
        self.extent().position(self.run.stored)
    }

    /// RESUME is being sent now: its value.
    pub(super) fn resume(&mut self) -> u32 {
        self.run.phase = Phase::Sync;
        self.run.in_flight = 0;
        self.resume_value()
    }

    /// No SYNC came within `--sync-timeout` of the RESUME: RESUME again, up
    /// to `--max-resends`.
    pub(super) fn on_timeout(&mut self, cx: &mut Cx<'_>) -> Next {
        if !self.waits_for_sync() {
            return Next::Wait;
        }
        if self.run.resends >= cx.cfg.max_resends {
            let why = GiveUp::NoSync {
                file: self.fixed.file.spec.display(),
                resumes: self.run.resends + 1,
            };
            log::warn!("[{}] {why}", cx.tag);
            return Next::End(End::GaveUp(why));
        }
        self.run.resends += 1;
        log::warn!(
            "[{}] no SYNC within {:?}: RESUME again at {} ({}/{})",
            cx.tag,
            cx.cfg.sync_timeout,
            self.position(),
            self.run.resends,
            cx.cfg.max_resends
        );
        Next::Resume
    }

    /// A frame from the camera during the transfer.
    pub(super) fn on_frame(&mut self, cx: &mut Cx<'_>, now: Instant, frame: Frame<'_>) -> Next {
        match (self.run.phase, frame) {
            (Phase::Sync | Phase::Receiving, Frame::Sync { offset }) => {
                self.on_sync(cx, now, offset)
            }
            // A device that got no RESUME yet sends its START again: the
            // RESUME already sent answers it.
            (Phase::Open | Phase::Sync, Frame::Start { total, .. })
                if total == self.fixed.total =>
            {
                log::info!(
                    "[{}] START repeated for {}: the RESUME already sent answers it",
                    cx.tag,
                    self.fixed.file.spec.display()
                );
                Next::Wait
            }
            (Phase::Sync, f) if f.file_bytes().is_some() => {
                self.run.in_flight += 1;
                if self.run.in_flight > MAX_IN_FLIGHT {
                    let end = End::Protocol(ProtocolError::NoSyncInFlight(MAX_IN_FLIGHT));
                    log::warn!("[{}] {end}", cx.tag);
                    return Next::End(end);
                }
                Next::Wait
            }
            (Phase::Receiving, Frame::Data { payload, crc }) => {
                self.on_data(cx, now, None, payload, crc)
            }
            (
                Phase::Receiving,
                Frame::EnhancedData {
                    offset,
                    payload,
                    crc,
                },
            ) => self.on_data(cx, now, Some(offset), payload, crc),
            (_, Frame::Status { code }) => {
                let what = format!(
                    "the transfer of {} at {}",
                    self.fixed.file.spec.display(),
                    self.position()
                );
                super::log_status(cx.tag, code, &what);
                if code == super::DISCONNECTS {
                    return Next::End(End::DeviceStatus(code));
                }
                if self.is_open() {
                    let crc_errors = self.run.crc_errors;
                    cx.actions.push_back(Action::Abandon { crc_errors });
                }
                Next::GiveUpFile {
                    skip: self.fixed.file.spec.identifier.clone(),
                }
            }
            (_, f) => {
                let expected = match self.run.phase {
                    Phase::Sync => "SYNC",
                    _ => "DATA",
                };
                let end = End::Protocol(ProtocolError::Unexpected {
                    expected,
                    got: f.name(),
                });
                log::warn!("[{}] {end}", cx.tag);
                Next::End(end)
            }
        }
    }

    /// `n` bytes were dropped before the SYNC: bounded like frames in
    /// flight (`max_data`: the frame bound of this file's flow).
    pub(super) fn skipped(&mut self, cx: &mut Cx<'_>, n: usize, max_data: usize) -> Next {
        let bound = MAX_IN_FLIGHT as u64 * (HEADER_LEN + max_data) as u64;
        self.run.skipped += n as u64;
        if self.run.skipped > bound {
            let end = End::Protocol(ProtocolError::NoSyncInFlight(MAX_IN_FLIGHT));
            log::warn!(
                "[{}] {end} ({} bytes without a SYNC)",
                cx.tag,
                self.run.skipped
            );
            return Next::End(end);
        }
        Next::Wait
    }

    /// Every byte is in: storage is asked to finish the file.
    fn file_complete(&mut self, cx: &mut Cx<'_>) -> Next {
        let (run, fixed) = (&mut self.run, &mut self.fixed);
        run.phase = Phase::Finish;
        // The device's last CRC covers the whole file when it chains on (or
        // never resumed past the start), else the bytes since the last SYNC.
        let check = match cx.convention {
            Some(Convention::Chained) => CrcCheck {
                from: 0,
                crc: run.chain,
            },
            _ => CrcCheck {
                from: run.sync_from,
                crc: run.chain,
            },
        };
        let record = FileRecord {
            spec: fixed.file.spec.clone(),
            family: fixed.file.family,
            flow: fixed.file.flow,
            unit: fixed.unit,
            start_total: fixed.total,
            start_field: fixed.start_field,
            protocol_id: cx.protocol_id,
            metadata: fixed.file.metadata.take(),
            crc_errors: run.crc_errors,
            convention: *cx.convention,
            check,
            resumed_from: run.resumed_from,
            data_frames: run.data_frames,
        };
        cx.actions.push_back(Action::Finish(Box::new(record)));
        Next::Wait
    }
}

/// 1.2 MB, 350 kB, 12 B: for people.
pub fn human_bytes(n: u64) -> String {
    match n {
        n if n >= 1_000_000_000 => format!("{:.1} GB", n as f64 / 1e9),
        n if n >= 1_000_000 => format!("{:.1} MB", n as f64 / 1e6),
        n if n >= 1_000 => format!("{:.0} kB", n as f64 / 1e3),
        n => format!("{n} B"),
    }
}
