//! Randomized stress: thousands of seeded cases over the whole configuration space, each
//! checked against the sequential result and the contract.
//!
//! Every case draws a buffer (1..=64, or unbounded), a pool (1..=8 threads, built once and
//! reused), a source (0..5000 items, or endless with an early drop), latencies in the source,
//! `f` and the consumer (mostly none, sometimes a spin of a few µs, rarely a sleep of up to
//! 1 ms), a panic in `f` and/or the source at a random position, a consumer that drops the
//! adapter at a random point, completion order, and whether the consumer runs inside the
//! pool (`pool.install`). Some cases add a source that blocks mid-stream after a fast
//! warm-up (a socket waiting for the answers to what it sent: it blocks until the consumer
//! has every item pulled before), results whose `Drop` panics (where the adapter drops them),
//! or (with the `stream` feature) a consumer that polls the adapter as a `Stream` on the
//! only worker of a one-thread pool; one case in five maps with `lazy_par_map_init`, whose
//! `f` fails the case if its per-thread state is ever used by two calls at once. Each case
//! checks:
//!
//! - the output is the sequential result, or its prefix up to the first panic, which then
//!   comes with the same payload (then `None`); a panicking `Drop` of a result never
//!   replaces it, and comes out of `drop(adapter)` or nowhere;
//! - items already pulled never wait for a later pull: a blocked pull does not hold back
//!   the items before it;
//! - the bound: at each pull, `taken - returned <= buffer` (a `next()` under way may already
//!   have freed its slot, so while the consumer is inside `next()` one more is allowed);
//! - after the drop, the source is pulled at most once more (a pull already under way);
//! - every item made (by the source or by `f`) is dropped exactly once, once the adapter's
//!   threads are done (`f` and the source are dropped);
//! - no deadlock: a watchdog ends the process if a case runs over [`CASE_LIMIT`];
//! - no thread left behind: the process's thread count returns to its baseline.
//!
//! A second test runs the **many live adapters** shape: each case builds hundreds to a few
//! thousand adapters at once (300..=3000 in release builds, 50..=400 in debug builds),
//! half of them started at once, with random buffers (mostly small), sources of a few to a
//! few hundred items or endless, and consumes them round-robin on one thread: a few items
//! from each in turn, now and then a long run, some adapters paused for a few passes (they
//! must fill up and wait), some dropped mid-stream, some whose source blocks for up to
//! 20 ms, some panicking in `f` or in the source. Every adapter is checked by the rules
//! above, and the thread count returns to its baseline at the end. The two tests run one
//! at a time (each counts the process's threads).
//!
//! `LPM_STRESS_CASES=n` sets the number of cases; `LPM_STRESS_SEED=s` the first seed (case
//! `k` uses seed `s + k`, and a failure prints it). `LPM_STRESS_MANY_CASES=n` sets the
//! number of many-adapters cases (by default one per thousand cases, at least one), which
//! take their seeds the same way. `LPM_STRESS_TRACE=1` prints each case to stderr before it
//! runs, for a failure (an abort) that ends the process before any report.

use lazy_par_map::prelude::*;
use lazy_par_map::LazyParMap;
use std::any::Any;
use std::panic::{catch_unwind, panic_any, AssertUnwindSafe};
use std::sync::atomic::Ordering::SeqCst;
use std::sync::atomic::{AtomicBool, AtomicUsize};
use std::sync::{Arc, Mutex, MutexGuard, Once, OnceLock};
use std::time::{Duration, Instant};

/// Cases run without `LPM_STRESS_CASES`: about 30 s on two cores, release or debug.
const DEFAULT_CASES: u64 = 10_000;
/// The longest a case may run before the watchdog calls it a deadlock.
const CASE_LIMIT: Duration = Duration::from_secs(60);
/// How long a case's threads may take to finish after the adapter is dropped.
const SETTLE_LIMIT: Duration = Duration::from_secs(10);
/// Payloads of the panics raised on purpose start with this; the panic hook skips them.
const STRESS_PANIC: &str = "stress:";

// ---- a seeded generator ---------------------------------------------------------------

/// `splitmix64`: the case's choices, and per-item latencies that do not depend on timing.
fn mix(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
    x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    x ^ (x >> 31)
}

struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = mix(self.0);
        self.0
    }
    /// Uniform in `0..n`.
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
    /// `true` with probability `percent`%.
    fn chance(&mut self, percent: u64) -> bool {
        self.below(100) < percent
    }
}

// ---- a case ----------------------------------------------------------------------------

/// Delays at one stage (source, `f`, consumer), drawn per item from the item's index.
#[derive(Clone, Copy, Debug)]
enum Latency {
    None,
    /// One item in eight spins 1..=5 µs.
    Spin,
    /// As `Spin`, and one item in two hundred sleeps up to 1 ms.
    Sleep,
}

impl Latency {
    fn draw(rng: &mut Rng) -> Self {
        match rng.below(100) {
            0..=69 => Latency::None,
            70..=94 => Latency::Spin,
            _ => Latency::Sleep,
        }
    }

