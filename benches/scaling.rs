//! Scaling, in two series.
//!
//! - CPU-bound: `spin10us` and `small` on custom pools of 1, 2, 4, 8 and 16 threads (up to
//!   twice the CPUs this process may use), `lazy_par_map` against `par_bridge`. Efficiency
//!   = (seq time / min(threads, CPUs)) / time: 100% is a perfect split of the sequential
//!   work over the cores that can actually run it.
//! - Latency-bound: `sleep1ms` (`f` sleeps 1 ms) on custom pools of 1, 2, 4, ..., 64
//!   threads whatever the CPUs (a sleeping thread needs no core), over max(64 × threads,
//!   200) items (max(16 × threads, 50) in a quick run). Contenders: `lpm-4xthreads`
//!   (`.buffer(4 * threads)`), `lpm-default` and `par_bridge`. Efficiency = (items × 1 ms /
//!   threads) / time; there is no `seq` run (it would only sleep items × 1 ms).
//!
//! Each point is the median of a few runs, interleaved across pools and contenders (no
//! criterion: this bench is a table, not a regression detector).
//!
//! `cargo bench --bench scaling` (`LPM_BENCH_QUICK=1` for a smoke run); writes
//! `target/bench-scaling.jsonl`, which `scripts/bench-table` reads.

mod common;

use common::{json_line, median, Check, Contender, Job, Json, PoolSpec};
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

/// What both series share, and what they produce.
struct Run {
    cpus: usize,
    samples: usize,
    machine: String,
    command: String,
    /// JSON lines for `target/bench-scaling.jsonl`.
    lines: Vec<String>,
    /// Some contender produced a wrong output.
    wrong: bool,
}

fn main() {
    let mut run = Run {
        cpus: std::thread::available_parallelism().map_or(1, |n| n.get()),
        samples: if common::quick() || common::test_mode() {
            3
        } else {
            7
        },
        machine: common::machine(),
        command: std::env::args().collect::<Vec<_>>().join(" "),
        lines: Vec::new(),
        wrong: false,
    };
    println!(
        "== scaling summary ({}; median of {} runs) ==",
        run.machine, run.samples
    );
    cpu_bound(&mut run);
    latency_bound(&mut run);
    if common::test_mode() {
        println!("(test mode: no JSON written)");
    } else {
        let path = common::target_dir().join("bench-scaling.jsonl");
        let written = std::fs::create_dir_all(common::target_dir())
            .and_then(|()| std::fs::write(&path, run.lines.join("\n") + "\n"));
        match written {
            Ok(()) => println!("wrote {}", path.display()),
            Err(e) => eprintln!("could not write {}: {e}", path.display()),
        }
    }
    if run.wrong {
        std::process::exit(1);
    }
}

/// `spin10us` and `small` against `seq`, on pools of up to twice the CPUs.
fn cpu_bound(run: &mut Run) {
    let (cpus, samples) = (run.cpus, run.samples);
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

    println!("-- CPU-bound: efficiency = (seq time / min(threads, {cpus} CPUs)) / time --");
    println!(
        "{:<10} {:<13} {:>7} {:>11} {:>8} {:>6}",
        "workload", "contender", "threads", "median", "vs seq", "eff"
    );
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
                        run.wrong = true;
                    }
                    times[j][k].push(out.elapsed);
                }
            }
        }
        let seq = median(&seq_times);
        println!(
            "{name:<10} {:<13} {:>7} {:>11}",
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
                    "{name:<10} {:<13} {threads:>7} {:>11} {:>7.2}x {:>5.0}%",
                    contender.name(),
                    common::fmt_duration(med),
                    ratio,
                    efficiency * 100.0
                );
                run.lines.push(json_line(&[
                    ("key", label.into()),
                    ("bench", "scaling".into()),
                    ("series", "cpu".into()),
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
                    ("machine", run.machine.as_str().into()),
                    ("command", run.command.as_str().into()),
                    ("run_at", common::unix_time().into()),
                ]));
            }
        }
    }
}

