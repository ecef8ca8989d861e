//! A rate limiter for log lines caused by input nobody has authenticated: token buckets per
//! source and in total, a bounded table of sources, and a periodic summary of what it
//! suppressed ("N similar messages suppressed"). Sans-IO: time goes in as milliseconds (any
//! monotonic origin). Pluto keys it by the packet's source address; the shell can use it for
//! its own lines about unsolicited packets.
//!
//! Each bucket holds up to `burst` lines and earns one more every `interval_ms`; a line is
//! emitted only if its source's bucket and the total bucket both have one. Credit is kept as
//! milliseconds (`burst * interval_ms` when full), so the arithmetic is exact integers.
//!
//! The table of sources is bounded (`max_sources`). When it is full, sources whose bucket has
//! refilled completely (nothing to remember) are forgotten, at most once per source interval;
//! sources that still find no room share one overflow bucket, so a flood from ever new
//! (spoofed) addresses gets one source's budget plus the total, never more.

use std::collections::HashMap;
use std::hash::Hash;

/// A bucket's shape: `burst` lines at once, then one more every `interval_ms`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rate {
    /// Lines allowed back to back when the bucket is full.
    pub burst: u32,
    /// Milliseconds to earn one more line.
    pub interval_ms: u64,
}

impl Rate {
    fn capacity(self) -> u64 {
        u64::from(self.burst).saturating_mul(self.interval_ms)
    }
}

/// The limits of a [`RateLimiter`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Per source.
    pub per_source: Rate,
    /// All sources together.
    pub total: Rate,
    /// Most sources remembered at once.
    pub max_sources: usize,
    /// A summary of suppressed lines is due this long after the first line it covers.
    pub summary_ms: u64,
}

#[derive(Debug, Clone, Copy)]
struct Bucket {
    /// Credit in milliseconds (one line costs `interval_ms`).
    credit: u64,
    /// When `credit` was last brought up to date.
    at: u64,
    /// Lines suppressed since the last summary.
    suppressed: u64,
}

impl Bucket {
    fn full(rate: Rate, now: u64) -> Bucket {
        Bucket {
            credit: rate.capacity(),
            at: now,
            suppressed: 0,
        }
    }

    fn refill(&mut self, rate: Rate, now: u64) {
        let earned = now.saturating_sub(self.at);
        self.credit = self.credit.saturating_add(earned).min(rate.capacity());
        self.at = self.at.max(now);
    }

    fn has_line(&self, rate: Rate) -> bool {
        self.credit >= rate.interval_ms
    }

    fn take(&mut self, rate: Rate) {
        self.credit = self.credit.saturating_sub(rate.interval_ms);
    }

    /// Whether the bucket would be full at `now` and has nothing to report.
    fn idle(&self, rate: Rate, now: u64) -> bool {
        self.suppressed == 0
            && self.credit.saturating_add(now.saturating_sub(self.at)) >= rate.capacity()
    }
}

/// What a [`RateLimiter`] suppressed during one summary period.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Summary<K> {
    /// Lines suppressed.
    pub suppressed: u64,
    /// Milliseconds the period lasted (from the first suppressed line).
    pub period_ms: u64,
    /// Sources with suppressed lines (the overflow bucket counts as one).
    pub sources: usize,
    /// The source with the most suppressed lines and their number (`None`: the overflow
    /// bucket of sources the table had no room for).
    pub top: (Option<K>, u64),
}

/// Token buckets per source and in total; see the [module docs](self).
#[derive(Debug, Clone)]
pub struct RateLimiter<K> {
    limits: Limits,
    sources: HashMap<K, Bucket>,
    overflow: Bucket,
    total: Bucket,
    /// Lines suppressed since the last summary, and when the first of them was.
    pending: u64,
    pending_since: Option<u64>,
    /// Lines suppressed ever.
    suppressed_ever: u64,
    last_prune: Option<u64>,
}

impl<K: Eq + Hash + Clone> RateLimiter<K> {
    /// An empty limiter (every bucket starts full).
    pub fn new(limits: Limits) -> RateLimiter<K> {
        RateLimiter {
            limits,
            sources: HashMap::new(),
            overflow: Bucket::full(limits.per_source, 0),
            total: Bucket::full(limits.total, 0),
            pending: 0,
            pending_since: None,
            suppressed_ever: 0,
            last_prune: None,
        }
    }

    /// The limits.
    pub fn limits(&self) -> Limits {
        self.limits
    }

    /// Whether a line caused by `source` may be emitted at `now_ms`; `false` counts it as
    /// suppressed (for the next [`RateLimiter::summary`]).
    pub fn allow(&mut self, now_ms: u64, source: &K) -> bool {
        let per = self.limits.per_source;
        if !self.sources.contains_key(source) && self.sources.len() >= self.limits.max_sources {
            self.prune(now_ms);
        }
        let tracked =
            self.sources.contains_key(source) || self.sources.len() < self.limits.max_sources;
        let bucket = if tracked {
            self.sources
                .entry(source.clone())
                .or_insert_with(|| Bucket::full(per, now_ms))
        } else {
            &mut self.overflow
        };
        bucket.refill(per, now_ms);
        self.total.refill(self.limits.total, now_ms);
        if bucket.has_line(per) && self.total.has_line(self.limits.total) {
            bucket.take(per);
            self.total.take(self.limits.total);
            return true;
        }
        bucket.suppressed = bucket.suppressed.saturating_add(1);
        self.pending = self.pending.saturating_add(1);
        self.suppressed_ever = self.suppressed_ever.saturating_add(1);
        self.pending_since.get_or_insert(now_ms);
        false
    }