    fn apply(self, seed: u64, stage: u64, index: usize) {
        if let Latency::None = self {
            return;
        }
        let roll = mix(seed ^ (stage << 56) ^ index as u64);
        if let Latency::Sleep = self {
            if roll % 200 == 0 {
                std::thread::sleep(Duration::from_micros(roll % 1000));
                return;
            }
        }
        if (roll >> 8) % 8 == 0 {
            let until = Instant::now() + Duration::from_micros(1 + (roll >> 16) % 5);
            while Instant::now() < until {
                std::hint::spin_loop();
            }
        }
    }
}

#[derive(Clone, Debug)]
struct Case {
    seed: u64,
    /// `None`: unbounded.
    buffer: Option<usize>,
    /// Index into the pools: `pool + 1` threads.
    pool: usize,
    /// `None`: endless (then `drop_at` is set).
    len: Option<usize>,
    /// The consumer drops the adapter after this many items.
    drop_at: Option<usize>,
    f_panic_at: Option<usize>,
    source_panic_at: Option<usize>,
    source_latency: Latency,
    f_latency: Latency,
    consumer_latency: Latency,
    /// The consumer runs on a worker of the pool it maps on.
    install: bool,
    unordered: bool,
    /// At these pulls (after a fast warm-up) the source blocks until the consumer has
    /// every item before (or has stopped).
    stalls: Vec<usize>,
    /// At this pull the source sleeps this many milliseconds: a source blocked for a
    /// while, whatever the consumer does (many-adapters cases only).
    block: Option<(usize, u64)>,
    /// Some results that the adapter drops (the consumer's are defused) panic in `Drop`.
    bombs: bool,
    /// The consumer polls the adapter as a `Stream` on the only worker of the one-thread
    /// pool (`stream` feature).
    stream: bool,
    /// The adapter is `lazy_par_map_init`: `f` also checks that its per-thread state is
    /// never used by two calls at once.
    init: bool,
}

impl Case {
    fn draw(seed: u64, pools: usize) -> Self {
        let mut rng = Rng(seed);
        let buffer = if rng.chance(12) {
            None
        } else {
            Some(1 + rng.below(64) as usize)
        };
        let endless = buffer.is_some() && rng.chance(8);
        let len = if endless {
            None
        } else {
            Some(match rng.below(100) {
                0..=49 => rng.below(100),
                50..=84 => rng.below(1000),
                _ => rng.below(5001),
            } as usize)
        };
        let span = len.unwrap_or(2000) as u64 + 1;
        let drop_at = if endless || rng.chance(30) {
            Some(rng.below(span) as usize)
        } else {
            None
        };
        let unordered = rng.chance(15);
        // In completion order a panic may come before any earlier item: no prefix to check.
        let f_panic_at = (!unordered && rng.chance(20)).then(|| rng.below(span) as usize);
        let source_panic_at = (!unordered && rng.chance(15)).then(|| rng.below(span) as usize);
        let mut case = Case {
            seed,
            buffer,
            pool: rng.below(pools as u64) as usize,
            len,
            drop_at,
            f_panic_at,
            source_panic_at,
            source_latency: Latency::draw(&mut rng),
            f_latency: Latency::draw(&mut rng),
            consumer_latency: Latency::draw(&mut rng),
            install: rng.chance(25),
            unordered,
            stalls: Vec::new(),
            block: None,
            bombs: false,
            stream: false,
            init: false,
        };
        // The new shapes are drawn last, so that earlier seeds keep their other choices.
        if rng.chance(15) {
            // In the second half of the source, after a warm-up that makes jobs large.
            let stalls = 1 + rng.below(3);
            case.stalls = (0..stalls)
                .map(|_| (span / 2 + rng.below(span - span / 2)) as usize)
                .collect();
            case.stalls.sort_unstable();
        }
        case.bombs = case.drop_at.is_some() && rng.chance(25);
        case.stream = rng.chance(12) && cfg!(feature = "stream");
        if case.stream {
            case.pool = 0;
            case.install = true;
        }
        case.init = rng.chance(20);
        case
    }

    /// What the consumer must see: the items' indices, then the panic payload if one comes
    /// first.
    fn expected(&self) -> (Vec<usize>, Option<String>) {
        let len = self.len.unwrap_or(usize::MAX);
        // The source checks its panic before its end; `f` sees only items before the end.
        let source_panic = self.source_panic_at.filter(|&at| at <= len);
        let f_panic = self.f_panic_at.filter(|&at| at < len);
        let stop = [Some(len), source_panic, f_panic]
            .into_iter()
            .flatten()
            .min();
        let stop = stop.unwrap_or(len);
        let shown = self.drop_at.map_or(stop, |at| at.min(stop));
        let values = (0..shown).collect();
        let payload = if self.drop_at.is_some_and(|at| at <= stop) {
            None
        } else if source_panic == Some(stop) {
            Some(format!("{STRESS_PANIC} source panics at {stop}"))
        } else if f_panic == Some(stop) {
            Some(format!("{STRESS_PANIC} f panics at {stop}"))
        } else {
            None
        };
        (values, payload)
    }
}

/// `f` of the sequential result.
fn value(i: u64) -> u64 {
    mix(i)
}

// ---- what a case observes --------------------------------------------------------------

