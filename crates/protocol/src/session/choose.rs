//! Which file next: one file per init, as the reference server does. After
//! each file comes REPEAT INIT; an init that offers nothing wanted gets CLOSE.

use std::time::Instant;

use super::{Action, End, Flow, Mode, Pending, ProtocolError, Refusal, Session, State, Timer};
use crate::codec::{self, Family, FileKind, Frame, InitPacket};
use crate::file::FileSpec;

/// Late METADATA frames tolerated while waiting for START.
const MAX_STRAY_METADATA: u32 = 4;

/// What an init asks of the server.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Choice {
    Identifier(FileKind),
    Path,
    /// Why nothing is asked for (the CLOSE's reason in the log).
    Nothing(&'static str),
}

impl Session<'_> {
    pub(super) fn on_init(&mut self, now: Instant, init: InitPacket) {
        // One piece (over 80 lines): the decision table for an init (mode,
        // protocol, settings bits, allow-list) read in one place, in the
        // reference server's order.
        let first = match self.state {
            State::Init { first, .. } => first,
            _ => {
                self.finish_session(End::Protocol(ProtocolError::UnexpectedInit), true);
                return;
            }
        };
        self.state = State::Done;
        let _ = now;
        if log::log_enabled!(log::Level::Debug) {
            log::debug!("[{}] <- INIT {}", self.tag, codec::hex(&init.encode()));
        }
        if first {
            let peer = std::mem::replace(&mut self.tag, init.imei.to_string());
            self.imei = Some(init.imei);
            self.protocol_id = init.protocol_id;
            log::info!(
                "[{}] camera connected from {peer}: protocol {}, settings 0x{:08X}, offers {}",
                self.tag,
                init.protocol_id,
                init.settings,
                offers(&init)
            );
            if let Some(allow) = &self.cfg.allow {
                if !allow.contains(&init.imei) {
                    log::warn!("[{}] not in the allow-list: CLOSE", self.tag);
                    self.finish_session(End::NotAllowed, true);
                    return;
                }
            }
            self.actions.push_back(Action::Camera(init.imei));
        } else {
            if Some(init.imei) != self.imei {
                let end = End::Protocol(ProtocolError::ImeiChanged(init.imei));
                log::warn!("[{}] {end}", self.tag);
                self.finish_session(end, true);
                return;
            }
            self.protocol_id = init.protocol_id;
            log::info!(
                "[{}] init repeated: settings 0x{:08X}, offers {}",
                self.tag,
                init.settings,
                offers(&init)
            );
        }
        if self.files_asked >= self.cfg.max_files && init.offers_anything() {
            log::warn!(
                "[{}] {} files asked in this session (--max-files): CLOSE; the rest come on the next connection",
                self.tag,
                self.files_asked
            );
            self.finish_session(End::Completed, true);
            return;
        }
        self.last_init = Some(init);
        match self.choose(&init) {
            Choice::Nothing(why) => {
                log::info!(
                    "[{}] {}: {why}: CLOSE",
                    self.tag,
                    if first {
                        "nothing to fetch"
                    } else {
                        "nothing more to fetch"
                    }
                );
                self.finish_session(End::Completed, true);
            }
            Choice::Identifier(kind) => {
                self.log_flow(Flow::Identifier, Some(Family::DualCam), &init);
                let spec = FileSpec::dualcam(kind);
                self.ask(Pending {
                    spec,
                    family: Family::DualCam,
                    flow: Flow::Identifier,
                    metadata: None,
                });
            }
            Choice::Path => {
                self.log_flow(Flow::Path, None, &init);
                self.send(Frame::PathRequest);
                self.state = State::Path;
            }
        }
    }

    fn log_flow(&mut self, flow: Flow, family: Option<Family>, init: &InitPacket) {
        if self.flow_logged == Some((flow, family)) {
            return;
        }
        self.flow_logged = Some((flow, family));
        let why = match flow {
            Flow::Path if init.protocol_id >= 6 => {
                format!("protocol {} uses the path flow", init.protocol_id)
            }
            Flow::Path => "settings bit 0x02 offers a path-flow file".to_string(),
            Flow::Identifier => "settings bits offer DualCam files".to_string(),
        };
        log::info!(
            "[{}] {} flow ({why}, mode {:?}){}; offsets in {}",
            self.tag,
            flow.name(),
            self.cfg.mode,
            family.map_or(String::new(), |f| format!(", family {f}")),
            match flow {
                Flow::Identifier => "1024-byte packets",
                Flow::Path => "bytes",
            }
        );
    }

    /// The decision per init: path flow, one identifier, or nothing.
    pub(crate) fn choose(&mut self, init: &InitPacket) -> Choice {
        let v6 = init.protocol_id >= 6;
        let path_ok = init.path_file() || (v6 && init.offers_anything());
        let identifier_ok = !v6;
        let (take_path, take_identifier) = match self.cfg.mode {
            Mode::Auto => (path_ok, identifier_ok),
            Mode::Dualcam => (v6 && init.offers_anything(), identifier_ok),
            Mode::Adas | Mode::Dsm => (path_ok, false),
        };
        if take_path {
            return Choice::Path;
        }
        if !take_identifier {
            return Choice::Nothing(match self.cfg.mode {
                Mode::Dualcam if path_ok => {
                    "--mode dualcam does not take this camera's path-flow file (an ADAS or DSM camera?)"
                }
                Mode::Adas | Mode::Dsm if init.offers_anything() => {
                    "--mode adas/dsm takes only path-flow files, and this camera offers DualCam files"
                }
                _ => "the camera offers no file",
            });
        }
        let reported = init.available();
        let wanted = |k: &FileKind| self.cfg.files.as_ref().is_none_or(|l| l.contains(k));
        let skip = |k: &FileKind| self.skip.contains(k.identifier().as_bytes());
        let fetched = |k: &FileKind| self.fetched.contains(k);
        if let Some(k) = reported.iter().copied().find(|k| wanted(k) && !skip(k)) {
            return Choice::Identifier(k);
        }
        // Forced files (--files) come after every reported one: STATUS 0x11 ends the session.
        let forced = self.cfg.files.iter().flatten().copied().find(|k| {
            !reported.contains(k) && !skip(k) && !fetched(k) && !self.forced_asked.contains(k)
        });
        match forced {
            Some(k) => {
                self.forced_asked.insert(k);
                log::info!(
                    "[{}] {} not reported by the camera: requesting it anyway (--files)",
                    self.tag,
                    k.identifier()
                );
                Choice::Identifier(k)
            }
            None if reported.is_empty() && path_ok && self.cfg.mode == Mode::Dualcam => {
                Choice::Nothing(
                    "--mode dualcam does not take this camera's path-flow file (an ADAS or DSM camera?)",
                )
            }
            None if reported.is_empty() => Choice::Nothing("the camera offers no file"),
            None => Choice::Nothing("the camera offers no file that --files asks for"),
        }
    }

    /// Skips to the next identifier the last init offered, without a new
    /// init: FILE REQ for it, or REPEAT INIT when none is left.
    fn next_identifier(&mut self) {
        match self.last_init.and_then(|init| match self.choose(&init) {
            Choice::Identifier(k) => Some(k),
            _ => None,
        }) {
            Some(kind) => self.ask(Pending {
                spec: FileSpec::dualcam(kind),
                family: Family::DualCam,
                flow: Flow::Identifier,
                metadata: None,
            }),
            None => self.next_file(),
        }
    }

    /// After a file (stored, empty or failed): REPEAT INIT. It is always sent
    /// after a stored file, so a device can tell its file was taken; CLOSE
    /// right after the last packet means it was not.
    pub(super) fn next_file(&mut self) {
        self.send(Frame::RepeatInit);
        self.state = State::Init {
            first: false,
            stray: 0,
        };
    }

    pub(super) fn on_path_answer(&mut self, frame: Frame<'_>) {
        let raw = match frame {
            Frame::Path { path } => path,
            Frame::Status { code } => {
                if !self.device_status(code, "PATH REQ") {
                    self.finish_session(End::Completed, true);
                }
                return;
            }
            other => return self.unexpected(&other, "PATH"),
        };
        // A trailing NUL is tolerated; FILE REQ echoes the path exactly as sent.
        let path = raw.strip_suffix(&[0]).unwrap_or(raw);
        if path.iter().all(|&b| b == 0) {
            log::info!("[{}] camera has no path-flow file to send: CLOSE", self.tag);
            self.finish_session(End::Completed, true);
            return;
        }
        let shown = String::from_utf8_lossy(path).escape_debug().to_string();
        let refuse = if path.len() > codec::frame::MAX_PATH_BYTES {
            Some("over 255 bytes")
        } else if path.contains(&0) {
            Some("a NUL inside")
        } else if !path.iter().all(|b| (0x20..=0x7E).contains(b)) {
            Some("not printable ASCII")
        } else {
            None
        };
        if let Some(why) = refuse {
            log::warn!("[{}] refusing path \"{shown}\": {why}; CLOSE", self.tag);
            let refusal = Refusal::Path { shown, why };
            self.actions.push_back(Action::Refused(refusal.clone()));
            self.finish_session(End::Refused(refusal), true);
            return;
        }
        // A path stored in this session and offered again is a new file of
        // the same name (the camera reuses names); one that failed here is
        // left for the next connection (the path flow cannot skip a file).
        if self.skip.contains(raw) {
            log::warn!(
                "[{}] path \"{shown}\" failed earlier in this session and is offered again: CLOSE, it is left for the next connection",
                self.tag
            );
            self.finish_session(End::Completed, true);
            return;
        }
        let family = match self.cfg.mode {
            Mode::Dualcam => Family::DualCam,
            Mode::Adas => Family::Adas,
            Mode::Dsm => Family::Dsm,
            Mode::Auto => Family::from_path(path).unwrap_or(Family::Adas),
        };
        log::info!("[{}] PATH \"{shown}\": family {family}", self.tag);
        self.ask(Pending {
            spec: FileSpec::from_path(raw),
            family,
            flow: Flow::Path,
            metadata: None,
        });
    }

    /// METADATA REQ first when asked for, then FILE REQ.
    fn ask(&mut self, file: Pending) {
        self.files_asked += 1;
        if !self.cfg.metadata {
            return self.request_file(Box::new(file));
        }
        let id: &[u8] = match file.flow {
            Flow::Identifier => &file.spec.identifier,
            Flow::Path => b"",
        };
        self.send(Frame::MetadataRequest { identifier: id });
        self.state = State::Metadata {
            file: Box::new(file),
        };
        self.timers
            .set(Timer::Metadata, self.last_rx + self.cfg.metadata_timeout);
    }

    pub(super) fn on_metadata(&mut self, mut file: Box<Pending>, frame: Frame<'_>) {
        self.timers.stop(Timer::Metadata);
        match frame {
            Frame::Metadata { payload } => {
                let m = codec::Metadata::parse(file.family, self.protocol_id >= 6, payload);
                log_metadata(&self.tag, &file, payload.len(), &m);
                file.metadata = Some((payload.to_vec(), m));
                self.request_file(file);
            }
            Frame::Status { code } => {
                if !self.device_status(code, "METADATA REQ") {
                    self.request_file(file);
                }
            }
            other => self.unexpected(&other, "METADATA"),
        }
    }

    pub(super) fn request_file(&mut self, file: Box<Pending>) {
        self.send(Frame::FileRequest {
            identifier: &file.spec.identifier,
        });
        self.state = State::Start { file, stray: 0 };
    }

    pub(super) fn on_start(&mut self, file: Box<Pending>, stray: u32, frame: Frame<'_>) {
        let (total, field) = match frame {
            Frame::Start { total, field } => (total, field),
            Frame::Metadata { payload } if stray < MAX_STRAY_METADATA => {
                log::info!(
                    "[{}] late METADATA ({} bytes) ignored",
                    self.tag,
                    payload.len()
                );
                self.state = State::Start {
                    file,
                    stray: stray + 1,
                };
                return;
            }
            Frame::Status { code } => {
                let what = format!("the request of {}", file.spec.display());
                if !self.device_status(code, &what) {
                    self.skip.insert(file.spec.identifier.clone());
                    self.stats.files_failed += 1;
                    self.next_file();
                }
                return;
            }
            other => return self.unexpected(&other, "START"),
        };
        if total == 0 {
            log::info!(
                "[{}] START 0 for {}: nothing to fetch",
                self.tag,
                file.spec.display()
            );
            self.skip.insert(file.spec.identifier.clone());
            self.next_file();
            return;
        }
        let unit = transfer::unit_of(file.flow);
        let bytes = crate::file::Extent::new(unit, total).max_bytes();
        if bytes > self.cfg.max_file_bytes {
            let why = Refusal::TooLarge {
                file: file.spec.display(),
                bytes,
                limit: self.cfg.max_file_bytes,
            };
            self.stats.files_failed += 1;
            self.skip.insert(file.spec.identifier.clone());
            self.actions.push_back(Action::Refused(why.clone()));
            if file.flow == Flow::Identifier {
                // The camera's other files still come: ask for the next one.
                log::warn!(
                    "[{}] {why}: skipped in this session (raise --max-file-mb to fetch it)",
                    self.tag
                );
                return self.next_identifier();
            }
            // The path flow has no way to pass over a file: the camera offers
            // it first until it is taken.
            log::warn!(
                "[{}] {why}: CLOSE (the path flow cannot skip a file; raise --max-file-mb to fetch it)",
                self.tag
            );
            self.finish_session(End::Refused(why), true);
            return;
        }
        self.begin_transfer(file, unit, total, field);
    }

    pub(super) fn remember_stored(&mut self, kind: Option<FileKind>) {
        if let Some(k) = kind {
            self.fetched.insert(k);
        }
    }
}

use super::transfer;

fn offers(init: &InitPacket) -> String {
    let mut v: Vec<String> = init
        .available()
        .iter()
        .map(|k| k.identifier().to_string())
        .collect();
    if init.path_file() {
        v.push("a path-flow file (0x02)".into());
    }
    if v.is_empty() {
        "nothing".into()
    } else {
        v.join(", ")
    }
}

fn log_metadata(tag: &str, file: &Pending, len: usize, m: &codec::Metadata) {
    let show = |v: Option<String>| v.unwrap_or_else(|| "n/a".into());
    let time = m
        .timestamp_ms
        .and_then(crate::time::from_millis)
        .map(crate::time::rfc3339);
    let trigger = m.trigger.map(|t| {
        codec::names::trigger_name(file.family, t)
            .map_or_else(|| t.to_string(), |n| format!("{t} ({n})"))
    });
    log::info!(
        "[{tag}] metadata for {} ({}, {len} bytes): time {}, trigger {}, duration {} s, {} fps",
        file.spec.display(),
        m.format.name(),
        show(time),
        show(trigger),
        show(m.duration_s.map(|v| v.to_string())),
        show(m.frame_rate.map(|v| v.to_string()))
    );
}
