//! Fixed costs: what an adapter costs apart from its items' work (issue 9). Servers that run
//! a pipeline per request, crawlers with a stream per host and maps nested in maps pay for
//! starting, holding and ending adapters more than for items; these workloads measure that,
//! with every contender in the same run.
//!
//! - `short`: 20,000 adapters of 8 items each (`f` ≈ 0.5 µs), one after another, each fully
//!   consumed: µs an adapter. What starting and ending one adapter costs.
//! - `live`: 2,000 adapters of 100 items each (`f` ≈ 0.5 µs) held open at once: each is
//!   started (a first `next()` on each), then they are consumed round-robin, one item from
//!   each in turn, until all end: µs an item, and the process's thread count at its peak
//!   (`Threads:` in `/proc/self/status`, read after each round, off the clock; Linux only).
//!   `lpm-default` has `buffer(4)` here and pariter `buffer_size(4)`. `par_bridge` is left
//!   out: it maps its whole input before it returns a first item, so it cannot be held open
//!   and consumed an item at a time.
//! - `nested`: 8 outer items on rayon's global pool (`(0..8).into_par_iter().map(..)` for
//!   every contender), each outer call consuming an inner adapter over 25,000 items (`f` ≈
//!   0.5 µs); the contender is the inner adapter (`seq`: a plain `map`). Efficiency =
//!   (`serial` time / threads) / time, where `serial` runs the whole job on one thread; the
//!   summary also gives `lpm-default`'s efficiency over `par_bridge`'s.
//! - `nested-cheap`: the same with `f` a tenth as costly (≈ 50 ns), where the feeding
//!   threads' share of the cores and their hand-offs with the pool weigh most.
//! - `first`: build an adapter over a 1,000,000-item source with `f` a 1 ms busy spin and
//!   take the first result, against `(0..n).map(f).next()`. `par_bridge` is left out (it
//!   maps the whole source first). `rayon-spawn` is the floor for anything that runs `f` on
//!   the pool: one `rayon::spawn` of `f` on the first item, its result sent back over a
//!   channel (cold, it pays for building the pool as the adapters do).
//! - `tiny`: 2,000,000 items of 4 mix rounds (a few ns each), default buffer: the cost of
//!   an item's hand-off; ratio = `seq` time / time.
//!
//! Contenders, as in `common::contenders`: `lpm-default` (`lazy_par_map`, default buffer),
//! `par_bridge` (`par_bridge().map(f)` collected into a `Vec`, then consumed), `pariter`
//! (`parallel_map`, ordered, threads = the pool's), and `seq` (a plain `map`).
//!
//! Each workload runs in two modes:
//! - **warm**: criterion's iterations in this process, the global pool built and the code
//!   warm; the figure is the median of criterion's 10 samples (its warm-up left out). An
//!   iteration of `short` is one adapter; of `first`, one adapter's first result (the
//!   adapter is then dropped and its leftover jobs given 3 ms to end, off the clock); of the
//!   others, the whole workload. Iterations run back to back, as criterion makes them, so a
//!   run may share the machine with the threads of the previous one that are still ending;
//!   between two contenders the bench waits until the thread count is steady.
//! - **cold**: each measurement in a fresh process (this binary, re-run with
//!   `LPM_BENCH_FIXED_CHILD=<workload>:<contender>:<sizes>`), which runs the workload once
//!   and prints its time. The child builds rayon's global pool before its clock starts,
//!   except in `first`, where the clock starts before the first use of rayon, so building
//!   the pool counts. The median of 3 to 11 children per contender (more while its
//!   children have taken under 6 s in all; 3 in a smoke run), interleaved across contenders
//!   so that load from other processes falls on all alike. A command-line filter that
//!   skips a contender in criterion skips its cold runs too.
//!
//! `cargo bench --bench fixed` (`-- --quick` or `LPM_BENCH_QUICK=1` for a smoke run with a
//! tenth of the adapters and items). The summary is merged into `target/bench-summary.jsonl`,
//! which `scripts/bench-table` turns into the README's "Fixed costs" table.

mod common;

use common::{json_line, median, Check, Json, Watchdog};
use criterion::{Criterion, SamplingMode, Throughput};
use lazy_par_map::prelude::*;
use pariter::IteratorExt as _;
use rayon::iter::{IntoParallelIterator, ParallelBridge, ParallelIterator};
use std::ops::Range;
use std::process::{Command, Stdio};
use std::sync::mpsc::RecvTimeoutError;
use std::time::{Duration, Instant};

