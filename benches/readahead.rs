//! Readahead: a source read ahead on a background thread, against pariter's `readahead`,
//! our own `lazy_par_map(|x| x)` (the same reading ahead through the pool) and a plain loop.
//!
//! - `slowpair`: the source sleeps 5 ms per item and so does the consumer, 40 items: 0.4 s
//!   sequentially, ideally 0.2 s once the two overlap (plus one item's 5 ms).
//! - `cheapsrc`: the source is `0..n`, the consumer sums: the cost of the hand-off, in
//!   items per second.
//!
//! Every contender reads ahead by the same 8 items (pariter: a channel of 8).
//! `cargo bench --bench readahead`; the summary is merged into `target/bench-summary.jsonl`.

mod common;

use common::{Ideal, Row, Summary};
use criterion::{Criterion, SamplingMode, Throughput};
use lazy_par_map::prelude::*;
use std::time::{Duration, Instant};

const AHEAD: usize = 8;

/// The contenders, each consuming `source` with `consume` and returning a checksum.
const CONTENDERS: [&str; 4] = ["seq", "lpm-readahead", "lpm-map-identity", "pariter"];

fn run<I>(contender: &str, source: I, consume: &dyn Fn(u64) -> u64) -> u64
where
    I: Iterator<Item = u64> + Send + 'static,
{
    match contender {
        "seq" => source.map(consume).fold(0, u64::wrapping_add),
        "lpm-readahead" => source
            .readahead(AHEAD)
            .map(consume)
            .fold(0, u64::wrapping_add),
        "lpm-map-identity" => source
            .lazy_par_map(|x| x)
            .buffer(AHEAD)
            .map(consume)
            .fold(0, u64::wrapping_add),
        "pariter" => pariter::IteratorExt::readahead_custom(source, |b| b.buffer_size(AHEAD))
            .map(consume)
            .fold(0, u64::wrapping_add),
        other => unreachable!("no contender {other}"),
    }
}

fn workload<S, I>(
    c: &mut Criterion,
    summary: &mut Summary,
    name: &'static str,
    items: u64,
    ideal: Ideal,
    source: S,
    consume: &dyn Fn(u64) -> u64,
) where
    S: Fn() -> I,
    I: Iterator<Item = u64> + Send + 'static,
{
    let mut group = c.benchmark_group(name);
    group
        .throughput(Throughput::Elements(items))
        .sample_size(10)
        .sampling_mode(SamplingMode::Flat)
        .warm_up_time(Duration::from_millis(200))
        .measurement_time(Duration::from_secs(2));
    let want = run("seq", source(), consume);
    for contender in CONTENDERS {
        let mut samples = Vec::new();
        let mut wrong = 0;
        group.bench_function(contender, |b| {
            b.iter_custom(|iters| {
                let mut total = Duration::ZERO;
                for _ in 0..iters {
                    let started = Instant::now();
                    let got = run(contender, source(), consume);
                    let took = started.elapsed();
                    wrong += u64::from(got != want);
                    samples.push(took);
                    total += took;
                }
                total
            })
        });
        if samples.is_empty() {
            continue; // filtered out on the command line
        }
        summary.rows.push(Row {
            workload: name,
            contender,
            items,
            threads: 1,
            ideal,
            samples,
            max_drop: Duration::ZERO,
            wrong,
            note: format!("{AHEAD} ahead"),
        });
    }
    group.finish();
}

fn main() {
    let mut c = common::criterion();
    let mut summary = Summary::new("readahead");

    let n = common::scaled(40, 4);
    let nap = Duration::from_millis(5);
    workload(
        &mut c,
        &mut summary,
        "slowpair",
        n,
        Ideal::Fixed(nap * (n as u32 + 1)),
        move || (0..n).inspect(move |_| std::thread::sleep(nap)),
        &move |x| {
            std::thread::sleep(nap);
            x
        },
    );

    let n = common::scaled(2_000_000, 1_000);
    workload(
        &mut c,
        &mut summary,
        "cheapsrc",
        n,
        Ideal::SeqOverThreads,
        move || 0..n,
        &|x| x,
    );

    c.final_summary();
    summary.finish();
}