#[derive(Default)]
struct Probe {
    /// Calls of the source's `next()` begun.
    pulls: AtomicUsize,
    /// `next()` calls of the consumer that returned an item.
    returned: AtomicUsize,
    /// The consumer is inside `next()`.
    in_next: AtomicBool,
    /// The consumer has stopped taking items.
    consumer_done: AtomicBool,
    /// Items (inputs and results) made and dropped.
    made: AtomicUsize,
    dropped: AtomicUsize,
    /// `f` and the source have been dropped: the adapter's threads are done with them.
    f_gone: AtomicBool,
    source_gone: AtomicBool,
    /// The first broken rule seen by the source.
    violation: Mutex<Option<String>>,
}

/// A value counted in `made` and `dropped`.
struct Counted(Arc<Probe>);

impl Counted {
    fn new(probe: &Arc<Probe>) -> Self {
        probe.made.fetch_add(1, SeqCst);
        Counted(Arc::clone(probe))
    }
}

impl Drop for Counted {
    fn drop(&mut self) {
        self.0.dropped.fetch_add(1, SeqCst);
    }
}

/// Sets a flag when dropped.
struct DropFlag(Arc<Probe>, fn(&Probe) -> &AtomicBool);

impl Drop for DropFlag {
    fn drop(&mut self) {
        (self.1)(&self.0).store(true, SeqCst);
    }
}

struct Input {
    index: usize,
    _counted: Counted,
}

struct Output {
    index: usize,
    value: u64,
    /// Panics when dropped (after counting the drop), unless the consumer defused it.
    bomb: bool,
    probe: Arc<Probe>,
}

impl Output {
    fn new(probe: &Arc<Probe>, index: usize, value: u64, bomb: bool) -> Self {
        probe.made.fetch_add(1, SeqCst);
        Output {
            index,
            value,
            bomb,
            probe: Arc::clone(probe),
        }
    }
}

impl Drop for Output {
    fn drop(&mut self) {
        self.probe.dropped.fetch_add(1, SeqCst);
        if self.bomb {
            panic_any(format!(
                "{STRESS_PANIC} result {}'s Drop panics",
                self.index
            ));
        }
    }
}

/// How long a blocked source waits for the consumer to take every item before the block.
const STALL_LIMIT: Duration = Duration::from_secs(5);

struct Source {
    case: Case,
    next: usize,
    probe: Arc<Probe>,
    _gone: DropFlag,
}

impl Iterator for Source {
    type Item = Input;

    fn next(&mut self) -> Option<Input> {
        let probe = &self.probe;
        let taken = probe.pulls.fetch_add(1, SeqCst) + 1;
        if let Some(cap) = self.case.buffer {
            // `in_next` first: while it is false, `returned` is the consumer's true count.
            let busy = usize::from(probe.in_next.load(SeqCst));
            let returned = probe.returned.load(SeqCst);
            if taken > cap + returned + busy {
                let mut violation = probe.violation.lock().unwrap();
                violation.get_or_insert(format!(
                    "bound broken: taken {taken}, returned {returned}, in next() {busy}, \
                     buffer {cap}"
                ));
            }
        }
        let index = self.next;
        if self.case.stalls.contains(&index) {
            // A socket that waits for the answers to what it sent: every item pulled so far
            // must reach the consumer while this pull blocks.
            let deadline = Instant::now() + STALL_LIMIT;
            while probe.returned.load(SeqCst) < index && !probe.consumer_done.load(SeqCst) {
                if Instant::now() > deadline {
                    let mut violation = probe.violation.lock().unwrap();
                    violation.get_or_insert(format!(
                        "items held back: the source blocked at item {index} and the consumer \
                         got only {} of the {index} items before it within {STALL_LIMIT:?}",
                        probe.returned.load(SeqCst)
                    ));
                    break;
                }
                std::thread::sleep(Duration::from_micros(50));
            }
        }
        if let Some((at, millis)) = self.case.block {
            if at == index {
                std::thread::sleep(Duration::from_millis(millis));
            }
        }
        self.case.source_latency.apply(self.case.seed, 1, index);
        if self.case.source_panic_at == Some(index) {
            panic_any(format!("{STRESS_PANIC} source panics at {index}"));
        }
        if self.case.len == Some(index) {
            return None;
        }
        self.next += 1;
        Some(Input {
            index,
            _counted: Counted::new(probe),
        })
    }
}

// ---- running a case --------------------------------------------------------------------

fn run_case(case: &Case, pools: &[Arc<rayon::ThreadPool>]) -> Outcome {
    let probe = Arc::new(Probe::default());
    let (source, f) = parts(case, &probe);
    let pool = &pools[case.pool];
    if case.init {
        // The state is a flag: set while a call uses it, so a shared state shows at once.
        let init = || AtomicBool::new(false);
        let adapter = source.lazy_par_map_init(init, move |in_use: &mut AtomicBool, input| {
            assert!(
                !in_use.swap(true, SeqCst),
                "{STRESS_PANIC} a state used by two calls at once"
            );
            let out = catch_unwind(AssertUnwindSafe(|| f(input)));
            in_use.store(false, SeqCst);
            out.unwrap_or_else(|payload| std::panic::resume_unwind(payload))
        });
        let adapter = configure(adapter.pool(Arc::clone(pool)), case);
        run_consumer(adapter, case, &probe, pool)
    } else {
        let adapter = configure(source.lazy_par_map(f).pool(Arc::clone(pool)), case);
        run_consumer(adapter, case, &probe, pool)
    }
}

