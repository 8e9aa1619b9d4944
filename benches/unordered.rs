//! Unordered gain: what `.unordered()` buys when `f`'s cost varies a lot by item.
//!
//! `uneven`: `f` busy-spins 2 ms for one item in 16 (every index that is a multiple of 16)
//! and 20 µs for the others, over 2,000 items, on rayon's global pool (~0.29 s
//! sequentially). Contenders: `seq`, `lpm-default` (ordered, default buffer),
//! `lpm-unordered` (`.unordered()`, default buffer), `lpm-small-buffer` (ordered,
//! `.buffer(4 * threads)`), `lpm-small-unordered` (`.buffer(4 * threads).unordered()`)
//! and `par_bridge`. With the small buffer the ordered adapter stalls behind each slow item
//! (head-of-line blocking: at most `4 * threads` items may be taken ahead of the one it
//! waits for), while the unordered one hands out the finished fast items and keeps going.
//! Unordered contenders are checked by count and sum, the ordered ones exactly.
//!
//! `cargo bench --bench unordered` (`LPM_BENCH_QUICK=1` and/or `-- --quick` for a smoke
//! run). The summary (speedup over `seq`, efficiency = (seq time / threads) / time) is
//! merged into `target/bench-summary.jsonl`, which `scripts/bench-table` turns into the
//! README's "Unordered" table.

mod common;

use common::{Contender, Ideal, Job, Summary, Workload};
use std::time::Duration;

/// One item in `SLOW_EVERY` is slow.
const SLOW_EVERY: u64 = 16;
const SLOW: Duration = Duration::from_millis(2);
const FAST: Duration = Duration::from_micros(20);

fn uneven(x: u64) -> u64 {
    common::spin(x, if x % SLOW_EVERY == 0 { SLOW } else { FAST })
}

fn main() {
    let mut c = common::criterion();
    let mut summary = Summary::new("unordered");

    let n = common::scaled(2_000, 200);
    let threads = rayon::current_num_threads();
    common::measure(
        &mut c,
        &mut summary,
        &Workload::new("uneven", n, Ideal::SeqOverThreads)
            .measurement(Duration::from_secs(3))
            .note(format!(
                "1 in {SLOW_EVERY} spins 2 ms, others 20 us; small buffer = {}",
                Contender::small_buffer(threads)
            )),
        &Job::new(move || 0..n, uneven),
        &[
            Contender::Seq,
            Contender::LpmDefault,
            Contender::LpmUnordered,
            Contender::LpmSmall,
            Contender::LpmSmallUnordered,
            Contender::ParBridge,
        ],
    );

    c.final_summary();
    summary.finish();
}