const CHILD_ENV: &str = "LPM_BENCH_FIXED_CHILD";

const SHORT_ITEMS: u64 = 8;
const LIVE_ITEMS: u64 = 100;
const LIVE_BUFFER: usize = 4;
const NESTED_OUTER: u64 = 8;
/// `nested-cheap`'s `f` is this many times cheaper than the others' (≈ 50 ns).
const NESTED_CHEAPER: u32 = 10;
const FIRST_SOURCE: u64 = 1_000_000;
const FIRST_SPIN: Duration = Duration::from_millis(1);
/// Off the clock after each warm `first`: long enough for the jobs a dropped adapter leaves
/// (at most a few 1 ms spins) to end before the next one starts.
const FIRST_SETTLE: Duration = Duration::from_millis(3);
const TINY_ROUNDS: u32 = 4;
/// Criterion's samples per contender in warm mode (its warm-up calls are not counted).
const WARM_SAMPLES: usize = 10;
/// The fewest and the most children per contender in cold mode, and the time after which
/// a contender past the fewest gets no more.
const COLD_RUNS: (usize, usize) = (3, 11);
const COLD_BUDGET: Duration = Duration::from_secs(6);

/// A smoke run: `LPM_BENCH_QUICK`, criterion's `--quick`, or test mode.
fn smoke() -> bool {
    common::quick() || common::test_mode() || std::env::args().any(|a| a == "--quick")
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Contender {
    Seq,
    Lpm,
    ParBridge,
    Pariter,
    /// `nested`'s reference: the outer loop sequential too, the whole job on one thread.
    Serial,
    /// `first`'s floor for anything that runs `f` on the pool: one `rayon::spawn` of `f` on
    /// the first item, its result sent back over a channel.
    Spawn,
}

impl Contender {
    const ALL: [Contender; 6] = [
        Contender::Seq,
        Contender::Lpm,
        Contender::ParBridge,
        Contender::Pariter,
        Contender::Serial,
        Contender::Spawn,
    ];

    fn name(self) -> &'static str {
        match self {
            Contender::Seq => "seq",
            Contender::Lpm => "lpm-default",
            Contender::ParBridge => "par_bridge",
            Contender::Pariter => "pariter",
            Contender::Serial => "serial",
            Contender::Spawn => "rayon-spawn",
        }
    }

    fn ordered(self) -> bool {
        self != Contender::ParBridge
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Workload {
    Short,
    Live,
    Nested,
    NestedCheap,
    First,
    Tiny,
}

impl Workload {
    const ALL: [Workload; 6] = [
        Workload::Short,
        Workload::Live,
        Workload::Nested,
        Workload::NestedCheap,
        Workload::First,
        Workload::Tiny,
    ];

    fn name(self) -> &'static str {
        match self {
            Workload::Short => "short",
            Workload::Live => "live",
            Workload::Nested => "nested",
            Workload::NestedCheap => "nested-cheap",
            Workload::First => "first",
            Workload::Tiny => "tiny",
        }
    }

    /// The contenders, the reference (whose time the others are compared with) first.
    fn contenders(self) -> &'static [Contender] {
        use Contender::*;
        match self {
            Workload::Short | Workload::Tiny => &[Seq, Lpm, ParBridge, Pariter],
            Workload::Live => &[Seq, Lpm, Pariter],
            Workload::First => &[Seq, Lpm, Pariter, Spawn],
            Workload::Nested | Workload::NestedCheap => &[Serial, Seq, Lpm, ParBridge, Pariter],
        }
    }

    /// What a figure is per, and how many of those one run holds.
    fn unit(self, sizes: &Sizes) -> (&'static str, u64) {
        match self {
            Workload::Short => ("adapter", sizes.short_adapters),
            Workload::Live => ("item", sizes.live_adapters * LIVE_ITEMS),
            Workload::Nested | Workload::NestedCheap | Workload::First | Workload::Tiny => {
                ("run", 1)
            }
        }
    }

    /// Adapters in one run (`nested`: outer items), and the items of each.
    fn shape(self, sizes: &Sizes) -> (u64, u64) {
        match self {
            Workload::Short => (sizes.short_adapters, SHORT_ITEMS),
            Workload::Live => (sizes.live_adapters, LIVE_ITEMS),
            Workload::Nested | Workload::NestedCheap => (NESTED_OUTER, sizes.nested_items),
            Workload::First => (1, FIRST_SOURCE),
            Workload::Tiny => (1, sizes.tiny_items),
        }
    }
}