/// The case's source and `f`, reporting to `probe`.
fn parts(
    case: &Case,
    probe: &Arc<Probe>,
) -> (Source, impl Fn(Input) -> Output + Send + Sync + 'static) {
    let source = Source {
        case: case.clone(),
        next: 0,
        probe: Arc::clone(probe),
        _gone: DropFlag(Arc::clone(probe), |p| &p.source_gone),
    };
    let f = {
        let (case, probe) = (case.clone(), Arc::clone(probe));
        let gone = DropFlag(Arc::clone(&probe), |p| &p.f_gone);
        move |input: Input| {
            let _gone = &gone;
            case.f_latency.apply(case.seed, 2, input.index);
            if case.f_panic_at == Some(input.index) {
                panic_any(format!("{STRESS_PANIC} f panics at {}", input.index));
            }
            let bomb = case.bombs && mix(case.seed ^ 0xb0b ^ input.index as u64) % 4 == 0;
            Output::new(&probe, input.index, value(input.index as u64), bomb)
        }
    };
    (source, f)
}

/// The case's buffer and order.
fn configure<F>(
    adapter: LazyParMap<Source, F, Output>,
    case: &Case,
) -> LazyParMap<Source, F, Output>
where
    F: lazy_par_map::MapFn<Input, Output = Output> + Send + Sync + 'static,
{
    let adapter = match case.buffer {
        Some(n) => adapter.buffer(n),
        None => adapter.unbounded(),
    };
    if case.unordered {
        adapter.unordered()
    } else {
        adapter
    }
}

/// Consumes `adapter` as the case says (inside the pool if `install`) and reports.
fn run_consumer<A>(adapter: A, case: &Case, probe: &Arc<Probe>, pool: &rayon::ThreadPool) -> Outcome
where
    A: Consumed + Send,
{
    let consume = || {
        let mut adapter = adapter;
        let next = |adapter: &mut _| take_next(adapter, case.stream);
        let mut got = Vec::new();
        let mut panic = None;
        let mut after_panic = None;
        while case.drop_at != Some(got.len()) {
            probe.in_next.store(true, SeqCst);
            let result = catch_unwind(AssertUnwindSafe(|| next(&mut adapter)));
            if let Ok(Some(_)) = result {
                probe.returned.fetch_add(1, SeqCst);
            }
            probe.in_next.store(false, SeqCst);
            match result {
                Ok(Some(mut output)) => {
                    output.bomb = false;
                    got.push((output.index, output.value));
                }
                Ok(None) => break,
                Err(payload) => {
                    panic = Some(payload);
                    let again = catch_unwind(AssertUnwindSafe(|| next(&mut adapter)));
                    after_panic = Some(match again {
                        Ok(output) => Ok(output.map(|mut output| {
                            output.bomb = false;
                            output.index
                        })),
                        Err(payload) => Err(payload_text(&*payload).map(str::to_owned)),
                    });
                    break;
                }
            }
            case.consumer_latency.apply(case.seed, 3, got.len());
        }
        probe.consumer_done.store(true, SeqCst);
        let started = Instant::now();
        let drop_panic = catch_unwind(AssertUnwindSafe(move || drop(adapter)))
            .err()
            .map(|payload| payload_text(&*payload).map(str::to_owned));
        let drop_took = started.elapsed();
        let pulls_at_drop = probe.pulls.load(SeqCst);
        Outcome {
            got,
            panic,
            after_panic,
            drop_panic,
            drop_took,
            pulls_at_drop,
            probe: Arc::clone(probe),
        }
    };
    if case.install {
        pool.install(consume)
    } else {
        consume()
    }
}

/// What the consumer needs of an adapter: an `Iterator`, and a `Stream` with the feature.
#[cfg(feature = "stream")]
trait Consumed: Iterator<Item = Output> + futures::Stream<Item = Output> + Unpin {}
#[cfg(feature = "stream")]
impl<A: Iterator<Item = Output> + futures::Stream<Item = Output> + Unpin> Consumed for A {}
#[cfg(not(feature = "stream"))]
trait Consumed: Iterator<Item = Output> {}
#[cfg(not(feature = "stream"))]
impl<A: Iterator<Item = Output>> Consumed for A {}

/// The next result, taken as an `Iterator`, or as a `Stream` in a `stream` case
/// (`block_on` on a worker of the pool: its poll must run the pool's work itself).
#[cfg(feature = "stream")]
fn take_next<A>(adapter: &mut A, as_stream: bool) -> Option<<A as Iterator>::Item>
where
    A: Iterator + futures::Stream<Item = <A as Iterator>::Item> + Unpin,
{
    if as_stream {
        futures::executor::block_on(futures::StreamExt::next(adapter))
    } else {
        adapter.next()
    }
}

#[cfg(not(feature = "stream"))]
fn take_next<A: Iterator>(adapter: &mut A, _as_stream: bool) -> Option<A::Item> {
    adapter.next()
}

