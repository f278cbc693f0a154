//! The debounce state machine: when to rebuild after a burst of changes.
//!
//! A change arms a quiet period; each further change pushes the quiet period back, but never
//! past `max_delay` after the first change of the burst, so a continuous stream of changes
//! cannot starve the rebuild (Contour's holdoff and max holdoff). Nothing fires before the
//! store reports initial sync: compiling a half-listed view would publish routes to missing
//! Services and clear the status of Ingresses whose IngressClass has not been seen yet.
//!
//! Pure over [`Instant`]s, so it is tested with tokio's paused clock and no sleeps.

use std::time::Duration;

use tokio::time::Instant;

/// What a fire of the debouncer asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Pending {
    /// Objects that compile reads changed: compile and publish a snapshot.
    pub compile: bool,
    /// Only object status changed (or the published address): recompute status writes.
    pub status: bool,
    /// When the earliest change of the burst arrived (for the propagation histogram).
    pub first_arrival: Option<Instant>,
}

/// Debounce with a quiet period and a maximum delay, gated on initial sync.
#[derive(Debug, Clone)]
pub struct Debounce {
    quiet: Duration,
    max_delay: Duration,
    synced: bool,
    /// When the burst started (first change not yet built).
    first: Option<Instant>,
    /// When the last change of the burst arrived.
    last: Option<Instant>,
    pending: Pending,
}

impl Debounce {
    /// A debouncer that has not seen initial sync yet.
    pub fn new(quiet: Duration, max_delay: Duration) -> Self {
        Debounce {
            quiet,
            max_delay: max_delay.max(quiet),
            synced: false,
            first: None,
            last: None,
            pending: Pending::default(),
        }
    }

    /// Record a change at `now` (`compile`: whether compile input changed; otherwise only
    /// status). `arrived` is when the change reached weir, for the propagation histogram.
    pub fn change(&mut self, now: Instant, arrived: Instant, compile: bool) {
        if self.first.is_none() {
            self.first = Some(now);
        }
        self.last = Some(now);
        if compile {
            self.pending.compile = true;
        } else {
            self.pending.status = true;
        }
        self.pending.first_arrival = Some(match self.pending.first_arrival {
            Some(t) => t.min(arrived),
            None => arrived,
        });
    }

    /// Every watched kind has listed once: from now on changes may fire. The first build
    /// after sync fires immediately (there is nothing to wait for).
    pub fn mark_synced(&mut self, now: Instant) {
        if !self.synced {
            self.synced = true;
            self.first = Some(now);
            self.last = Some(now - self.quiet);
            self.pending.compile = true;
            self.pending.first_arrival.get_or_insert(now);
        }
    }

    /// Whether initial sync has been seen.
    pub fn is_synced(&self) -> bool {
        self.synced
    }

    /// When the pending burst should be built: `None` when nothing is pending or before sync.
    pub fn deadline(&self) -> Option<Instant> {
        if !self.synced {
            return None;
        }
        let (first, last) = (self.first?, self.last?);
        Some((last + self.quiet).min(first + self.max_delay))
    }

    /// Take the pending work if its deadline has passed at `now`.
    pub fn fire(&mut self, now: Instant) -> Option<Pending> {
        match self.deadline() {
            Some(deadline) if deadline <= now => {
                self.first = None;
                self.last = None;
                Some(std::mem::take(&mut self.pending))
            }
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const QUIET: Duration = Duration::from_millis(100);
    const MAX: Duration = Duration::from_secs(1);

    fn synced(now: Instant) -> Debounce {
        let mut d = Debounce::new(QUIET, MAX);
        d.mark_synced(now);
        assert!(d.fire(now).is_some(), "first build after sync is immediate");
        d
    }

    #[tokio::test(start_paused = true)]
    async fn fires_after_the_quiet_period() {
        let t0 = Instant::now();
        let mut d = synced(t0);
        assert_eq!(d.deadline(), None, "nothing pending");
        d.change(t0, t0, true);
        assert_eq!(d.fire(t0 + Duration::from_millis(99)), None);
        let p = d.fire(t0 + QUIET).expect("fires at the quiet period");
        assert!(p.compile && !p.status);
        assert_eq!(p.first_arrival, Some(t0));
        assert_eq!(d.deadline(), None, "burst consumed");
    }

    #[tokio::test(start_paused = true)]
    async fn each_change_pushes_the_quiet_period_back() {
        let t0 = Instant::now();
        let mut d = synced(t0);
        d.change(t0, t0, true);
        let t1 = t0 + Duration::from_millis(80);
        d.change(t1, t1, false);
        assert_eq!(
            d.fire(t0 + QUIET),
            None,
            "second change restarted the quiet period"
        );
        let p = d.fire(t1 + QUIET).expect("fires after the last change");
        assert!(p.compile && p.status);
        assert_eq!(
            p.first_arrival,
            Some(t0),
            "propagation measured from the first change"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_continuous_stream_cannot_starve_the_build() {
        let t0 = Instant::now();
        let mut d = synced(t0);
        let mut now = t0;
        let mut fired_at = None;
        // A change every 50 ms, forever shorter than the quiet period.
        for _ in 0..100 {
            d.change(now, now, true);
            now += Duration::from_millis(50);
            if d.fire(now).is_some() {
                fired_at = Some(now);
                break;
            }
        }
        assert_eq!(fired_at, Some(t0 + MAX), "max delay caps the burst");
    }

    #[tokio::test(start_paused = true)]
    async fn nothing_fires_before_initial_sync() {
        let t0 = Instant::now();
        let mut d = Debounce::new(QUIET, MAX);
        d.change(t0, t0, true);
        assert_eq!(d.deadline(), None);
        assert_eq!(d.fire(t0 + Duration::from_secs(60)), None, "gated on sync");
        let t1 = t0 + Duration::from_secs(61);
        d.mark_synced(t1);
        let p = d.fire(t1).expect("fires right after sync");
        assert!(p.compile);
        assert_eq!(
            p.first_arrival,
            Some(t0),
            "changes before sync are not lost"
        );
    }
}