/// The workloads' sizes, chosen by the parent and passed to its children.
#[derive(Clone, Copy, Debug)]
struct Sizes {
    short_adapters: u64,
    live_adapters: u64,
    nested_items: u64,
    tiny_items: u64,
    /// Rounds of `mix_rounds` that take about 0.5 µs on this machine.
    rounds: u32,
    /// The global pool's threads, and pariter's (a `first` child must not ask rayon before
    /// its clock starts).
    threads: usize,
}

impl Sizes {
    fn new() -> Sizes {
        let scaled = |n: u64, min: u64| if smoke() { (n / 10).max(min) } else { n };
        Sizes {
            short_adapters: scaled(20_000, 200),
            live_adapters: scaled(2_000, 50),
            nested_items: scaled(25_000, 1_000),
            tiny_items: scaled(2_000_000, 10_000),
            rounds: common::calibrate_rounds(Duration::from_nanos(500)),
            threads: rayon::current_num_threads(),
        }
    }

    fn encode(&self) -> String {
        format!(
            "{},{},{},{},{},{}",
            self.short_adapters,
            self.live_adapters,
            self.nested_items,
            self.tiny_items,
            self.rounds,
            self.threads
        )
    }

    fn decode(s: &str) -> Sizes {
        let v: Vec<u64> = s.split(',').map(|x| x.parse().expect("a size")).collect();
        Sizes {
            short_adapters: v[0],
            live_adapters: v[1],
            nested_items: v[2],
            tiny_items: v[3],
            rounds: v[4] as u32,
            threads: v[5] as usize,
        }
    }
}

// ---------------------------------------------------------------------------------------
// The contenders and the workloads
// ---------------------------------------------------------------------------------------

/// What to do with an adapter once built; generic, so that folding it is not a virtual
/// call per item.
trait Use {
    type Out;
    fn with<I: Iterator<Item = u64> + 'static>(self, it: I) -> Self::Out;
}

/// Folds every output into the check.
struct Fold(Check);

impl Use for Fold {
    type Out = Check;
    fn with<I: Iterator<Item = u64> + 'static>(self, it: I) -> Check {
        it.fold(self.0, Check::add)
    }
}

/// Keeps the adapter open, to pull it an item at a time.
struct Open;

impl Use for Open {
    type Out = Box<dyn Iterator<Item = u64>>;
    fn with<I: Iterator<Item = u64> + 'static>(self, it: I) -> Self::Out {
        Box::new(it)
    }
}

/// Builds `contender`'s adapter of `f` over `source` (`buffer`: lazy-par-map's and
/// pariter's, else their default) and hands it to `then`.
fn adapter<F, U>(
    contender: Contender,
    source: Range<u64>,
    f: F,
    buffer: Option<usize>,
    threads: usize,
    then: U,
) -> U::Out
where
    F: Fn(u64) -> u64 + Clone + Send + Sync + 'static,
    U: Use,
{
    match contender {
        Contender::Seq | Contender::Serial => then.with(source.map(f)),
        Contender::Lpm => match buffer {
            Some(n) => then.with(source.lazy_par_map(f).buffer(n)),
            None => then.with(source.lazy_par_map(f)),
        },
        Contender::ParBridge => {
            then.with(source.par_bridge().map(f).collect::<Vec<_>>().into_iter())
        }
        Contender::Pariter => then.with(source.parallel_map_custom(
            |o| match buffer {
                Some(n) => o.threads(threads).buffer_size(n),
                None => o.threads(threads),
            },
            f,
        )),
        Contender::Spawn => {
            let mut source = source;
            then.with(std::iter::from_fn(move || {
                let x = source.next()?;
                let (tx, rx) = std::sync::mpsc::channel();
                let f = f.clone();
                rayon::spawn(move || {
                    let _ = tx.send(f(x));
                });
                rx.recv().ok()
            }))
        }
    }
}

/// One run of a workload.
#[derive(Clone, Copy, Debug)]
struct Run {
    elapsed: Duration,
    check: Check,
    peak_threads: Option<u64>,
}

