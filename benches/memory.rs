//! Memory: `lazy_par_map` holds at most `buffer` items, however long the source.
//!
//! Each case runs in a child process (this binary, re-run with `LPM_BENCH_MEMORY_CHILD`
//! set), because the peak resident set, `VmHWM` in `/proc/self/status`, is per process and
//! never goes down. The child maps `items` items, each a 1 KiB `Vec<u8>` made by the source
//! and returned (modified) by `f`, consumes them, and reports its `VmHWM`. Each case runs
//! [`RUNS`] times and counts its median peak.
//!
//! The check: over 10,000,000 items, the peak above the child's baseline stays within
//! [`budget_kib`], three times the buffer's worth of items plus 4 MiB (threads' stacks,
//! the allocator's arenas): a leak of one byte an item would exceed it. The summary also
//! gives the growth from 1,000,000 to 10,000,000 items (`same within 1 MiB`), which is not
//! a reliable sign by itself: one child's peak lands on one of two plateaus from run to run
//! (`lpm-default`: about 4.1 or 5.1 to 5.8 MiB over 1, 3, 10 and 30 million items, with no
//! trend), and a longer run lands on the higher one more often. The
//! small case is long enough (60 to 1,000 times the buffer) for the ring, the item queue's
//! buffer and the allocator to reach their steady state: with 10,000 items the run ended
//! in 4 ms, before the peak a long stream settles at, and the check compared a warm-up
//! with a plateau. `seq` is the floor.
//!
//! `cargo bench --bench memory`; the summary is merged into `target/bench-summary.jsonl`.

mod common;

use common::{json_line, Json};
use lazy_par_map::prelude::*;
use std::process::Command;
use std::time::{Duration, Instant};

const CHILD_ENV: &str = "LPM_BENCH_MEMORY_CHILD";
const ITEM_BYTES: usize = 1024;
/// Peaks further apart than this are not "the same".
const SLACK_KIB: u64 = 1024;
/// Children per case; the case's peak is their median.
const RUNS: usize = 3;

/// The most a contender's peak may rise above its baseline: three times its buffer's worth
/// of items, plus 4 MiB.
fn budget_kib(contender: &str) -> u64 {
    let buffer = match contender {
        "seq" => 1,
        "lpm-default" => lazy_par_map::DEFAULT_BUFFER,
        _ => common::TUNED_BUFFER,
    } as u64;
    3 * buffer * ITEM_BYTES as u64 / 1024 + 4096
}

/// `VmHWM` and `VmRSS` in KiB.
fn rss_kib() -> (u64, u64) {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let field = |name: &str| {
        status
            .lines()
            .find(|l| l.starts_with(name))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|v| v.parse().ok())
            .unwrap_or(0)
    };
    (field("VmHWM:"), field("VmRSS:"))
}

/// The child: run one case and print `hwm_kib rss_kib before_kib elapsed_ns checksum`.
fn child(spec: &str) {
    let (contender, items) = spec.split_once(':').expect("contender:items");
    let items: u64 = items.parse().expect("items");
    // Start the global pool before the baseline, so it is not counted as growth.
    rayon::broadcast(|_| ());
    let (before, _) = rss_kib();
    let source = (0..items).map(|i| vec![i as u8; ITEM_BYTES]);
    let f = |mut v: Vec<u8>| {
        v[0] = v[0].wrapping_add(1);
        v
    };
    let fold = |acc: u64, v: Vec<u8>| acc.wrapping_add(u64::from(v[0]) + v.len() as u64);
    let start = Instant::now();
    let checksum = match contender {
        "seq" => source.map(f).fold(0, fold),
        "lpm-default" => source.lazy_par_map(f).fold(0, fold),
        "lpm-tuned" => source
            .lazy_par_map(f)
            .buffer(common::TUNED_BUFFER)
            .fold(0, fold),
        other => panic!("unknown contender {other}"),
    };
    let elapsed = start.elapsed();
    let (hwm, rss) = rss_kib();
    println!("{hwm} {rss} {before} {} {checksum}", elapsed.as_nanos());
}

struct Case {
    contender: &'static str,
    items: u64,
    hwm_kib: u64,
    before_kib: u64,
    elapsed: Duration,
    /// The lowest and the highest peak of the case's runs.
    spread_kib: (u64, u64),
}

