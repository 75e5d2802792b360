//! One file: [METADATA REQ], FILE REQ, START, RESUME, SYNC, DATA... with every CRC checked.

use std::io::{Read, Write};

use chrono::Utc;

use super::{device_status, End, ReadError, ReadTimeout, Session};
use crate::codec::{self, crc16, frame::MAX_DATA_BYTES, status_name, Frame};
use crate::storage::{sidecar, FileSpec, MetadataJson, Partial, Sidecar};

/// DATA frames still in flight after a RESUME are discarded; a device that sends
/// more than this many without a SYNC is not following the protocol.
const MAX_IN_FLIGHT: u32 = 4096;
/// Late METADATA frames tolerated while waiting for START.
const MAX_STRAY_METADATA: u32 = 4;

enum Step {
    Sync,
    Data,
}

impl<R: Read + ReadTimeout, W: Write> Session<'_, R, W> {
    /// Downloads one file. Ok when it is stored or the device declined it
    /// with a STATUS that leaves the session usable.
    pub(super) fn fetch(&mut self, spec: &FileSpec) -> Result<(), End> {
        let metadata = if self.ctx.config.metadata {
            self.query_metadata(spec)?
        } else {
            None
        };
        self.link.send(Frame::FileRequest {
            identifier: &spec.identifier,
        })?;
        let mut stray = 0;
        let packets = loop {
            match self
                .reader
                .read_frame()
                .map_err(|e| self.link.fail(e.into()))?
            {
                Frame::Start { packets } => break packets,
                // A METADATA answer that came after --metadata-timeout; a few at most.
                Frame::Metadata { payload } if stray < MAX_STRAY_METADATA => {
                    stray += 1;
                    log::info!(
                        "[{}] late METADATA ({} bytes) ignored",
                        self.link.tag,
                        payload.len()
                    );
                }
                Frame::Status { code } => return self.file_status(code, spec),
                f => {
                    let what = format!("expected START for {}, got {}", spec.display(), f.name());
                    return Err(self.link.fail(End::Protocol(what)));
                }
            }
        };
        if packets == 0 {
            return Err(self.link.fail(End::Protocol(format!(
                "START for {} with 0 packets",
                spec.display()
            ))));
        }
        if packets > self.ctx.config.max_packets {
            let why = format!(
                "{} announces {packets} packets (up to {} MiB), over the --max-file-mb limit of {} MiB",
                spec.display(),
                (packets as u64 * 1024) >> 20,
                (self.ctx.config.max_packets as u64 * 1024) >> 20
            );
            log::warn!("[{}] {why}", self.link.tag);
            return Err(self.link.fail(End::Refused(why)));
        }
        let imei = self.imei.unwrap_or_default();
        let mut partial = match self.ctx.storage.begin(imei, spec, packets) {
            Ok(p) => p,
            Err(e) => return Err(self.link.fail(End::Storage(format!("{e:#}")))),
        };
        let resumed = partial.next_packet();
        if resumed > 1 {
            log::info!(
                "[{}] resuming {} at packet {resumed} of {packets} ({} bytes kept)",
                self.link.tag,
                spec.display(),
                partial.bytes()
            );
        } else {
            log::info!(
                "[{}] receiving {}: {packets} packets",
                self.link.tag,
                spec.display()
            );
        }
        self.receive(spec, &mut partial, packets)?;

        let started_at = partial.started_at();
        let meta_json = metadata.as_ref().map(|(raw, m)| MetadataJson::new(raw, m));
        let name_time = metadata
            .as_ref()
            .and_then(|(_, m)| m.timestamp_ms)
            .and_then(sidecar::from_millis)
            .unwrap_or(started_at);
        let stem = format!("{}_{}", name_time.format("%Y%m%d_%H%M%S"), spec.name);
        let sc = Sidecar {
            imei: imei.to_string(),
            file: spec.display(),
            media: spec.media.to_string(),
            camera: spec.camera.map(str::to_string),
            size_bytes: partial.bytes(),
            packets,
            crc16: format!("0x{:04X}", partial.crc()),
            crc_errors: partial.crc_errors(),
            protocol_id: self.protocol_id,
            remote_addr: self.remote.clone(),
            started_at: sidecar::rfc3339(started_at),
            completed_at: sidecar::rfc3339(Utc::now()),
            resumed_at_packet: (resumed > 1).then_some(resumed),
            metadata: meta_json,
            mp4: None,
            conversion_error: None,
        };
        let stored = match partial.finish(&stem, &spec.extension, sc) {
            Ok(s) => s,
            Err(e) => return Err(self.link.fail(End::Storage(format!("{e:#}")))),
        };
        log::info!(
            "[{}] saved {} ({} bytes, CRC {})",
            self.link.tag,
            stored.path.display(),
            stored.sidecar.size_bytes,
            stored.sidecar.crc16
        );
        (self.ctx.on_stored)(&stored);
        self.stored.push(stored);
        Ok(())
    }

    /// STATUS instead of START: the file ends; 0x11 also ends the session.
    fn file_status(&mut self, code: u32, spec: &FileSpec) -> Result<(), End> {
        let end = device_status(
            &self.link.tag,
            code,
            &format!("request of {}", spec.display()),
        );
        if code == 0x11 {
            Err(end)
        } else {
            Ok(())
        }
    }

    /// METADATA REQ; older firmware never answers, which costs one short wait.
    /// Returns the raw payload (kept in the sidecar) and its parsed fields.
    fn query_metadata(
        &mut self,
        spec: &FileSpec,
    ) -> Result<Option<(Vec<u8>, codec::Metadata)>, End> {
        self.link.send(Frame::MetadataRequest {
            identifier: &spec.identifier,
        })?;
        let cfg = self.ctx.config;
        let _ = self
            .reader
            .get_ref()
            .set_read_timeout(Some(cfg.metadata_timeout));
        let answer = self.reader.read_frame().map(|f| match f {
            Frame::Metadata { payload } => Ok(payload.to_vec()),
            other => Err((other.name(), other)),
        });
        let result = match answer {
            Ok(Ok(raw)) => {
                let m = codec::Metadata::parse(&raw);
                let show = |v: Option<String>| v.unwrap_or_else(|| "n/a".into());
                log::info!(
                    "[{}] metadata for {}: {} bytes, time {}, trigger {}, duration {} s, {} fps",
                    self.link.tag,
                    spec.display(),
                    raw.len(),
                    show(
                        m.timestamp_ms
                            .and_then(sidecar::from_millis)
                            .map(sidecar::rfc3339)
                    ),
                    show(m.trigger.map(|v| v.to_string())),
                    show(m.duration_s.map(|v| v.to_string())),
                    show(m.frame_rate.map(|v| v.to_string()))
                );
                Ok(Some((raw, m)))
            }
            Ok(Err((_, Frame::Status { code }))) => {
                log::warn!(
                    "[{}] device answered METADATA REQ with STATUS 0x{code:02X} ({})",
                    self.link.tag,
                    status_name(code)
                );
                if code == 0x11 {
                    Err(End::DeviceStatus(code))
                } else {
                    Ok(None)
                }
            }
            Ok(Err((name, _))) => Err(self
                .link
                .fail(End::Protocol(format!("expected METADATA, got {name}")))),
            Err(ReadError::TimedOut) => {
                log::info!(
                    "[{}] no METADATA for {} within {:?} (firmware before 03.27.04?): requesting the file anyway",
                    self.link.tag,
                    spec.display(),
                    cfg.metadata_timeout
                );
                Ok(None)
            }
            Err(e) => Err(self.link.fail(e.into())),
        };
        let _ = self
            .reader
            .get_ref()
            .set_read_timeout(Some(cfg.read_timeout));
        result
    }

    /// RESUME, SYNC, DATA... until every packet is verified and on disk.
    fn receive(
        &mut self,
        spec: &FileSpec,
        partial: &mut Partial<'_>,
        packets: u32,
    ) -> Result<(), End> {
        let mut resume_at = partial.next_packet();
        self.link.send(Frame::Resume { offset: resume_at })?;
        let mut step = Step::Sync;
        let mut discarded = 0u32;
        let mut retries_here = 0u32;
        let mut last_decile = (resume_at - 1) as u64 * 10 / packets as u64;
        let debug = log::log_enabled!(log::Level::Debug);
        while partial.next_packet() <= packets {
            self.check_shutdown()?;
            let frame = match self.reader.read_frame() {
                Ok(f) => f,
                Err(e) => {
                    let k = partial.next_packet();
                    log::warn!(
                        "[{}] {e} while receiving packet {k} of {packets} of {}",
                        self.link.tag,
                        spec.display()
                    );
                    return Err(self.link.fail(e.into()));
                }
            };
            if debug {
                log::debug!(
                    "[{}] <- {} {}",
                    self.link.tag,
                    frame.name(),
                    frame_summary(&frame)
                );
            }
            match (&step, frame) {
                (Step::Sync, Frame::Sync { offset }) if offset == resume_at => step = Step::Data,
                (Step::Sync, Frame::Sync { offset }) => {
                    let why = format!("SYNC offset {offset} but RESUME asked for {resume_at} (file has {packets} packets)");
                    return Err(self.link.fail(End::Protocol(why)));
                }
                (Step::Sync, Frame::Data { .. }) => {
                    discarded += 1;
                    if discarded > MAX_IN_FLIGHT {
                        let why = format!("{discarded} DATA frames without the SYNC after RESUME");
                        return Err(self.link.fail(End::Protocol(why)));
                    }
                }
                (Step::Data, Frame::Data { payload, crc }) => {
                    let k = partial.next_packet();
                    if k < packets && payload.len() != MAX_DATA_BYTES {
                        let why = format!(
                            "packet {k} of {packets} has {} bytes; only the last may be short",
                            payload.len()
                        );
                        return Err(self.link.fail(End::Protocol(why)));
                    }
                    if crc16(partial.crc(), payload) == crc {
                        if let Err(e) = partial.append(payload, crc) {
                            return Err(self
                                .link
                                .fail(End::Storage(format!("writing {}: {e}", spec.display()))));
                        }
                        retries_here = 0;
                        let decile = k as u64 * 10 / packets as u64;
                        if decile > last_decile && k < packets && packets >= 10 {
                            last_decile = decile;
                            log::info!(
                                "[{}] {} {}% ({k}/{packets} packets)",
                                self.link.tag,
                                spec.display(),
                                decile * 10
                            );
                        }
                        continue;
                    }
                    partial.count_crc_error();
                    self.crc_retries += 1;
                    retries_here += 1;
                    if retries_here > self.ctx.config.max_crc_retries {
                        let why = format!(
                            "packet {k} of {} failed its CRC {retries_here} times; partial kept for a later resume",
                            spec.display()
                        );
                        log::warn!("[{}] {why}", self.link.tag);
                        return Err(self.link.fail(End::GaveUp(why)));
                    }
                    log::warn!(
                        "[{}] CRC error in packet {k} of {packets} of {} (got 0x{crc:04X}): RESUME at {k}",
                        self.link.tag,
                        spec.display()
                    );
                    resume_at = k;
                    discarded = 0;
                    step = Step::Sync;
                    self.link.send(Frame::Resume { offset: k })?;
                }
                (_, Frame::Status { code }) => {
                    let end = device_status(
                        &self.link.tag,
                        code,
                        &format!("transfer of {}", spec.display()),
                    );
                    return Err(self.link.fail(end));
                }
                (Step::Data, Frame::Sync { offset }) => {
                    let why = format!(
                        "unexpected SYNC {offset} in the middle of the DATA of {}",
                        spec.display()
                    );
                    return Err(self.link.fail(End::Protocol(why)));
                }
                (_, f) => {
                    let why = format!("unexpected {} while receiving {}", f.name(), spec.display());
                    return Err(self.link.fail(End::Protocol(why)));
                }
            }
        }
        Ok(())
    }
}

fn frame_summary(f: &Frame<'_>) -> String {
    match f {
        Frame::Data { payload, crc } => format!(
            "{} bytes, CRC 0x{crc:04X}, starts {}",
            payload.len(),
            codec::hex(&payload[..payload.len().min(16)])
        ),
        other => codec::hex(&other.to_vec()),
    }
}
