//! Soak: 100,000,000 items through a three-stage pipeline of cheap `f`s, default buffers,
//! reporting the resident set size every 10 million items and at the end.
//!
//! ```text
//! cargo run --release --example soak [ITEMS]
//! ```
//!
//! What to look for: RSS flat after the first report (the bound holds memory to a few
//! buffers' worth of items, whatever the count), throughput steady. Each item carries its
//! index, so the consumer checks the order of every item; the checksum is compared with
//! the sequential one afterwards, outside the timing.

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

fn rss() -> String {
    rss_kib().map_or_else(
        || "n/a".into(),
        |kib| format!("{:.1} MiB", kib as f64 / 1024.0),
    )
}

fn main() {
    let items: u64 = match std::env::args().nth(1) {
        Some(arg) => arg.parse().unwrap_or_else(|_| {
            eprintln!("usage: soak [ITEMS]  (ITEMS must be a number; default 100000000)");
            std::process::exit(2);
        }),
        None => 100_000_000,
    };
    let every = (items / 10).max(1);
    println!(
        "soak: {items} items, 3 stages, buffer {} each, {} rayon threads; RSS at start {}",
        lazy_par_map::DEFAULT_BUFFER,
        rayon::current_num_threads(),
        rss()
    );
    let started = Instant::now();
    let mut last = (started, 0u64);
    let mut sum = 0u64;
    let mut count = 0u64;
    let out = (0..items)
        .lazy_par_map(|i| (i, hash(i)))
        .lazy_par_map(|(i, x)| (i, fold(x)))
        .lazy_par_map(|(i, x)| (i, mix(x)));
    for (index, value) in out {
        assert_eq!(index, count, "out of order");
        sum = sum.wrapping_add(value);
        count += 1;
        if count % every == 0 {
            let now = Instant::now();
            let rate = (count - last.1) as f64 / (now - last.0).as_secs_f64();
            println!(
                "{count:>12} items  {:>8.1} s  RSS {:>10}  {:>6.2} M items/s",
                (now - started).as_secs_f64(),
                rss(),
                rate / 1e6
            );
            last = (now, count);
        }
    }
    let elapsed = started.elapsed();
    assert_eq!(count, items, "items lost");
    let expected = (0..items).fold(0u64, |sum, i| sum.wrapping_add(mix(fold(hash(i)))));
    assert_eq!(sum, expected, "checksum differs from the sequential result");
    println!(
        "done: {count} items in {:.1} s, {:.2} M items/s overall, RSS at end {}, checksum ok",
        elapsed.as_secs_f64(),
        count as f64 / elapsed.as_secs_f64() / 1e6,
        rss()
    );
}
