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

pub(crate) struct Transfer {
    pub file: Box<Pending>,
    pub flow: Flow,
    unit: Unit,
    total: u32,
    /// START's 2-byte field (0 from every device seen).
    start_field: u16,
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
    resume_sent: Instant,
    data_frames: u32,
    resumed_from: Option<u64>,
    /// A partial from disk was resumed and no frame has matched since.
    first_after_disk_resume: bool,
    /// RESUME was sent for a bad packet: the bytes before the device's SYNC
    /// may not be aligned to frames, and are dropped (counted here).
    unaligned: bool,
    skipped: u64,
    /// When this connection began receiving the file, and from which byte.
    began: Instant,
    began_at: u64,
    last_decile: u64,
    last_progress: Option<Instant>,
}

impl Transfer {
    pub fn crc_errors(&self) -> u32 {
        self.crc_errors
    }

    fn extent(&self) -> Extent {
        Extent::new(self.unit, self.total)
    }

    /// "12288 of 20813 bytes" (a packet-counted file's size is known only at its end).
    pub fn kept(&self) -> String {
        self.extent().kept(self.stored)
    }

    pub fn is_open(&self) -> bool {
        !matches!(self.phase, Phase::Open | Phase::Finish)
    }

    pub fn deadline_with(&self, sync_timeout: std::time::Duration) -> Option<Instant> {
        (self.phase == Phase::Sync).then(|| self.resume_sent + sync_timeout)
    }

    fn total_bytes(&self) -> Option<u64> {
        self.extent().exact_bytes()
    }

    fn max_bytes(&self) -> u64 {
        self.extent().max_bytes()
    }

    fn complete(&self) -> bool {
        self.extent().is_complete(self.stored)
    }

    /// The RESUME value for what is stored.
    fn resume_value(&self) -> u32 {
        self.extent().resume_offset(self.stored)
    }

    /// A SYNC offset in bytes, or None when it is outside the file.
    fn sync_bytes(&self, offset: u32) -> Option<u64> {
        self.extent().byte_of(offset)
    }

    fn position(&self) -> String {
        self.extent().position(self.stored)
    }
}

