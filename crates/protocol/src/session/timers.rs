//! A connection's deadlines in one table (quinn-proto's `TimerTable` is the
//! model): each [`Timer`] is set to an instant or stopped where the session
//! changes state, [`TimerTable::next`] is what the driver waits for, and
//! [`TimerTable::expired`] says which one passed, in the order they are
//! acted on.

use std::time::Instant;

/// One of a connection's deadlines.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Timer {
    /// `--init-timeout` from the connect, until the first init packet.
    Init,
    /// `--frame-timeout` from the first byte of a frame not yet whole.
    Frame,
    /// `--read-timeout` from the last input.
    Silent,
    /// `--metadata-timeout` from METADATA REQ, until its answer.
    Metadata,
    /// `--sync-timeout` from the last RESUME, until its SYNC.
    Sync,
}

impl Timer {
    /// In the order a passed deadline is acted on: the link's own limits
    /// before what the protocol waits for.
    const ALL: [Timer; 5] = [
        Timer::Init,
        Timer::Frame,
        Timer::Silent,
        Timer::Metadata,
        Timer::Sync,
    ];

    fn slot(self) -> usize {
        self as usize
    }
}

/// When each of a connection's timers is due (none: stopped).
#[derive(Debug, Default, Clone)]
pub(crate) struct TimerTable {
    due: [Option<Instant>; Timer::ALL.len()],
}

impl TimerTable {
    pub fn set(&mut self, timer: Timer, at: Instant) {
        self.due[timer.slot()] = Some(at);
    }

    pub fn stop(&mut self, timer: Timer) {
        self.due[timer.slot()] = None;
    }

    pub fn get(&self, timer: Timer) -> Option<Instant> {
        self.due[timer.slot()]
    }

    /// Stops every timer (the session is over).
    pub fn clear(&mut self) {
        self.due = Default::default();
    }

    /// The earliest instant a timer is due.
    pub fn next(&self) -> Option<Instant> {
        self.due.iter().flatten().min().copied()
    }

    /// The first timer (in [`Timer::ALL`]'s order) due at or before `now`.
    pub fn expired(&self, now: Instant) -> Option<Timer> {
        Timer::ALL
            .into_iter()
            .find(|t| self.get(*t).is_some_and(|at| at <= now))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn the_earliest_is_next_and_a_stopped_timer_never_fires() {
        let t0 = Instant::now();
        let s = |n| t0 + Duration::from_secs(n);
        let mut t = TimerTable::default();
        assert_eq!(t.next(), None);
        assert_eq!(t.expired(s(1000)), None);
        t.set(Timer::Silent, s(60));
        t.set(Timer::Init, s(30));
        t.set(Timer::Sync, s(10));
        assert_eq!(t.next(), Some(s(10)));
        assert_eq!(t.expired(s(9)), None);
        assert_eq!(t.expired(s(10)), Some(Timer::Sync));
        t.stop(Timer::Sync);
        assert_eq!(t.next(), Some(s(30)));
        assert_eq!(t.expired(s(29)), None);
        // Set again: the new instant replaces the old.
        t.set(Timer::Init, s(5));
        assert_eq!(t.expired(s(5)), Some(Timer::Init));
        t.clear();
        assert_eq!(t.next(), None);
    }

    #[test]
    fn the_links_limits_are_acted_on_before_the_protocols_waits() {
        let t0 = Instant::now();
        let mut t = TimerTable::default();
        // All due at once: Init, then Frame, Silent, Metadata, Sync.
        for timer in Timer::ALL.into_iter().rev() {
            t.set(timer, t0);
        }
        for timer in Timer::ALL {
            assert_eq!(t.expired(t0), Some(timer));
            t.stop(timer);
        }
        assert_eq!(t.expired(t0), None);
    }
}