/// Runs a case [`RUNS`] times; the run with the median peak stands for it.
fn median_case(contender: &'static str, items: u64) -> Case {
    let mut runs: Vec<Case> = (0..RUNS).map(|_| spawn_case(contender, items)).collect();
    runs.sort_by_key(|case| case.hwm_kib);
    let spread_kib = (runs[0].hwm_kib, runs[RUNS - 1].hwm_kib);
    let mut median = runs.swap_remove(RUNS / 2);
    median.spread_kib = spread_kib;
    median
}

fn spawn_case(contender: &'static str, items: u64) -> Case {
    let exe = std::env::current_exe().expect("current exe");
    let out = Command::new(exe)
        .env(CHILD_ENV, format!("{contender}:{items}"))
        .output()
        .expect("run the child");
    let fields = common::child_numbers(&out, &format!("memory child {contender}:{items}"));
    let expected: u64 = (0..items)
        .map(|i| u64::from((i as u8).wrapping_add(1)) + ITEM_BYTES as u64)
        .fold(0, u64::wrapping_add);
    assert_eq!(
        fields[4], expected,
        "WRONG OUTPUT: memory {contender}:{items}"
    );
    Case {
        contender,
        items,
        hwm_kib: fields[0],
        before_kib: fields[2],
        elapsed: Duration::from_nanos(fields[3]),
        spread_kib: (fields[0], fields[0]),
    }
}

fn main() {
    if let Ok(spec) = std::env::var(CHILD_ENV) {
        child(&spec);
        return;
    }
    let large = common::scaled(10_000_000, 100_000);
    let small = large / 10;
    let machine = common::machine();
    let command = std::env::args().collect::<Vec<_>>().join(" ");
    println!("== memory summary ({machine}; median of {RUNS} child processes per case, VmHWM) ==");
    println!(
        "{:<12} {:>10} {:>12} {:>17} {:>12} {:>12} {:>10}  bounded",
        "contender", "items", "peak", "runs' peaks", "baseline", "peak-base", "time"
    );
    let mut lines = Vec::new();
    let mut over_budget = Vec::new();
    for contender in ["seq", "lpm-default", "lpm-tuned"] {
        let cases = [median_case(contender, small), median_case(contender, large)];
        let growth = cases[1].hwm_kib as i64 - cases[0].hwm_kib as i64;
        let bounded = growth.unsigned_abs() <= SLACK_KIB;
        let above = cases[1].hwm_kib.saturating_sub(cases[1].before_kib);
        let budget = budget_kib(contender);
        if above > budget {
            over_budget.push(format!(
                "{contender}: {above} KiB above its baseline, budget {budget} KiB"
            ));
        }
        for (case, label) in cases.iter().zip(["small", "large"]) {
            println!(
                "{:<12} {:>10} {:>8} KiB {:>7}-{:<7} KiB {:>8} KiB {:>8} KiB {:>10}  {}",
                case.contender,
                case.items,
                case.hwm_kib,
                case.spread_kib.0,
                case.spread_kib.1,
                case.before_kib,
                case.hwm_kib.saturating_sub(case.before_kib),
                common::fmt_duration(case.elapsed),
                if label == "large" {
                    format!(
                        "{bounded} (large - small peak = {growth} KiB); {above} KiB above \
                         baseline, budget {budget} KiB"
                    )
                } else {
                    String::new()
                }
            );
            lines.push(json_line(&[
                ("key", format!("memory/{contender}/{label}").into()),
                ("bench", "memory".into()),
                ("workload", "memory".into()),
                ("contender", contender.into()),
                ("case", label.into()),
                ("items", case.items.into()),
                ("item_bytes", ITEM_BYTES.into()),
                ("peak_rss_kib", case.hwm_kib.into()),
                ("peak_rss_min_kib", case.spread_kib.0.into()),
                ("peak_rss_max_kib", case.spread_kib.1.into()),
                ("baseline_rss_kib", case.before_kib.into()),
                ("growth_vs_small_kib", Json::Num(growth as f64)),
                ("bounded", bounded.into()),
                (
                    "above_baseline_kib",
                    case.hwm_kib.saturating_sub(case.before_kib).into(),
                ),
                ("budget_kib", budget.into()),
                ("median_ns", (case.elapsed.as_nanos() as u64).into()),
                ("quick", common::quick().into()),
                ("machine", machine.as_str().into()),
                ("command", command.as_str().into()),
                ("run_at", common::unix_time().into()),
            ]));
        }
    }
    common::write_summary(&lines);
    if !over_budget.is_empty() {
        eprintln!("over budget: {}", over_budget.join("; "));
        std::process::exit(1);
    }
}
