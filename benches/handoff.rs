//! The floor of a hand-off: how fast any design that keeps the source, `f` and the consumer
//! on three threads can move cheap items (the `tiny` workload: 2,000,000 items of 4 mix
//! rounds, a few ns each), against a sequential `map` in the same run.
//!
//! Contenders:
//! - `seq`: `(0..n).map(f)`.
//! - `ideal`: a pipeline written for this one job, with nothing a library must have: a
//!   feeder thread writes items into a ring of 1,024 atomic slots (the default buffer) and
//!   publishes its count with a release store; one runner thread takes runs of up to 256
//!   (a quarter of the buffer, as a runner on 2 threads does) and writes results into a
//!   second ring; the bench thread reads them in order and publishes its count per item.
//!   Every wait spins (yielding the thread), so it never sleeps nor needs a wake-up: it
//!   burns its cores while it waits, which a library cannot do, and it runs one adapter
//!   and stops. No lock, no read-modify-write per item, no panic or drop handling.
//! - `ideal+fences`: the same with the two `SeqCst` fences per item that lazy-par-map's
//!   protocol needs: the feeder's after each push (so that a runner leaving is seen, and an
//!   item pulled never waits for a later pull) and the consumer's after each item returned
//!   (so that a parked feeder is resumed exactly: a paused consumer finds `c + n` taken).
//! - `skeleton`: what an engine that keeps our contract must do per item, and nothing
//!   else: the pipeline above with both fences, but the runner claims each run with a
//!   compare-and-swap (as one of several would), publishes each run by a stamp in its first
//!   slot (runs of several runners finish out of order, so no single count will do), looks
//!   whether the consumer sleeps once a run (a fence and a load), checks the cancel and
//!   stop flags before each item, runs each run under `catch_unwind`, and the feeder waits
//!   for a refill's worth of free slots (a quarter of the buffer) before it pulls again.
//!   Still no lock, no allocation, no sleep, no laps (only completion order needs them),
//!   and its threads never leave.
//! - `skeleton x2`: the same with two runner threads, as a pool of two threads runs it.
//! - `lpm-default`: `(0..n).lazy_par_map(f)`, default buffer.
//!
//! `cargo bench --bench handoff` (`-- --quick` or `LPM_BENCH_QUICK=1` for a smoke run).
//! Criterion prints its report; a summary follows: ns an item and the ratio to `seq` (its
//! time over the contender's), medians of every timed run (criterion's warm-up included).

mod common;

use criterion::{SamplingMode, Throughput};
use lazy_par_map::prelude::*;
use std::sync::atomic::Ordering::{AcqRel, Acquire, Relaxed, Release, SeqCst};
use std::sync::atomic::{fence, AtomicU64};
use std::time::{Duration, Instant};

/// Slots of the ideal pipeline: the default buffer.
const CAP: u64 = lazy_par_map::DEFAULT_BUFFER as u64;
/// The largest run the ideal runner takes.
const RUN: u64 = CAP / 4;

fn f(x: u64) -> u64 {
    common::mix_rounds(x, 4)
}

/// A counter on a cache line of its own.
#[repr(align(128))]
struct Line(AtomicU64);

/// Waits, yielding the thread, until `ready()`.
fn spin_until(mut ready: impl FnMut() -> bool) {
    while !ready() {
        std::thread::yield_now();
    }
}

/// The feeder of both pipelines: pushes `0..n` into `items`, publishing `pushed` after each
/// item; when the ring is full it waits until `refill` slots are free (the consumer
/// publishes `consumed`). With `watched`, a fence follows each push and then a load of that
/// line: the fence and load the protocol pairs with a runner leaving (the skeleton watches
/// its runners' count; `ideal+fences` loads the runner's line in its place).
fn feed(
    n: u64,
    items: &[AtomicU64],
    pushed: &Line,
    consumed: &Line,
    refill: u64,
    watched: Option<&Line>,
) {
    let mut free = 0;
    for i in 0..n {
        if free == 0 {
            spin_until(|| {
                free = CAP - (i - consumed.0.load(Acquire));
                free >= refill.min(n - i)
            });
        }
        items[(i % CAP) as usize].store(i, Relaxed);
        free -= 1;
        pushed.0.store(i + 1, Release);
        if let Some(watched) = watched {
            fence(SeqCst);
            std::hint::black_box(watched.0.load(Relaxed));
        }
    }
}

/// The ideal pipeline over `0..n`, with the protocol's two fences per item if `fences`.
fn ideal(n: u64, fences: bool) -> u64 {
    let slots = |_| AtomicU64::new(0);
    let (items, results): (Vec<AtomicU64>, Vec<AtomicU64>) =
        ((0..CAP).map(slots).collect(), (0..CAP).map(slots).collect());
    let (pushed, done, consumed) = (
        Line(AtomicU64::new(0)),
        Line(AtomicU64::new(0)),
        Line(AtomicU64::new(0)),
    );
    let at = |i: u64| (i % CAP) as usize;
    std::thread::scope(|s| {
        s.spawn(|| feed(n, &items, &pushed, &consumed, 1, fences.then_some(&done)));
        s.spawn(|| {
            let mut start = 0;
            while start < n {
                let mut end = 0;
                spin_until(|| {
                    end = pushed.0.load(Acquire).min(start + RUN);
                    end > start
                });
                for i in start..end {
                    let result = f(items[at(i)].load(Relaxed));
                    results[at(i)].store(result, Relaxed);
                }
                done.0.store(end, Release);
                start = end;
            }
        });
        let mut check = 0u64;
        let mut ready = 0;
        for i in 0..n {
            if i == ready {
                spin_until(|| {
                    ready = done.0.load(Acquire);
                    ready > i
                });
            }
            check = check.wrapping_add(results[at(i)].load(Relaxed));
            consumed.0.store(i + 1, Release);
            if fences {
                fence(SeqCst);
                std::hint::black_box(pushed.0.load(Relaxed));
            }
        }
        check
    })
}