struct Outcome {
    /// Index and value of each item returned.
    got: Vec<(usize, u64)>,
    panic: Option<Box<dyn Any + Send>>,
    /// What `next()` returned after the panic (or the text of its own panic).
    after_panic: Option<Result<Option<usize>, Option<String>>>,
    /// The panic that came out of `drop(adapter)`, if any.
    drop_panic: Option<Option<String>>,
    drop_took: Duration,
    pulls_at_drop: usize,
    probe: Arc<Probe>,
}

fn payload_text(payload: &(dyn Any + Send)) -> Option<&str> {
    payload
        .downcast_ref::<String>()
        .map(String::as_str)
        .or_else(|| payload.downcast_ref::<&str>().copied())
}

/// Checks every rule for one case; `Err` says which was broken.
fn check_case(case: &Case, pools: &[Arc<rayon::ThreadPool>]) -> Result<(), String> {
    check_outcome(case, run_case(case, pools))
}

/// Checks every rule against what the consumer of `case` saw; `Err` says which was broken.
fn check_outcome(case: &Case, outcome: Outcome) -> Result<(), String> {
    let (expected, payload) = case.expected();
    if let Some(&(index, v)) = outcome.got.iter().find(|&&(i, v)| v != value(i as u64)) {
        return Err(format!(
            "item {index}: value {v}, expected {}",
            value(index as u64)
        ));
    }
    let mut indices: Vec<usize> = outcome.got.iter().map(|&(index, _)| index).collect();
    if case.unordered {
        // In completion order an early drop may have returned any items: the check is
        // that they are distinct source items, as many as asked for.
        indices.sort_unstable();
        indices.dedup();
        if indices.len() != outcome.got.len() {
            return Err("an item was returned twice".into());
        }
        let from_source = match (indices.last(), case.len) {
            (Some(&last), Some(len)) => last < len,
            _ => true,
        };
        if case.drop_at.is_some() && from_source {
            indices = (0..indices.len()).collect();
        }
    }
    if indices != expected {
        let first_diff = indices.iter().zip(&expected).position(|(a, b)| a != b);
        return Err(format!(
            "output differs: got {} items, expected {}, first difference at {first_diff:?}",
            indices.len(),
            expected.len()
        ));
    }
    match (&outcome.panic, &payload) {
        (None, None) => {}
        (Some(got), Some(want)) => {
            if payload_text(&**got) != Some(want.as_str()) {
                return Err(format!(
                    "panic payload {:?}, expected {want:?}",
                    payload_text(&**got)
                ));
            }
            if outcome.after_panic != Some(Ok(None)) {
                return Err(format!(
                    "next() after the panic gave {:?}",
                    outcome.after_panic
                ));
            }
        }
        (got, want) => {
            return Err(format!(
                "panic {:?}, expected {want:?}",
                got.as_ref().map(|p| payload_text(&**p))
            ))
        }
    }
    if let Some(text) = &outcome.drop_panic {
        let from_a_bomb = case.bombs
            && text
                .as_deref()
                .is_some_and(|t| t.starts_with(STRESS_PANIC) && t.ends_with("Drop panics"));
        if !from_a_bomb {
            return Err(format!("drop(adapter) panicked: {text:?}"));
        }
    }
    if outcome.drop_took > Duration::from_millis(500) {
        return Err(format!("drop took {:?}", outcome.drop_took));
    }
    // The adapter's threads let go of `f` and the source once they are done.
    let probe = &outcome.probe;
    let deadline = Instant::now() + SETTLE_LIMIT;
    while !(probe.f_gone.load(SeqCst) && probe.source_gone.load(SeqCst)) {
        if Instant::now() > deadline {
            return Err(format!(
                "the adapter's threads did not finish within {SETTLE_LIMIT:?} after drop \
                 (f dropped: {}, source dropped: {})",
                probe.f_gone.load(SeqCst),
                probe.source_gone.load(SeqCst)
            ));
        }
        std::thread::sleep(Duration::from_micros(50));
    }
    if let Some(violation) = probe.violation.lock().unwrap().take() {
        return Err(violation);
    }
    let pulls = probe.pulls.load(SeqCst);
    if pulls > outcome.pulls_at_drop + 1 {
        return Err(format!(
            "source pulled after drop: {} pulls at drop, {pulls} in the end",
            outcome.pulls_at_drop
        ));
    }
    let (made, dropped) = (probe.made.load(SeqCst), probe.dropped.load(SeqCst));
    if made != dropped {
        return Err(format!("items made {made}, dropped {dropped}"));
    }
    Ok(())
}

// ---- many live adapters at once ---------------------------------------------------------

/// Adapters alive at once in a many-adapters case, at least and at most: fewer in debug
/// builds, so that `cargo test` stays fast.
const MANY_ADAPTERS: (u64, u64) = if cfg!(debug_assertions) {
    (50, 400)
} else {
    (300, 3_000)
};
/// About how many items the adapters of a many-adapters case share.
const MANY_ITEMS: u64 = if cfg!(debug_assertions) {
    4_000
} else {
    40_000
};