impl Session<'_> {
    pub(super) fn begin_transfer(
        &mut self,
        file: Box<Pending>,
        unit: Unit,
        total: u32,
        start_field: u16,
    ) {
        let open = OpenFile {
            spec: file.spec.clone(),
            unit,
            total,
            meta_timestamp_ms: file.metadata.as_ref().and_then(|(_, m)| m.timestamp_ms),
        };
        log::info!(
            "[{}] receiving {}: {total} {}",
            self.tag,
            file.spec.display(),
            unit.name()
        );
        let flow = file.flow;
        self.state = State::Transfer(Box::new(Transfer {
            file,
            flow,
            unit,
            total,
            phase: Phase::Open,
            start_field,
            stored: 0,
            inits: [0, 0],
            n_inits: 1,
            chain: 0,
            sync_from: 0,
            crc_errors: 0,
            retries_here: 0,
            in_flight: 0,
            resends: 0,
            resume_sent: self.last_rx,
            data_frames: 0,
            resumed_from: None,
            first_after_disk_resume: false,
            unaligned: false,
            skipped: 0,
            began: self.last_rx,
            began_at: 0,
            last_decile: 0,
            last_progress: None,
        }));
        self.actions.push_back(Action::Open(open));
    }

    pub(super) fn transfer_timeout(&mut self, now: Instant, t: Box<Transfer>) {
        let due = t.deadline_with(self.cfg.sync_timeout);
        self.state = State::Transfer(t);
        if due.is_none_or(|d| now < d) {
            return;
        }
        let State::Transfer(t) = &mut self.state else {
            return;
        };
        if t.resends >= self.cfg.max_resends {
            let why = GiveUp::NoSync {
                file: t.file.spec.display(),
                resumes: t.resends + 1,
            };
            log::warn!("[{}] {why}", self.tag);
            self.finish_session(End::GaveUp(why), true);
            return;
        }
        t.resends += 1;
        log::warn!(
            "[{}] no SYNC within {:?}: RESUME again at {} ({}/{})",
            self.tag,
            self.cfg.sync_timeout,
            t.position(),
            t.resends,
            self.cfg.max_resends
        );
        self.send_resume(now);
    }

    pub(super) fn transfer_frame(&mut self, now: Instant, mut t: Box<Transfer>, frame: Frame<'_>) {
        match (t.phase, frame) {
            (Phase::Sync | Phase::Receiving, Frame::Sync { offset }) => {
                self.state = State::Transfer(t);
                self.on_sync(now, offset);
            }
            // A device that got no RESUME yet sends its START again: the
            // RESUME already sent answers it.
            (Phase::Open | Phase::Sync, Frame::Start { total, .. }) if total == t.total => {
                log::info!(
                    "[{}] START repeated for {}: the RESUME already sent answers it",
                    self.tag,
                    t.file.spec.display()
                );
                self.state = State::Transfer(t);
            }
            (Phase::Sync, f) if f.file_bytes().is_some() => {
                t.in_flight += 1;
                if t.in_flight > MAX_IN_FLIGHT {
                    self.state = State::Transfer(t);
                    let end = End::Protocol(ProtocolError::NoSyncInFlight(MAX_IN_FLIGHT));
                    log::warn!("[{}] {end}", self.tag);
                    self.finish_session(end, true);
                } else {
                    self.state = State::Transfer(t);
                }
            }
            (Phase::Receiving, Frame::Data { payload, crc }) => {
                self.state = State::Transfer(t);
                self.on_data(now, None, payload, crc);
            }
            (
                Phase::Receiving,
                Frame::EnhancedData {
                    offset,
                    payload,
                    crc,
                },
            ) => {
                self.state = State::Transfer(t);
                self.on_data(now, Some(offset), payload, crc);
            }
            (_, Frame::Status { code }) => {
                let what = format!(
                    "the transfer of {} at {}",
                    t.file.spec.display(),
                    t.position()
                );
                let open = t.is_open();
                let crc_errors = t.crc_errors;
                let id = t.file.spec.identifier.clone();
                self.state = State::Transfer(t);
                if !self.device_status(code, &what) {
                    if open {
                        self.actions.push_back(Action::Abandon { crc_errors });
                    }
                    self.skip.insert(id);
                    self.stats.files_failed += 1;
                    self.next_file();
                }
            }
            (_, f) => {
                let what = match t.phase {
                    Phase::Sync => "SYNC",
                    _ => "DATA",
                };
                self.state = State::Transfer(t);
                self.unexpected(&f, what);
            }
        }
    }

    /// Whether the bytes before the next SYNC are to be dropped unread.
    pub(super) fn awaits_sync_in_transfer(&self) -> bool {
        matches!(&self.state, State::Transfer(t) if t.unaligned && t.phase == Phase::Sync)
    }

    /// `n` bytes before the SYNC were dropped: bounded like frames in flight.
    pub(super) fn skipped_before_sync(&mut self, n: usize) {
        let bound = MAX_IN_FLIGHT as u64 * (HEADER_LEN + self.limits().max_data) as u64;
        let State::Transfer(t) = &mut self.state else {
            return;
        };
        t.skipped += n as u64;
        if t.skipped > bound {
            let end = End::Protocol(ProtocolError::NoSyncInFlight(MAX_IN_FLIGHT));
            log::warn!("[{}] {end} ({} bytes without a SYNC)", self.tag, t.skipped);
            self.finish_session(end, true);
        }
    }

    fn file_complete(&mut self) {
        let State::Transfer(t) = &mut self.state else {
            return;
        };
        t.phase = Phase::Finish;
        // The device's last CRC covers the whole file when it chains on (or
        // never resumed past the start), else the bytes since the last SYNC.
        let check = match self.convention {
            Some(Convention::Chained) => CrcCheck {
                from: 0,
                crc: t.chain,
            },
            _ => CrcCheck {
                from: t.sync_from,
                crc: t.chain,
            },
        };
        let record = FileRecord {
            spec: t.file.spec.clone(),
            family: t.file.family,
            flow: t.flow,
            unit: t.unit,
            start_total: t.total,
            start_field: t.start_field,
            protocol_id: self.protocol_id,
            metadata: t.file.metadata.take(),
            crc_errors: t.crc_errors,
            convention: self.convention,
            check,
            resumed_from: t.resumed_from,
            data_frames: t.data_frames,
        };
        self.actions.push_back(Action::Finish(Box::new(record)));
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
