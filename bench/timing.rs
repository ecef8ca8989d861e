//! A tiny timing harness shared by the `harness = false` benchmarks (no criterion, to keep the
//! dependency tree lean).
//!
//! For each case: calibrate an iteration count so one repetition lasts about `RSWAN_BENCH_MS`
//! milliseconds (default 40), run one warm-up repetition, then `RSWAN_BENCH_REPS` repetitions
//! (default 9) and report the median time per iteration plus the spread (min/max around the
//! median), so a noisy machine shows up as a wide spread instead of a silently wrong number.
#![allow(dead_code)]

use std::hint::black_box;
use std::time::{Duration, Instant};

/// Result of one measured case.
#[derive(Clone, Copy, Debug)]
pub struct Sample {
    /// Median nanoseconds per iteration.
    pub median_ns: f64,
    /// Fastest repetition, ns per iteration.
    pub min_ns: f64,
    /// Slowest repetition, ns per iteration.
    pub max_ns: f64,
}

impl Sample {
    /// Spread of the repetitions as ±% around the median (max of both sides).
    pub fn spread_pct(&self) -> f64 {
        let lo = (self.median_ns - self.min_ns) / self.median_ns;
        let hi = (self.max_ns - self.median_ns) / self.median_ns;
        lo.max(hi) * 100.0
    }
}

/// A positive integer from environment variable `name`, else `default`.
pub fn env_usize(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .filter(|&v| v > 0)
        .unwrap_or(default)
}

/// Repetitions per case (`RSWAN_BENCH_REPS`, default 9).
pub fn reps() -> usize {
    env_usize("RSWAN_BENCH_REPS", 9)
}

/// Target duration of one repetition (`RSWAN_BENCH_MS`, default 40 ms).
pub fn rep_target() -> Duration {
    Duration::from_millis(env_usize("RSWAN_BENCH_MS", 40) as u64)
}

/// Measures `f` (one call = one iteration) and returns the median time per iteration.
pub fn measure<F: FnMut()>(mut f: F) -> Sample {
    let target = rep_target();
    // Calibrate (this doubles as the warm-up): grow the count until a run takes ≥ target/4.
    let mut iters: u64 = 1;
    loop {
        let t = Instant::now();
        for _ in 0..iters {
            f();
        }
        let el = t.elapsed();
        if el >= target / 4 {
            let per = el.as_secs_f64() / iters as f64;
            iters = ((target.as_secs_f64() / per).ceil() as u64).max(1);
            break;
        }
        iters = iters.saturating_mul(if el < target / 64 { 8 } else { 2 });
    }
    // Explicit warm-up repetition at the final count.
    for _ in 0..iters {
        f();
    }
    let mut per_iter: Vec<f64> = (0..reps())
        .map(|_| {
            let t = Instant::now();
            for _ in 0..iters {
                f();
            }
            t.elapsed().as_secs_f64() * 1e9 / iters as f64
        })
        .collect();
    per_iter.sort_by(|a, b| a.partial_cmp(b).unwrap());
    Sample {
        median_ns: per_iter[per_iter.len() / 2],
        min_ns: per_iter[0],
        max_ns: per_iter[per_iter.len() - 1],
    }
}

/// Keeps the optimizer from discarding a value.
pub fn keep<T>(v: T) -> T {
    black_box(v)
}

/// Case filter: the first command-line argument that is not a flag (`cargo bench --bench xform
/// -- gcm` runs only cases whose name contains "gcm", case-insensitively).
pub fn filter() -> Option<String> {
    std::env::args()
        .skip(1)
        .find(|a| !a.starts_with('-'))
        .map(|s| s.to_lowercase())
}

/// Whether a case named `name` passes the filter.
pub fn selected(name: &str) -> bool {
    filter().is_none_or(|f| name.to_lowercase().contains(&f))
}

/// Prints the header lines common to every benchmark: what, when, how.
pub fn preamble(what: &str) {
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split(':').nth(1))
                .map(|m| m.trim().to_string())
        })
        .unwrap_or_else(|| "unknown CPU".into());
    let ncpu = std::thread::available_parallelism().map_or(1, |n| n.get());
    println!("# {what}");
    println!(
        "# cpu: {cpu} ({ncpu} logical), one thread; {} reps × ~{} ms per case, median (spread = max deviation of a rep from the median)",
        reps(),
        rep_target().as_millis()
    );
}