impl Case {
    /// One adapter of a many-adapters case: ordered, on one of the pools, consumed on the
    /// test thread; sometimes dropped mid-stream, panicking in `f` or in the source, or with
    /// a source that blocks for a while. No stalls that wait for the consumer: it may pause
    /// this adapter for longer than a stall may last.
    fn draw_live(seed: u64, pools: usize, mean_len: u64) -> Self {
        let mut rng = Rng(seed);
        // Mostly small buffers, so that most adapters stay live, not fed to their end.
        let buffer = match rng.below(100) {
            0..=4 => None,
            5..=64 => Some(1 + rng.below(8) as usize),
            _ => Some(1 + rng.below(64) as usize),
        };
        let endless = buffer.is_some() && rng.chance(8);
        let len = (!endless).then(|| rng.below(2 * mean_len + 1) as usize);
        let span = len.unwrap_or(2 * mean_len as usize) as u64 + 1;
        let drop_at = (endless || rng.chance(20)).then(|| rng.below(span) as usize);
        let f_panic_at = rng.chance(12).then(|| rng.below(span) as usize);
        let source_panic_at = rng.chance(6).then(|| rng.below(span) as usize);
        let block = rng
            .chance(6)
            .then(|| (rng.below(span) as usize, 1 + rng.below(20)));
        let bombs = drop_at.is_some() && rng.chance(15);
        Case {
            seed,
            buffer,
            pool: rng.below(pools as u64) as usize,
            len,
            drop_at,
            f_panic_at,
            source_panic_at,
            source_latency: Latency::draw(&mut rng),
            f_latency: Latency::draw(&mut rng),
            consumer_latency: Latency::draw(&mut rng),
            install: false,
            unordered: false,
            stalls: Vec::new(),
            block,
            bombs,
            stream: false,
            init: false,
        }
    }
}

/// A many-adapters case: hundreds to thousands of adapters built together (half of them
/// started at once), consumed round-robin by one consumer that takes a few items from
/// each in turn (now and then a long run), pauses some for a few passes, and drops some
/// mid-stream.
struct ManyCase {
    seed: u64,
    adapters: Vec<Case>,
}

impl ManyCase {
    fn draw(seed: u64, pools: usize) -> Self {
        let mut rng = Rng(seed);
        let (least, most) = MANY_ADAPTERS;
        let count = least + rng.below(most - least + 1);
        let mean_len = (MANY_ITEMS / count).max(1);
        let base = rng.next();
        let adapters = (0..count)
            .map(|j| Case::draw_live(base.wrapping_add(j), pools, mean_len))
            .collect();
        ManyCase { seed, adapters }
    }
}

/// One adapter of a many-adapters case as the consumer keeps it: the adapter until it
/// ends, and what the consumer saw of it.
struct Live {
    adapter: Option<Box<dyn Iterator<Item = Output>>>,
    outcome: Outcome,
    /// The consumer leaves the adapter alone until this pass.
    paused_until: u64,
}

impl Live {
    /// Takes up to `want` items; at the case's drop point, the adapter's end or its panic,
    /// the consumer stops and drops the adapter.
    fn visit(&mut self, case: &Case, want: u64) {
        let Some(adapter) = self.adapter.as_mut() else {
            return;
        };
        let outcome = &mut self.outcome;
        let probe = &outcome.probe;
        let mut ended = false;
        for _ in 0..want {
            if case.drop_at == Some(outcome.got.len()) {
                ended = true;
                break;
            }
            probe.in_next.store(true, SeqCst);
            let result = catch_unwind(AssertUnwindSafe(|| adapter.next()));
            if let Ok(Some(_)) = result {
                probe.returned.fetch_add(1, SeqCst);
            }
            probe.in_next.store(false, SeqCst);
            match result {
                Ok(Some(mut output)) => {
                    output.bomb = false;
                    outcome.got.push((output.index, output.value));
                }
                Ok(None) => {
                    ended = true;
                    break;
                }
                Err(payload) => {
                    outcome.panic = Some(payload);
                    let again = catch_unwind(AssertUnwindSafe(|| adapter.next()));
                    outcome.after_panic = Some(match again {
                        Ok(output) => Ok(output.map(|mut output| {
                            output.bomb = false;
                            output.index
                        })),
                        Err(payload) => Err(payload_text(&*payload).map(str::to_owned)),
                    });
                    ended = true;
                    break;
                }
            }
            case.consumer_latency.apply(case.seed, 3, outcome.got.len());
        }
        if ended {
            self.finish();
        }
    }

    /// Drops the adapter, timing the drop.
    fn finish(&mut self) {
        let outcome = &mut self.outcome;
        outcome.probe.consumer_done.store(true, SeqCst);
        let adapter = self.adapter.take();
        let started = Instant::now();
        outcome.drop_panic = catch_unwind(AssertUnwindSafe(move || drop(adapter)))
            .err()
            .map(|payload| payload_text(&*payload).map(str::to_owned));
        outcome.drop_took = started.elapsed();
        outcome.pulls_at_drop = outcome.probe.pulls.load(SeqCst);
    }
}

/// Figures of one many-adapters case, for the summary.
#[derive(Default)]
struct ManyFigures {
    started: usize,
    pauses: usize,
    peak_threads: usize,
}