/// The process's threads now (Linux only).
fn threads_now() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("Threads:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

/// Waits (at most 5 s) until the process's thread count has not changed for 100 ms: threads
/// one contender leaves behind (pariter's detached workers take a second or more to exit)
/// must not slow the next.
fn settle() {
    let deadline = Instant::now() + Duration::from_secs(5);
    let mut last = threads_now();
    let mut since = Instant::now();
    while since.elapsed() < Duration::from_millis(100) && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(10));
        let now = threads_now();
        if now != last {
            (last, since) = (now, Instant::now());
        }
    }
}

/// Runs `workload` once through `contender`, timed from before its first adapter is built.
fn run(workload: Workload, contender: Contender, sizes: &Sizes) -> Run {
    let rounds = sizes.rounds;
    let half_us = move |x| common::mix_rounds(x, rounds);
    let threads = sizes.threads;
    let start = Instant::now();
    let mut peak_threads = None;
    let mut probing = Duration::ZERO;
    let check = match workload {
        Workload::Short => (0..sizes.short_adapters).fold(Check::default(), |check, a| {
            let items = a * SHORT_ITEMS..(a + 1) * SHORT_ITEMS;
            adapter(contender, items, half_us, None, threads, Fold(check))
        }),
        Workload::Live => {
            let mut open: Vec<_> = (0..sizes.live_adapters)
                .map(|a| {
                    let items = a * LIVE_ITEMS..(a + 1) * LIVE_ITEMS;
                    adapter(contender, items, half_us, Some(LIVE_BUFFER), threads, Open)
                })
                .collect();
            // The first round starts every adapter; each round drops those that ended. The
            // thread count is read after each round, off the clock.
            let mut check = Check::default();
            while !open.is_empty() {
                open.retain_mut(|it| match it.next() {
                    Some(x) => {
                        check = check.add(x);
                        true
                    }
                    None => false,
                });
                let probe = Instant::now();
                peak_threads = peak_threads.max(threads_now());
                probing += probe.elapsed();
            }
            check
        }
        Workload::Nested | Workload::NestedCheap => {
            let rounds = match workload {
                Workload::NestedCheap => (rounds / NESTED_CHEAPER).max(1),
                _ => rounds,
            };
            let f = move |x| common::mix_rounds(x, rounds);
            let inner = |o: u64| {
                let items = o * sizes.nested_items..(o + 1) * sizes.nested_items;
                adapter(contender, items, f, None, threads, Fold(Check::default()))
            };
            let checks: Vec<Check> = if contender == Contender::Serial {
                (0..NESTED_OUTER).map(inner).collect()
            } else {
                (0..NESTED_OUTER).into_par_iter().map(inner).collect()
            };
            // One check of all the items in outer order: counts and sums add, hashes chain.
            checks.iter().fold(Check::default(), |all, c| Check {
                count: all.count + c.count,
                ordered: all.ordered.rotate_left(7) ^ c.ordered,
                sum: all.sum.wrapping_add(c.sum),
            })
        }
        Workload::First => {
            let spin = |x| common::spin(x, FIRST_SPIN);
            let source = 1..FIRST_SOURCE + 1;
            let mut it = adapter(contender, source, spin, None, threads, Open);
            let first = it.next().expect("a first item");
            let elapsed = start.elapsed();
            drop(it);
            return Run {
                elapsed,
                check: Check::default().add(first),
                peak_threads: None,
            };
        }
        Workload::Tiny => {
            let tiny = |x| common::mix_rounds(x, TINY_ROUNDS);
            adapter(
                contender,
                0..sizes.tiny_items,
                tiny,
                None,
                threads,
                Fold(Check::default()),
            )
        }
    };
    Run {
        elapsed: start.elapsed() - probing,
        check,
        peak_threads,
    }
}

// ---------------------------------------------------------------------------------------
// The two modes
// ---------------------------------------------------------------------------------------

/// The runs of one contender on one workload in one mode.
struct Row {
    workload: Workload,
    mode: &'static str,
    contender: Contender,
    /// Per unit (`Workload::unit`).
    samples: Vec<Duration>,
    peak_threads: Option<u64>,
    wrong: u64,
}

