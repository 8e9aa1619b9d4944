//! Scaling: `spin10us` and `small` on custom pools of 1, 2, 4, 8 and 16 threads (up to twice
//! the CPUs this process may use), `lazy_par_map` against `par_bridge`.
//!
//! Efficiency = (seq time / min(threads, CPUs)) / time: 100% is a perfect split of the
//! sequential work over the cores that can actually run it. Each point is the median of a
//! few runs (no criterion: this bench is a table, not a regression detector).
//!
//! `cargo bench --bench scaling` (`LPM_BENCH_QUICK=1` for a smoke run); writes
//! `target/bench-scaling.jsonl`, which `scripts/bench-table` reads.

mod common;

use common::{json_line, median, Check, Contender, Job, PoolSpec};
use std::time::Duration;

/// One item's work, `Copy` so that both workloads share a `Job` type.
#[derive(Clone, Copy, Debug)]
enum Work {
    Spin(Duration),
    Rounds(u32),
}

impl Work {
    fn apply(self, x: u64) -> u64 {
        match self {
            Work::Spin(d) => common::spin(x, d),
            Work::Rounds(rounds) => common::mix_rounds(x, rounds),
        }
    }
}

fn main() {
    let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
    let samples: usize = if common::quick() || common::test_mode() {
        3
    } else {
        7
    };
    let machine = common::machine();
    let command = std::env::args().collect::<Vec<_>>().join(" ");
    let thread_counts: Vec<usize> = [1, 2, 4, 8, 16]
        .into_iter()
        .filter(|&t| t == 1 || t <= 2 * cpus)
        .collect();
    let rounds = common::calibrate_rounds(Duration::from_nanos(500));
    let contenders = [
        Contender::LpmDefault,
        Contender::LpmTuned,
        Contender::ParBridge,
    ];

    println!("== scaling summary ({machine}; median of {samples} runs) ==");
    println!(
        "{:<10} {:<12} {:>7} {:>11} {:>8} {:>6}",
        "workload", "contender", "threads", "median", "vs seq", "eff"
    );
    let mut lines = Vec::new();
    let mut wrong = false;
    let n_spin = common::scaled(30_000, 1_000);
    let n_small = common::scaled(200_000, 1_000);
    let workloads = [
        ("spin10us", n_spin, Work::Spin(Duration::from_micros(10))),
        ("small", n_small, Work::Rounds(rounds)),
    ];
    // Every pool is built once; idle rayon threads sleep.
    let pools: Vec<PoolSpec> = thread_counts.iter().map(|&t| PoolSpec::custom(t)).collect();
    for (name, n, work) in workloads {
        let job_for = |pool: PoolSpec| {
            let mut job = Job::new(move || 0..n, move |x| work.apply(x));
            job.pool = pool;
            job
        };
        let seq_job = job_for(PoolSpec::Global);
        let expected: Check = common::run(Contender::Seq, &seq_job, None).check;
        let jobs: Vec<_> = pools.iter().map(|p| job_for(p.clone())).collect();
        // Samples are interleaved (seq, then every pool and contender, then again), so that
        // load from other processes falls on all of them alike.
        let mut seq_times = Vec::new();
        let mut times = vec![vec![Vec::new(); contenders.len()]; jobs.len()];
        for _ in 0..samples {
            seq_times.push(common::run(Contender::Seq, &seq_job, None).elapsed);
            for (j, job) in jobs.iter().enumerate() {
                for (k, &contender) in contenders.iter().enumerate() {
                    let label =
                        format!("scaling/{name}/{}/{}", contender.name(), job.pool.threads());
                    let pool = job.pool.for_sample();
                    let guard = common::Watchdog::arm(&label);
                    let out = common::run(contender, job, pool.as_ref());
                    drop(guard);
                    if !out.check.agrees(&expected, contender.ordered()) {
                        eprintln!(
                            "WRONG OUTPUT: {label}: got {:?}, seq gives {expected:?}",
                            out.check
                        );
                        wrong = true;
                    }
                    times[j][k].push(out.elapsed);
                }
            }
        }
        let seq = median(&seq_times);
        println!(
            "{name:<10} {:<12} {:>7} {:>11}",
            "seq",
            1,
            common::fmt_duration(seq)
        );
        for (j, &threads) in thread_counts.iter().enumerate() {
            for (k, &contender) in contenders.iter().enumerate() {
                let label = format!("scaling/{name}/{}/{threads}", contender.name());
                let med = median(&times[j][k]);
                let ratio = seq.as_secs_f64() / med.as_secs_f64();
                let ideal = seq.as_secs_f64() / threads.min(cpus) as f64;
                let efficiency = ideal / med.as_secs_f64();
                println!(
                    "{name:<10} {:<12} {threads:>7} {:>11} {:>7.2}x {:>5.0}%",
                    contender.name(),
                    common::fmt_duration(med),
                    ratio,
                    efficiency * 100.0
                );
                lines.push(json_line(&[
                    ("key", label.into()),
                    ("bench", "scaling".into()),
                    ("workload", name.into()),
                    ("contender", contender.name().into()),
                    ("threads", threads.into()),
                    ("cpus", cpus.into()),
                    ("items", n.into()),
                    ("median_ns", (med.as_nanos() as u64).into()),
                    ("seq_ns", (seq.as_nanos() as u64).into()),
                    ("ratio", Some(ratio).into()),
                    ("efficiency", Some(efficiency).into()),
                    ("samples", samples.into()),
                    ("quick", common::quick().into()),
                    ("machine", machine.as_str().into()),
                    ("command", command.as_str().into()),
                    ("run_at", common::unix_time().into()),
                ]));
            }
        }
    }
    if common::test_mode() {
        println!("(test mode: no JSON written)");
    } else {
        let path = common::target_dir().join("bench-scaling.jsonl");
        let written = std::fs::create_dir_all(common::target_dir())
            .and_then(|()| std::fs::write(&path, lines.join("\n") + "\n"));
        match written {
            Ok(()) => println!("wrote {}", path.display()),
            Err(e) => eprintln!("could not write {}: {e}", path.display()),
        }
    }
    if wrong {
        std::process::exit(1);
    }
}