/// Builds every adapter of `many`, consumes them round-robin, and returns what the
/// consumer saw of each, in the order of `many.adapters`.
fn run_many(many: &ManyCase, pools: &[Arc<rayon::ThreadPool>]) -> (Vec<Outcome>, ManyFigures) {
    let mut rng = Rng(mix(many.seed ^ 0xc0_a5));
    let mut figures = ManyFigures::default();
    let mut lives: Vec<Live> = many
        .adapters
        .iter()
        .map(|case| {
            let probe = Arc::new(Probe::default());
            let (source, f) = parts(case, &probe);
            let adapter = configure(
                source.lazy_par_map(f).pool(Arc::clone(&pools[case.pool])),
                case,
            );
            let adapter = if rng.chance(50) {
                figures.started += 1;
                adapter.start()
            } else {
                adapter
            };
            Live {
                adapter: Some(Box::new(adapter)),
                outcome: Outcome {
                    got: Vec::new(),
                    panic: None,
                    after_panic: None,
                    drop_panic: None,
                    drop_took: Duration::ZERO,
                    pulls_at_drop: 0,
                    probe,
                },
                paused_until: 0,
            }
        })
        .collect();
    let (mut pass, mut visits, mut live) = (0, 0u64, lives.len());
    while live > 0 {
        for (state, case) in lives.iter_mut().zip(&many.adapters) {
            if state.adapter.is_none() || state.paused_until > pass {
                continue;
            }
            if rng.chance(8) {
                // The consumer leaves this one for a while: it must fill up and wait.
                state.paused_until = pass + 1 + rng.below(10);
                figures.pauses += 1;
                continue;
            }
            let want = if rng.chance(5) {
                1 + rng.below(64)
            } else {
                1 + rng.below(4)
            };
            state.visit(case, want);
            live -= usize::from(state.adapter.is_none());
            visits += 1;
            if visits % 256 == 0 {
                figures.peak_threads = figures.peak_threads.max(thread_count());
            }
        }
        pass += 1;
    }
    (
        lives.into_iter().map(|state| state.outcome).collect(),
        figures,
    )
}

// ---- the harness -------------------------------------------------------------------------

fn thread_count() -> usize {
    let status = std::fs::read_to_string("/proc/self/status").expect("/proc/self/status");
    status
        .lines()
        .find_map(|line| line.strip_prefix("Threads:"))
        .and_then(|n| n.trim().parse().ok())
        .expect("a Threads: line")
}

/// Waits until the thread count is back to `baseline`; returns the count seen last.
fn settle_threads(baseline: usize, limit: Duration) -> usize {
    let deadline = Instant::now() + limit;
    loop {
        let now = thread_count();
        if now <= baseline || Instant::now() > deadline {
            return now;
        }
        std::thread::sleep(Duration::from_millis(1));
    }
}

/// The case under way, for the watchdog.
static CURRENT: Mutex<Option<(Instant, String)>> = Mutex::new(None);

/// Starts (once per process) the thread that ends the process if a case runs too long.
fn start_watchdog() {
    static ONCE: Once = Once::new();
    ONCE.call_once(spawn_watchdog);
}

fn spawn_watchdog() {
    std::thread::Builder::new()
        .name("stress-watchdog".into())
        .spawn(|| loop {
            std::thread::sleep(Duration::from_millis(500));
            if let Some((started, case)) = &*CURRENT.lock().unwrap() {
                if started.elapsed() > CASE_LIMIT {
                    eprintln!("stress: deadlock? a case ran over {CASE_LIMIT:?}: {case}");
                    std::process::exit(3);
                }
            }
        })
        .unwrap();
}

fn quiet_stress_panics() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        let default = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            if !payload_text(info.payload()).is_some_and(|m| m.starts_with(STRESS_PANIC)) {
                default(info);
            }
        }));
    });
}

/// The pools the cases map on (1..=8 threads), built once per process with every thread
/// up, so that the baselines count them.
fn pools() -> &'static [Arc<rayon::ThreadPool>] {
    static POOLS: OnceLock<Vec<Arc<rayon::ThreadPool>>> = OnceLock::new();
    POOLS.get_or_init(|| {
        let pools: Vec<Arc<rayon::ThreadPool>> = (1..=8)
            .map(|threads| {
                let pool = rayon::ThreadPoolBuilder::new()
                    .num_threads(threads)
                    .thread_name(move |i| format!("stress-{threads}-{i}"))
                    .build()
                    .unwrap();
                Arc::new(pool)
            })
            .collect();
        for pool in &pools {
            pool.broadcast(|_| ());
        }
        pools
    })
}

/// The stress tests of this binary run one at a time: each counts the process's threads.
fn one_at_a_time() -> MutexGuard<'static, ()> {
    static LOCK: Mutex<()> = Mutex::new(());
    LOCK.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

fn env_u64(name: &str) -> Option<u64> {
    let value = std::env::var(name).ok()?;
    Some(
        value
            .parse()
            .unwrap_or_else(|_| panic!("{name} must be a number")),
    )
}