impl Row {
    fn new(workload: Workload, mode: &'static str, contender: Contender) -> Row {
        Row {
            workload,
            mode,
            contender,
            samples: Vec::new(),
            peak_threads: None,
            wrong: 0,
        }
    }

    fn record(&mut self, out: &Run, units: u64, expected: &Check) {
        self.samples.push(out.elapsed / units as u32);
        self.peak_threads = self.peak_threads.max(out.peak_threads);
        if !out.check.agrees(expected, self.contender.ordered()) {
            if self.wrong == 0 {
                eprintln!(
                    "\nWRONG OUTPUT: {}/{}/{}: got {:?}, expected {expected:?}",
                    self.workload.name(),
                    self.mode,
                    self.contender.name(),
                    out.check
                );
            }
            self.wrong += 1;
        }
    }
}

/// The reference output of a run: the first contender's (a sequential one).
fn expected(workload: Workload, sizes: &Sizes) -> Check {
    run(workload, workload.contenders()[0], sizes).check
}

/// Criterion's iterations, in this process.
fn warm(c: &mut Criterion, workload: Workload, sizes: &Sizes) -> Vec<Row> {
    let mut group = c.benchmark_group(format!("fixed-{}", workload.name()));
    let (adapters, items) = workload.shape(sizes);
    let per_iteration = match workload {
        Workload::Short => items,
        Workload::First => 1,
        _ => adapters * items,
    };
    group
        .throughput(Throughput::Elements(per_iteration))
        .sample_size(WARM_SAMPLES)
        .sampling_mode(SamplingMode::Flat)
        .warm_up_time(Duration::from_millis(200))
        .measurement_time(match workload {
            // ~4 ms an iteration with the settling, of which criterion counts ~1 ms.
            Workload::First => Duration::from_millis(300),
            _ => Duration::from_secs(1),
        });
    let want = expected(workload, sizes);
    let mut rows = Vec::new();
    for &contender in workload.contenders() {
        let label = format!("{}/warm/{}", workload.name(), contender.name());
        let mut row = Row::new(workload, "warm", contender);
        // Where each of criterion's calls began in `row.samples`.
        let mut calls = Vec::new();
        group.bench_function(contender.name(), |b| {
            b.iter_custom(|iters| {
                calls.push(row.samples.len());
                // `short` runs `iters` adapters in one run; the others `iters` runs.
                let (runs, sizes, want) = match workload {
                    Workload::Short => {
                        let sizes = Sizes {
                            short_adapters: iters,
                            ..*sizes
                        };
                        (1, sizes, expected(workload, &sizes))
                    }
                    _ => (iters, *sizes, want),
                };
                let mut total = Duration::ZERO;
                for _ in 0..runs {
                    let guard = Watchdog::arm(&label);
                    let out = run(workload, contender, &sizes);
                    drop(guard);
                    total += out.elapsed;
                    row.record(&out, workload.unit(&sizes).1, &want);
                    if workload == Workload::First {
                        std::thread::sleep(FIRST_SETTLE);
                    }
                }
                total
            })
        });
        // Criterion's last calls are its samples; those before warmed up (with one adapter,
        // two, four... in `short`, too few to spread a wake-up over).
        if let Some(&from) = calls.iter().rev().nth(WARM_SAMPLES - 1).or(calls.first()) {
            row.samples.drain(..from);
            rows.push(row);
            settle();
        }
    }
    group.finish();
    rows
}

/// One child process per run, interleaved across contenders: each contender gets at least
/// `COLD_RUNS.0` children, then more while its children have taken less than `COLD_BUDGET`
/// in all, up to `COLD_RUNS.1` (3 in a smoke run).
fn cold(workload: Workload, contenders: &[Contender], sizes: &Sizes) -> Vec<Row> {
    if contenders.is_empty() {
        return Vec::new();
    }
    let (min, max) = if smoke() { (3, 3) } else { COLD_RUNS };
    let want = expected(workload, sizes);
    let units = workload.unit(sizes).1;
    let mut rows: Vec<(Row, Duration)> = contenders
        .iter()
        .map(|&c| (Row::new(workload, "cold", c), Duration::ZERO))
        .collect();
    for round in 0..max {
        for (row, spent) in &mut rows {
            if round >= min && *spent >= COLD_BUDGET {
                continue;
            }
            let started = Instant::now();
            let out = spawn_child(workload, row.contender, sizes);
            *spent += started.elapsed();
            row.record(&out, units, &want);
        }
    }
    rows.into_iter().map(|(row, _)| row).collect()
}

