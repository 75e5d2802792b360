//! How the session runs a transfer: the file begun, one step of it with
//! the parts of the session it uses, and what the step's [`Next`] says
//! carried out in one place.

use super::*;
use crate::session::Timer;

impl Session<'_> {
    pub(in crate::session) fn begin_transfer(
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
        let t = Transfer::new(file, unit, total, start_field, self.last_rx);
        self.state = State::Transfer(Box::new(t));
        self.actions.push_back(Action::Open(open));
    }

    /// The transfer under way, with the parts of the session a step uses.
    /// None when no file is being received.
    fn transfer(&mut self) -> Option<(&mut Transfer, Cx<'_>)> {
        let Session {
            state: State::Transfer(t),
            cfg,
            tag,
            protocol_id,
            convention,
            stats,
            actions,
            ..
        } = self
        else {
            return None;
        };
        let cx = Cx {
            cfg,
            tag,
            protocol_id: *protocol_id,
            convention,
            stats,
            actions,
        };
        Some((t, cx))
    }

    /// One step of the transfer, then what it says to do next. No file
    /// under way (a storage answer that comes after the session ended, a
    /// deadline of a file already finished): nothing to do.
    pub(in crate::session) fn step(
        &mut self,
        now: Instant,
        f: impl FnOnce(&mut Transfer, &mut Cx<'_>) -> Next,
    ) {
        let next = match self.transfer() {
            Some((t, mut cx)) => f(t, &mut cx),
            None => Next::Wait,
        };
        self.then(now, next);
        // Past the SYNC (or out of the transfer): its deadline stops.
        if !matches!(&self.state, State::Transfer(t) if t.waits_for_sync()) {
            self.timers.stop(Timer::Sync);
        }
    }

    /// Carries out what a transfer step said.
    fn then(&mut self, now: Instant, next: Next) {
        match next {
            Next::Wait => {}
            Next::Resume => self.send_resume(now),
            Next::GiveUpFile { skip } => {
                self.skip.insert(skip);
                self.stats.files_failed += 1;
                self.next_file();
            }
            Next::Stored => self.next_file(),
            Next::End(end) => self.finish_session(end, true),
        }
    }

    fn send_resume(&mut self, now: Instant) {
        if let State::Transfer(t) = &mut self.state {
            let offset = t.resume();
            self.timers.set(Timer::Sync, now + self.cfg.sync_timeout);
            self.send(Frame::Resume { offset });
        }
    }
}