#[test]
fn random_cases_match_sequential_map_and_keep_the_contract() {
    let cases = env_u64("LPM_STRESS_CASES").unwrap_or(DEFAULT_CASES);
    let first_seed = env_u64("LPM_STRESS_SEED").unwrap_or(0x5eed);
    let trace = std::env::var_os("LPM_STRESS_TRACE").is_some();
    let _one = one_at_a_time();
    quiet_stress_panics();
    // Every pool's threads are up before the baseline is read.
    let pools = pools();
    start_watchdog();
    let baseline = thread_count();
    let started = Instant::now();
    let (mut panicked, mut dropped, mut installed, mut items) = (0, 0, 0, 0);
    let (mut stalled, mut bombed, mut streamed, mut inited) = (0, 0, 0, 0);
    for k in 0..cases {
        let case = Case::draw(first_seed.wrapping_add(k), pools.len());
        *CURRENT.lock().unwrap() = Some((Instant::now(), format!("{case:?}")));
        if trace {
            // An abort ends the process before any report: the last line names the case.
            eprintln!("stress: case {k}: {case:?}");
        }
        if let Err(broken) = check_case(&case, pools) {
            panic!(
                "case {k} (LPM_STRESS_SEED={}): {broken}\n{case:?}",
                case.seed
            );
        }
        let (expected, payload) = case.expected();
        items += expected.len();
        panicked += usize::from(payload.is_some());
        dropped += usize::from(case.drop_at.is_some());
        installed += usize::from(case.install);
        stalled += usize::from(!case.stalls.is_empty());
        bombed += usize::from(case.bombs);
        streamed += usize::from(case.stream);
        inited += usize::from(case.init);
        if k % 500 == 499 {
            let now = settle_threads(baseline, SETTLE_LIMIT);
            assert!(
                now <= baseline,
                "after case {k}: {now} threads, baseline {baseline}"
            );
        }
    }
    *CURRENT.lock().unwrap() = None;
    let now = settle_threads(baseline, SETTLE_LIMIT);
    assert!(now <= baseline, "{now} threads left, baseline {baseline}");
    println!(
        "stress: {cases} cases ({items} items yielded; {panicked} ending in a panic, \
         {dropped} dropped early, {installed} consumed inside the pool, {stalled} with a \
         blocking source, {bombed} with panicking drops, {streamed} as a Stream, {inited} \
         with per-thread state) in {:.1?}; \
         threads back to {now}",
        started.elapsed()
    );
}

/// The many-adapters shape: each case runs hundreds to thousands of adapters at once (see
/// [`ManyCase`]). `LPM_STRESS_MANY_CASES=n` sets the number of cases (by default one per
/// thousand of `LPM_STRESS_CASES`, at least one); case `k` uses seed `LPM_STRESS_SEED + k`
/// (the same seed draws fewer adapters in a debug build).
#[test]
fn many_live_adapters_at_once_match_sequential_map_and_keep_the_contract() {
    let cases = env_u64("LPM_STRESS_MANY_CASES")
        .unwrap_or_else(|| (env_u64("LPM_STRESS_CASES").unwrap_or(DEFAULT_CASES) / 1_000).max(1));
    let first_seed = env_u64("LPM_STRESS_SEED").unwrap_or(0x5eed);
    let trace = std::env::var_os("LPM_STRESS_TRACE").is_some();
    let _one = one_at_a_time();
    quiet_stress_panics();
    let pools = pools();
    start_watchdog();
    let baseline = thread_count();
    let started = Instant::now();
    let (mut adapters, mut most, mut items, mut panicked) = (0, 0, 0, 0);
    let (mut dropped, mut blocked, mut at_once, mut pauses, mut peak) = (0, 0, 0, 0, 0);
    for k in 0..cases {
        let seed = first_seed.wrapping_add(k);
        let many = ManyCase::draw(seed, pools.len());
        let count = many.adapters.len();
        let what = format!("many-adapters case {k} (LPM_STRESS_SEED={seed}), {count} adapters");
        *CURRENT.lock().unwrap() = Some((Instant::now(), what.clone()));
        if trace {
            eprintln!("stress: {what}");
        }
        let (outcomes, figures) = run_many(&many, pools);
        for (j, (case, outcome)) in many.adapters.iter().zip(outcomes).enumerate() {
            if let Err(broken) = check_outcome(case, outcome) {
                panic!("{what}, adapter {j}: {broken}\n{case:?}");
            }
            let (expected, payload) = case.expected();
            items += expected.len();
            panicked += usize::from(payload.is_some());
            dropped += usize::from(case.drop_at.is_some());
            blocked += usize::from(case.block.is_some());
        }
        adapters += count;
        most = most.max(count);
        at_once += figures.started;
        pauses += figures.pauses;
        peak = peak.max(figures.peak_threads);
    }
    *CURRENT.lock().unwrap() = None;
    let now = settle_threads(baseline, SETTLE_LIMIT);
    assert!(now <= baseline, "{now} threads left, baseline {baseline}");
    println!(
        "stress: {cases} many-adapters cases ({adapters} adapters, up to {most} in one case, \
         {at_once} started at once; {items} items yielded; {panicked} ending in a panic, \
         {dropped} dropped early, {blocked} with a source that blocks for a while, {pauses} \
         pauses) in {:.1?}; peak {peak} threads, baseline {baseline}; threads back to {now}",
        started.elapsed()
    );
}