/// Runs one child to its end; kills it and exits (code 3) if it outlives the watchdog's
/// limit (`LPM_BENCH_WATCHDOG_S`, default 180 s), so that a hang leaves no process behind.
///
/// This process blocks in the wait while the child runs, and the watchdog thread sleeps
/// until the limit: nothing of ours wakes during a measurement. (Polling the child every
/// millisecond, as this did before, put a wake-up a millisecond on the child's two cores,
/// which weighed on the contenders with more threads: `short`'s cold figure for
/// `lpm-default` was 16.6 to 20.1 µs in three runs against 12 to 14 µs from a shell.)
fn spawn_child(workload: Workload, contender: Contender, sizes: &Sizes) -> Run {
    let spec = format!(
        "{}:{}:{}",
        workload.name(),
        contender.name(),
        sizes.encode()
    );
    let limit = std::env::var("LPM_BENCH_WATCHDOG_S")
        .ok()
        .and_then(|s| s.parse().ok())
        .map_or(Duration::from_secs(180), Duration::from_secs);
    let exe = std::env::current_exe().expect("current exe");
    let child = Command::new(exe)
        .env(CHILD_ENV, &spec)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start a child");
    let (pid, name) = (child.id(), spec.clone());
    let (done, finished) = std::sync::mpsc::channel::<()>();
    let watchdog = std::thread::spawn(move || {
        if let Err(RecvTimeoutError::Timeout) = finished.recv_timeout(limit) {
            eprintln!("\nbench watchdog: child `{name}` has run for {limit:?}: a hang? exiting");
            kill(pid);
            std::process::exit(3);
        }
    });
    let out = child.wait_with_output().expect("read the child's output");
    drop(done);
    watchdog.join().expect("the child's watchdog");
    let v = common::child_numbers(&out, &format!("fixed child {spec}"));
    Run {
        elapsed: Duration::from_nanos(v[0]),
        check: Check {
            count: v[1],
            ordered: v[2],
            sum: v[3],
        },
        peak_threads: Some(v[4]).filter(|&n| n > 0),
    }
}

/// Kills process `pid` (a hung child) before the bench exits.
fn kill(pid: u32) {
    #[cfg(unix)]
    let _ = Command::new("kill").arg("-9").arg(pid.to_string()).status();
    #[cfg(not(unix))]
    let _ = Command::new("taskkill")
        .args(["/F", "/PID", &pid.to_string()])
        .status();
}

/// The child: one run, printed as `elapsed_ns count ordered sum peak_threads` (0: unknown).
fn child(spec: &str) {
    let mut parts = spec.splitn(3, ':');
    let mut field = || parts.next().expect("workload:contender:sizes");
    let (workload, contender) = (field(), field());
    let workload = *Workload::ALL
        .iter()
        .find(|w| w.name() == workload)
        .expect("a workload");
    let contender = *Contender::ALL
        .iter()
        .find(|c| c.name() == contender)
        .expect("a contender");
    let sizes = Sizes::decode(field());
    if workload != Workload::First {
        // Build the pool and start its threads before the clock starts.
        rayon::broadcast(|_| ());
    }
    let out = run(workload, contender, &sizes);
    println!(
        "{} {} {} {} {}",
        out.elapsed.as_nanos(),
        out.check.count,
        out.check.ordered,
        out.check.sum,
        out.peak_threads.unwrap_or(0)
    );
}

// ---------------------------------------------------------------------------------------
// The summary
// ---------------------------------------------------------------------------------------

fn main() {
    if let Ok(spec) = std::env::var(CHILD_ENV) {
        child(&spec);
        return;
    }
    let mut c = common::criterion();
    let sizes = Sizes::new();
    let mut rows = Vec::new();
    for workload in Workload::ALL {
        let warm = warm(&mut c, workload, &sizes);
        // Cold mode for the contenders criterion ran (a command-line filter skips others).
        let ran: Vec<Contender> = warm.iter().map(|r| r.contender).collect();
        rows.extend(warm);
        rows.extend(cold(workload, &ran, &sizes));
    }
    c.final_summary();
    summarize(&rows, &sizes);
}

