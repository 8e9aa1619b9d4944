//! What the benches share: the contenders, the workloads' closures, a watchdog, and the
//! summary (a table on stdout and JSON lines under `target/`).
//!
//! Every contender maps the same items with the same `f`, and every output is folded into
//! a [`Check`]: ordered contenders must match `seq`'s exactly, unordered ones (`par_bridge`,
//! `lpm-unordered`, `lpm-small-unordered`) must match its count and sum. A mismatch is
//! printed at once and makes the bench exit 1 after the summary is written.
// Each bench binary uses a subset of this module and its re-exports.
#![allow(dead_code, unused_imports)]

mod contenders;
mod measure;
mod summary;

pub use contenders::{build_pool, naive, run, Contender, Job, Outcome, PoolSpec, TUNED_BUFFER};
pub use measure::{measure, Ideal, Watchdog, Workload};
pub use summary::{
    fmt_duration, fmt_rate, json_line, json_str_field, machine, median, merge_json_lines, min_ns,
    target_dir, unix_time, write_summary, Json, Row, Summary,
};

use criterion::Criterion;
use std::hint::black_box;
use std::time::{Duration, Instant};

// ---------------------------------------------------------------------------------------
// Run modes and sizes
// ---------------------------------------------------------------------------------------

/// `LPM_BENCH_QUICK=1`: smaller inputs, for a smoke run.
pub fn quick() -> bool {
    std::env::var("LPM_BENCH_QUICK").is_ok_and(|v| !v.is_empty() && v != "0")
}

/// `cargo bench` passes `--bench`; `cargo test --benches` does not. In test mode the
/// benches run small inputs once and write no JSON.
pub fn test_mode() -> bool {
    !std::env::args().any(|a| a == "--bench")
}

/// `n` in a full run, `n / 10` (at least `min`) in a quick run or test mode.
pub fn scaled(n: u64, min: u64) -> u64 {
    if quick() || test_mode() {
        (n / 10).max(min)
    } else {
        n
    }
}

/// Criterion with this suite's defaults; the command line (`--quick`, a filter, ...) wins.
pub fn criterion() -> Criterion {
    Criterion::default()
        .sample_size(10)
        .warm_up_time(Duration::from_millis(300))
        .measurement_time(Duration::from_secs(2))
        .nresamples(10_000)
        .configure_from_args()
}

// ---------------------------------------------------------------------------------------
// The work
// ---------------------------------------------------------------------------------------

/// One round of a 64-bit mix (splitmix64's finaliser step).
#[inline]
pub fn mix(x: u64) -> u64 {
    let x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    (x ^ (x >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb) ^ (x >> 31)
}

/// `rounds` rounds of [`mix`]; `black_box` keeps the compiler from folding them away.
#[inline]
pub fn mix_rounds(x: u64, rounds: u32) -> u64 {
    let mut h = black_box(x);
    for _ in 0..rounds {
        h = mix(h);
    }
    h
}

/// Busy-waits `d` of wall time (calibrated by `Instant`, so preemption counts), then mixes.
pub fn spin(x: u64, d: Duration) -> u64 {
    let start = Instant::now();
    while start.elapsed() < d {
        std::hint::spin_loop();
    }
    mix(x)
}

/// Sleeps `d`, then mixes.
pub fn nap(x: u64, d: Duration) -> u64 {
    std::thread::sleep(d);
    mix(x)
}

/// How many rounds of [`mix_rounds`] take about `target` on this machine: the best of a
/// few trials, so that load from other processes does not shrink the workload.
pub fn calibrate_rounds(target: Duration) -> u32 {
    const PROBE: u32 = 100_000;
    let best = (0..7)
        .map(|i| {
            let start = Instant::now();
            black_box(mix_rounds(i, PROBE));
            start.elapsed()
        })
        .min()
        .expect("at least one trial");
    let per_round = best.as_secs_f64() / f64::from(PROBE);
    ((target.as_secs_f64() / per_round).round() as u32).max(1)
}

// ---------------------------------------------------------------------------------------
// Outputs and their checks
// ---------------------------------------------------------------------------------------

/// A fold of every output: count, an order-sensitive hash and an order-free sum.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Check {
    pub count: u64,
    pub ordered: u64,
    pub sum: u64,
}

impl Check {
    #[inline]
    pub fn add(mut self, x: u64) -> Self {
        self.count += 1;
        self.ordered = (self.ordered ^ x).wrapping_mul(0x0000_0100_0000_01b3);
        self.sum = self.sum.wrapping_add(x);
        self
    }

    /// Whether `self` is a correct output given `seq`'s: exact if `ordered`, else the same
    /// multiset (as far as count and sum tell).
    pub fn agrees(&self, seq: &Check, ordered: bool) -> bool {
        if ordered {
            self == seq
        } else {
            self.count == seq.count && self.sum == seq.sum
        }
    }
}

/// The numbers a bench's child process printed on its standard output, once it has
/// exited successfully (`what` names the case in the panic message otherwise).
pub fn child_numbers(out: &std::process::Output, what: &str) -> Vec<u64> {
    assert!(
        out.status.success(),
        "{what} failed: {}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .map(|x| x.parse().expect("a number"))
        .collect()
}