/// The contract's skeleton over `0..n` with `runners` runner threads (module doc).
fn skeleton(n: u64, runners: usize) -> u64 {
    let slots = |_| AtomicU64::new(0);
    let items: Vec<AtomicU64> = (0..CAP).map(slots).collect();
    let results: Vec<AtomicU64> = (0..CAP).map(slots).collect();
    // The end of the run that starts at a slot: a run's results are ready once it is past
    // the run's start (a stamp from an earlier lap is not).
    let ends: Vec<AtomicU64> = (0..CAP).map(slots).collect();
    let (pushed, claimed, consumed) = (
        Line(AtomicU64::new(0)),
        Line(AtomicU64::new(0)),
        Line(AtomicU64::new(0)),
    );
    // Read-mostly lines: the running count (read by the feeder after each item), whether
    // the consumer sleeps (read by a runner after each run), the cancel and stop flags.
    let (running, sleeps, cancelled, stop_at) = (
        Line(AtomicU64::new(runners as u64)),
        Line(AtomicU64::new(0)),
        Line(AtomicU64::new(0)),
        Line(AtomicU64::new(u64::MAX)),
    );
    let at = |i: u64| (i % CAP) as usize;
    std::thread::scope(|s| {
        s.spawn(|| feed(n, &items, &pushed, &consumed, RUN, Some(&running)));
        for _ in 0..runners {
            s.spawn(|| {
                let mut start = claimed.0.load(Acquire);
                while start < n {
                    let available = pushed.0.load(Acquire);
                    if available <= start {
                        std::thread::yield_now();
                        start = claimed.0.load(Acquire);
                        continue;
                    }
                    let end = available.min(start + RUN);
                    if let Err(now) = claimed.0.compare_exchange(start, end, AcqRel, Acquire) {
                        start = now;
                        continue;
                    }
                    let run = || {
                        for i in start..end {
                            let item = items[at(i)].load(Relaxed);
                            if cancelled.0.load(Relaxed) != 0 || i > stop_at.0.load(Relaxed) {
                                continue;
                            }
                            results[at(i)].store(f(item), Relaxed);
                        }
                    };
                    let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(run));
                    ends[at(start)].store(end, Release);
                    fence(SeqCst);
                    std::hint::black_box(sleeps.0.load(Relaxed));
                    start = claimed.0.load(Acquire);
                }
            });
        }
        let mut check = 0u64;
        let mut ready = 0;
        for i in 0..n {
            if i == ready {
                spin_until(|| {
                    let end = ends[at(i)].load(Acquire);
                    ready = end;
                    end > i && end <= i + CAP
                });
            }
            check = check.wrapping_add(results[at(i)].load(Relaxed));
            consumed.0.store(i + 1, Release);
            fence(SeqCst);
            std::hint::black_box(pushed.0.load(Relaxed));
        }
        check
    })
}

fn main() {
    let mut c = common::criterion();
    let n = common::scaled(2_000_000, 10_000);
    let expected = (0..n).map(f).fold(0, u64::wrapping_add);
    let contenders: [(&str, &dyn Fn() -> u64); 6] = [
        ("seq", &|| (0..n).map(f).fold(0, u64::wrapping_add)),
        ("ideal", &|| ideal(n, false)),
        ("ideal+fences", &|| ideal(n, true)),
        ("skeleton", &|| skeleton(n, 1)),
        ("skeleton x2", &|| skeleton(n, 2)),
        ("lpm-default", &|| {
            (0..n).lazy_par_map(f).fold(0, u64::wrapping_add)
        }),
    ];
    let mut group = c.benchmark_group("handoff");
    group
        .throughput(Throughput::Elements(n))
        .sample_size(10)
        .sampling_mode(SamplingMode::Flat)
        .warm_up_time(Duration::from_millis(300))
        .measurement_time(Duration::from_secs(2));
    let mut medians = Vec::new();
    for (name, run) in contenders {
        let mut samples = Vec::new();
        group.bench_function(name, |b| {
            b.iter_custom(|iters| {
                let mut total = Duration::ZERO;
                for _ in 0..iters {
                    let started = Instant::now();
                    let check = run();
                    let took = started.elapsed();
                    assert_eq!(check, expected, "{name} got a wrong result");
                    samples.push(took);
                    total += took;
                }
                total
            })
        });
        medians.push((name, common::median(&samples)));
    }
    group.finish();
    c.final_summary();
    let seq = medians[0].1;
    println!("\nhandoff: {n} items of a few ns, buffer {CAP} (medians of every run)");
    for (name, median) in medians {
        println!(
            "  {name:<13} {:6.2} ns an item  {:.2}x seq",
            median.as_nanos() as f64 / n as f64,
            seq.as_secs_f64() / median.as_secs_f64(),
        );
    }
}