fn summarize(rows: &[Row], sizes: &Sizes) {
    let machine = common::machine();
    let command = std::env::args().collect::<Vec<_>>().join(" ");
    let run_at = common::unix_time();
    println!(
        "\n== fixed summary ({machine}; rayon global pool {} threads{}) ==",
        sizes.threads,
        if smoke() { "; smoke run" } else { "" }
    );
    println!(
        "f ~ 0.5 us = {} mix rounds; short: {} adapters x {SHORT_ITEMS}; live: {} x \
         {LIVE_ITEMS}, buffer {LIVE_BUFFER}; nested: {NESTED_OUTER} x {}; tiny: {} items",
        sizes.rounds,
        sizes.short_adapters,
        sizes.live_adapters,
        sizes.nested_items,
        sizes.tiny_items
    );
    println!(
        "{:<12} {:<5} {:<12} {:>8} {:>11} {:>7} {:>6} {:>8}",
        "workload", "mode", "contender", "per", "median", "vs ref", "eff", "threads"
    );
    let med = |w: Workload, mode: &str, c: Contender| {
        rows.iter()
            .find(|r| (r.workload, r.mode, r.contender) == (w, mode, c))
            .map(|r| median(&r.samples))
    };
    let mut lines = Vec::new();
    let mut wrong = false;
    for row in rows {
        let (unit, _) = row.workload.unit(sizes);
        let m = median(&row.samples);
        let reference = med(row.workload, row.mode, row.workload.contenders()[0]);
        let ratio = reference.map(|r| r.as_secs_f64() / m.as_secs_f64());
        let efficiency = match row.workload {
            Workload::Nested | Workload::NestedCheap => ratio.map(|r| r / sizes.threads as f64),
            _ => None,
        };
        wrong |= row.wrong > 0;
        let line = format!(
            "{:<12} {:<5} {:<12} {:>8} {:>11} {:>7} {:>6} {:>8}",
            row.workload.name(),
            row.mode,
            row.contender.name(),
            unit,
            common::fmt_duration(m),
            ratio.map_or("-".into(), |r| format!("{r:.2}x")),
            efficiency.map_or("-".into(), |e| format!("{:.0}%", e * 100.0)),
            row.peak_threads.map_or("-".into(), |t| t.to_string()),
        );
        match row.wrong {
            0 => println!("{line}"),
            n => println!("{line}  WRONG OUTPUT in {n} of {} runs", row.samples.len()),
        }
        lines.push(json_line(&[
            (
                "key",
                format!(
                    "fixed/{}/{}/{}",
                    row.workload.name(),
                    row.mode,
                    row.contender.name()
                )
                .into(),
            ),
            ("bench", "fixed".into()),
            ("workload", row.workload.name().into()),
            ("mode", row.mode.into()),
            ("contender", row.contender.name().into()),
            ("unit", unit.into()),
            ("median_ns", (m.as_nanos() as u64).into()),
            ("min_ns", common::min_ns(&row.samples).into()),
            ("samples", row.samples.len().into()),
            ("adapters", row.workload.shape(sizes).0.into()),
            ("adapter_items", row.workload.shape(sizes).1.into()),
            ("ratio", ratio.into()),
            ("efficiency", efficiency.into()),
            ("threads", sizes.threads.into()),
            (
                "peak_threads",
                row.peak_threads.map_or(Json::Null, Json::from),
            ),
            ("ok", (row.wrong == 0).into()),
            ("rounds", u64::from(sizes.rounds).into()),
            ("quick", common::quick().into()),
            ("smoke", smoke().into()),
            ("machine", machine.as_str().into()),
            ("command", command.as_str().into()),
            ("run_at", run_at.into()),
        ]));
    }
    for workload in [Workload::Nested, Workload::NestedCheap] {
        for mode in ["warm", "cold"] {
            let eff = |c| med(workload, mode, c);
            if let (Some(lpm), Some(bridge)) = (eff(Contender::Lpm), eff(Contender::ParBridge)) {
                println!(
                    "{} {mode}: lpm-default efficiency / par_bridge efficiency = {:.2}",
                    workload.name(),
                    bridge.as_secs_f64() / lpm.as_secs_f64()
                );
            }
        }
    }
    common::write_summary(&lines);
    if wrong {
        eprintln!("some contender produced WRONG OUTPUT (see above)");
        std::process::exit(1);
    }
}