    /// Forgets sources that have nothing left to limit or report (at most once per
    /// per-source interval, so a flood from new sources does not scan the table per line).
    fn prune(&mut self, now_ms: u64) {
        let due = self
            .last_prune
            .is_none_or(|t| now_ms.saturating_sub(t) >= self.limits.per_source.interval_ms);
        if !due {
            return;
        }
        self.last_prune = Some(now_ms);
        let per = self.limits.per_source;
        self.sources.retain(|_, b| !b.idle(per, now_ms));
    }

    /// When the next summary is due, if anything was suppressed.
    pub fn summary_due(&self) -> Option<u64> {
        self.pending_since
            .map(|t| t.saturating_add(self.limits.summary_ms))
    }

    /// The summary of the period that ended, if one is due at `now_ms`; starts a new period.
    pub fn summary(&mut self, now_ms: u64) -> Option<Summary<K>> {
        let since = self.pending_since?;
        if now_ms < since.saturating_add(self.limits.summary_ms) {
            return None;
        }
        let mut sources = 0;
        let mut top: (Option<K>, u64) = (None, self.overflow.suppressed);
        if self.overflow.suppressed > 0 {
            sources += 1;
        }
        for (k, b) in &mut self.sources {
            if b.suppressed > 0 {
                sources += 1;
                if b.suppressed > top.1 {
                    top = (Some(k.clone()), b.suppressed);
                }
                b.suppressed = 0;
            }
        }
        self.overflow.suppressed = 0;
        let s = Summary {
            suppressed: self.pending,
            period_ms: now_ms.saturating_sub(since),
            sources,
            top,
        };
        self.pending = 0;
        self.pending_since = None;
        Some(s)
    }

    /// Lines suppressed since the limiter was made.
    pub fn suppressed_total(&self) -> u64 {
        self.suppressed_ever
    }

    /// Sources remembered now (at most `max_sources`).
    pub fn tracked_sources(&self) -> usize {
        self.sources.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits() -> Limits {
        Limits {
            per_source: Rate {
                burst: 3,
                interval_ms: 1000,
            },
            total: Rate {
                burst: 10,
                interval_ms: 100,
            },
            max_sources: 4,
            summary_ms: 5000,
        }
    }

    #[test]
    fn burst_then_one_per_interval() {
        let mut r = RateLimiter::new(limits());
        let allowed = (0..10).filter(|_| r.allow(0, &1u32)).count();
        assert_eq!(allowed, 3);
        assert!(!r.allow(999, &1));
        assert!(r.allow(1000, &1));
        assert!(!r.allow(1000, &1));
        // A long quiet spell refills to the burst, not beyond.
        let allowed = (0..10).filter(|_| r.allow(60_000, &1)).count();
        assert_eq!(allowed, 3);
        assert_eq!(r.suppressed_total(), 7 + 1 + 1 + 7);
    }

    #[test]
    fn total_caps_many_sources() {
        let mut r = RateLimiter::new(Limits {
            max_sources: 1000,
            ..limits()
        });
        let allowed = (0..500u32).filter(|i| r.allow(0, i)).count();
        assert_eq!(allowed, 10, "the total burst");
        // The total earns one line per 100 ms.
        let allowed = (500..600u32).filter(|i| r.allow(250, i)).count();
        assert_eq!(allowed, 2);
    }

    #[test]
    fn table_is_bounded_and_new_sources_share_the_overflow_bucket() {
        let mut r = RateLimiter::new(Limits {
            total: Rate {
                burst: 1000,
                interval_ms: 1,
            },
            ..limits()
        });
        let allowed = (0..1000u32).filter(|i| r.allow(0, i)).count();
        assert!(r.tracked_sources() <= 4);
        // 4 tracked sources with 1 line each, then everyone else shares one bucket of 3.
        assert_eq!(allowed, 4 + 3);
        // Once the tracked sources have refilled they are forgotten, making room.
        assert!(r.allow(10_000, &5000));
        assert!(r.tracked_sources() <= 4);
    }

    #[test]
    fn summary_after_the_period_names_the_top_source() {
        let mut r = RateLimiter::new(limits());
        assert_eq!(r.summary_due(), None);
        for _ in 0..10 {
            r.allow(100, &7u32);
        }
        for _ in 0..5 {
            r.allow(200, &8u32);
        }
        assert_eq!(r.summary_due(), Some(5100));
        assert_eq!(r.summary(5099), None);
        let s = r.summary(5100).unwrap();
        assert_eq!(
            s,
            Summary {
                suppressed: 7 + 2,
                period_ms: 5000,
                sources: 2,
                top: (Some(7), 7),
            }
        );
        assert_eq!(r.summary_due(), None);
        assert_eq!(r.summary(20_000), None);
    }
}
