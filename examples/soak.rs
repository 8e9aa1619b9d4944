//! Soak: 100,000,000 items through a three-stage pipeline of cheap `f`s, default buffers,
//! reporting the resident set size and the thread count every 10 million items and at the
//! end. With `--adapters K`, K such pipelines (3K adapters) run at once, pipeline `j`
//! mapping items `j, j + K, j + 2K, …`, consumed round-robin one item at a time, so that
//! the items still come out in order.
//!
//! ```text
//! cargo run --release --example soak [ITEMS] [--adapters K]
//! cargo run --release --example soak -- 100000000 --adapters 64
//! ```
//!
//! What to look for: RSS and threads flat after the first report (the bound holds memory to
//! a few buffers' worth of items per adapter, whatever the count), throughput steady. Each
//! item carries its index, so the consumer checks the order of every item; the checksum is
//! compared with the sequential one afterwards, outside the timing.

use lazy_par_map::prelude::*;
use std::time::Instant;

/// Cheap, distinct stages: a hash, a fold of its halves, a rotate-and-mix.
fn hash(x: u64) -> u64 {
    let x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x ^ (x >> 27)
}
fn fold(x: u64) -> u64 {
    (x >> 32) ^ (x & 0xffff_ffff).wrapping_mul(0x94d0_49bb)
}
fn mix(x: u64) -> u64 {
    x.rotate_left(17).wrapping_add(0x9e37_79b9_7f4a_7c15)
}

/// The process's resident set size, from `/proc/self/status` (Linux), in KiB.
fn rss_kib() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|line| line.starts_with("VmRSS:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

/// The process's thread count, from `/proc/self/status` (Linux).
fn threads() -> String {
    let status = std::fs::read_to_string("/proc/self/status").ok();
    let line = status
        .as_deref()
        .and_then(|s| s.lines().find(|l| l.starts_with("Threads:")));
    line.and_then(|l| l.split_whitespace().nth(1))
        .unwrap_or("n/a")
        .to_owned()
}

fn rss() -> String {
    rss_kib().map_or_else(
        || "n/a".into(),
        |kib| format!("{:.1} MiB", kib as f64 / 1024.0),
    )
}

/// The three stages over `source`.
fn pipeline(
    source: impl Iterator<Item = u64> + Send + 'static,
) -> impl Iterator<Item = (u64, u64)> {
    source
        .lazy_par_map(|i| (i, hash(i)))
        .lazy_par_map(|(i, x)| (i, fold(x)))
        .lazy_par_map(|(i, x)| (i, mix(x)))
}

/// Takes every item of `out`, checking the order and reporting every `every` items;
/// returns the count and the checksum.
fn consume(out: impl Iterator<Item = (u64, u64)>, every: u64, started: Instant) -> (u64, u64) {
    let mut last = (started, 0u64);
    let mut sum = 0u64;
    let mut count = 0u64;
    for (index, value) in out {
        assert_eq!(index, count, "out of order");
        sum = sum.wrapping_add(value);
        count += 1;
        if count % every == 0 {
            let now = Instant::now();
            let rate = (count - last.1) as f64 / (now - last.0).as_secs_f64();
            println!(
                "{count:>12} items  {:>8.1} s  RSS {:>10}  threads {:>5}  {:>6.2} M items/s",
                (now - started).as_secs_f64(),
                rss(),
                threads(),
                rate / 1e6
            );
            last = (now, count);
        }
    }
    (count, sum)
}

fn usage() -> ! {
    eprintln!("usage: soak [ITEMS] [--adapters K]  (numbers; default 100000000 items, 1 pipeline)");
    std::process::exit(2);
}

fn main() {
    let (mut items, mut pipelines) = (100_000_000u64, 1u64);
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let number = |arg: Option<String>| -> u64 {
            arg.and_then(|a| a.parse().ok()).unwrap_or_else(|| usage())
        };
        if arg == "--adapters" {
            pipelines = number(args.next()).max(1);
        } else {
            items = number(Some(arg));
        }
    }
    let every = (items / 10).max(1);
    if pipelines == 1 {
        println!(
            "soak: {items} items, 3 stages, buffer {} each, {} rayon threads; RSS at start {}",
            lazy_par_map::DEFAULT_BUFFER,
            rayon::current_num_threads(),
            rss()
        );
    } else {
        println!(
            "soak: {items} items, {pipelines} pipelines of 3 stages ({} adapters at once), \
             buffer {} each, {} rayon threads; RSS at start {}, threads {}",
            3 * pipelines,
            lazy_par_map::DEFAULT_BUFFER,
            rayon::current_num_threads(),
            rss(),
            threads()
        );
    }
    let started = Instant::now();
    let (count, sum) = if pipelines == 1 {
        consume(pipeline(0..items), every, started)
    } else {
        // `pipelines` of them taken in turn: pipeline `j` holds items `j, j + K, …`.
        let mut all: Vec<_> = (0..pipelines)
            .map(|j| pipeline((j..items).step_by(pipelines as usize)))
            .collect();
        let mut turn = 0;
        let in_turn = std::iter::from_fn(move || {
            let item = all[turn].next();
            turn = (turn + 1) % all.len();
            item
        });
        consume(in_turn, every, started)
    };
    let elapsed = started.elapsed();
    assert_eq!(count, items, "items lost");
    let expected = (0..items).fold(0u64, |sum, i| sum.wrapping_add(mix(fold(hash(i)))));
    assert_eq!(sum, expected, "checksum differs from the sequential result");
    println!(
        "done: {count} items in {:.1} s, {:.2} M items/s overall, RSS at end {}, threads {}, \
         checksum ok",
        elapsed.as_secs_f64(),
        count as f64 / elapsed.as_secs_f64() / 1e6,
        rss(),
        threads()
    );
}
