//! Throughput: the same items through `seq`, `lazy_par_map` (default and tuned buffer),
//! `pariter`, rayon's `par_bridge` and a naive ordered pipeline, on workloads from a few
//! nanoseconds to a millisecond per item.
//!
//! `cargo bench --bench throughput` (add `-- --quick` or `LPM_BENCH_QUICK=1` for a smoke
//! run). Criterion prints its usual report per group; a summary follows (items/s, speedup
//! over `seq`, efficiency = (seq time / threads) / time) and is merged into
//! `target/bench-summary.jsonl`, which `scripts/bench-table` turns into the README's table.

mod common;

use common::{Contender, Ideal, Job, PoolSpec, Summary, Workload};
use std::time::Duration;

fn main() {
    let mut c = common::criterion();
    let mut summary = Summary::new("throughput");

    // tiny: a few ns per item; measures pure overhead per item.
    let n = common::scaled(2_000_000, 10_000);
    common::measure(
        &mut c,
        &mut summary,
        &Workload::new("tiny", n, Ideal::SeqOverThreads).note("4 mix rounds"),
        &Job::new(move || 0..n, |x| common::mix_rounds(x, 4)),
        &Contender::ALL,
    );

    // small: ~0.5 µs of arithmetic per item.
    let rounds = common::calibrate_rounds(Duration::from_nanos(500));
    let n = common::scaled(200_000, 1_000);
    common::measure(
        &mut c,
        &mut summary,
        &Workload::new("small", n, Ideal::SeqOverThreads)
            .note(format!("{rounds} mix rounds ~ 0.5 us")),
        &Job::new(move || 0..n, move |x| common::mix_rounds(x, rounds)),
        &Contender::ALL,
    );

    // spin10us / spin1ms: busy loops, ~0.5 s sequentially.
    for (name, d, n) in [
        ("spin10us", Duration::from_micros(10), 50_000),
        ("spin1ms", Duration::from_millis(1), 500),
    ] {
        let n = common::scaled(n, 20);
        common::measure(
            &mut c,
            &mut summary,
            &Workload::new(name, n, Ideal::SeqOverThreads).measurement(Duration::from_secs(3)),
            &Job::new(move || 0..n, move |x| common::spin(x, d)),
            &Contender::ALL,
        );
    }

    // sleep1ms: blocking `f` on a 64-thread pool.
    let n = common::scaled(2_000, 100);
    let mut job = Job::new(move || 0..n, |x| common::nap(x, Duration::from_millis(1)));
    job.pool = PoolSpec::custom(64);
    common::measure(
        &mut c,
        &mut summary,
        &Workload::new("sleep1ms", n, Ideal::SeqOverThreads)
            .measurement(Duration::from_secs(1))
            .note("custom pool of 64"),
        &job,
        &Contender::ALL,
    );

    c.final_summary();
    summary.finish();
}