/// `sleep1ms` on pools of 1 to 64 threads, whatever the CPUs: a sleeping `f` needs a
/// thread, not a core, so the ideal is items × 1 ms / threads.
fn latency_bound(run: &mut Run) {
    const NAME: &str = "sleep1ms";
    const NAP: Duration = Duration::from_millis(1);
    let samples = run.samples;
    let thread_counts = [1usize, 2, 4, 8, 16, 32, 64];
    // `Contender::LpmSmall` is `.buffer(4 * threads)`; here it is named after its buffer.
    let contenders = [
        (Contender::LpmSmall, "lpm-4xthreads"),
        (Contender::LpmDefault, "lpm-default"),
        (Contender::ParBridge, "par_bridge"),
    ];
    let items = |threads: usize| -> u64 {
        let (per_thread, min) = if common::quick() || common::test_mode() {
            (16, 50)
        } else {
            (64, 200)
        };
        (per_thread * threads as u64).max(min)
    };

    println!("-- latency-bound: f sleeps 1 ms; efficiency = (items x 1 ms / threads) / time --");
    println!(
        "{:<10} {:<13} {:>7} {:>6} {:>11} {:>11} {:>8} {:>6}",
        "workload", "contender", "threads", "items", "median", "ideal", "vs 1 ms", "eff"
    );
    // Every pool is built once (127 threads in all); idle rayon threads sleep.
    let jobs: Vec<_> = thread_counts
        .iter()
        .map(|&threads| {
            let n = items(threads);
            let mut job = Job::new(move || 0..n, |x| common::nap(x, NAP));
            job.pool = PoolSpec::custom(threads);
            job
        })
        .collect();
    // `seq` would only sleep: its output is `mix` over the items.
    let expected: Vec<Check> = thread_counts
        .iter()
        .map(|&t| {
            (0..items(t))
                .map(common::mix)
                .fold(Check::default(), Check::add)
        })
        .collect();
    let mut times = vec![vec![Vec::new(); contenders.len()]; jobs.len()];
    for _ in 0..samples {
        for (j, job) in jobs.iter().enumerate() {
            for (k, &(contender, cname)) in contenders.iter().enumerate() {
                let label = format!("scaling/{NAME}/{cname}/{}", thread_counts[j]);
                let pool = job.pool.for_sample();
                let guard = common::Watchdog::arm(&label);
                let out = common::run(contender, job, pool.as_ref());
                drop(guard);
                if !out.check.agrees(&expected[j], contender.ordered()) {
                    eprintln!(
                        "WRONG OUTPUT: {label}: got {:?}, expected {:?}",
                        out.check, expected[j]
                    );
                    run.wrong = true;
                }
                times[j][k].push(out.elapsed);
            }
        }
    }
    for (j, &threads) in thread_counts.iter().enumerate() {
        let n = items(threads);
        let nominal_seq = NAP * n as u32;
        let ideal = nominal_seq / threads as u32;
        for (k, &(contender, cname)) in contenders.iter().enumerate() {
            let med = median(&times[j][k]);
            let ratio = nominal_seq.as_secs_f64() / med.as_secs_f64();
            let efficiency = ideal.as_secs_f64() / med.as_secs_f64();
            println!(
                "{NAME:<10} {cname:<13} {threads:>7} {n:>6} {:>11} {:>11} {:>7.2}x {:>5.0}%",
                common::fmt_duration(med),
                common::fmt_duration(ideal),
                ratio,
                efficiency * 100.0
            );
            let buffer = match contender {
                Contender::LpmSmall => Json::from(Contender::small_buffer(threads)),
                Contender::LpmDefault => Json::from(lazy_par_map::DEFAULT_BUFFER),
                _ => Json::Null,
            };
            run.lines.push(json_line(&[
                ("key", format!("scaling/{NAME}/{cname}/{threads}").into()),
                ("bench", "scaling".into()),
                ("series", "latency".into()),
                ("workload", NAME.into()),
                ("contender", cname.into()),
                ("threads", threads.into()),
                ("cpus", run.cpus.into()),
                ("items", n.into()),
                ("buffer", buffer),
                ("median_ns", (med.as_nanos() as u64).into()),
                // No `seq` run: the ideal is items x 1 ms / threads, and `ratio` is the
                // speedup over a nominal items x 1 ms.
                ("seq_ns", Json::Null),
                ("ideal_ns", (ideal.as_nanos() as u64).into()),
                ("ratio", Some(ratio).into()),
                ("efficiency", Some(efficiency).into()),
                ("samples", samples.into()),
                ("quick", common::quick().into()),
                ("machine", run.machine.as_str().into()),
                ("command", run.command.as_str().into()),
                ("run_at", common::unix_time().into()),
            ]));
        }
    }
}
