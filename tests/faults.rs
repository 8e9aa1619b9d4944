//! Faults in user code: an `f` or a source that blocks, panics that carry no string, a `Drop`
//! that panics, a consumer that panics, a pool dropped under the adapter. None of them may
//! make the adapter hang, abort the process, or lose track of its threads.
//!
//! The tests share one lock, since they count the process's feeder threads
//! (`lazy-par-map-feeder`, shown as `lazy-par-map-fe` in `/proc/self/task/*/comm`).

mod common;

use lazy_par_map::prelude::*;
use std::panic::{catch_unwind, panic_any, AssertUnwindSafe};
use std::sync::atomic::Ordering::SeqCst;
use std::sync::atomic::{AtomicBool, AtomicUsize};
use std::sync::mpsc;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

/// The longest any test here may take before it counts as a hang.
const HANG: Duration = Duration::from_secs(30);
/// How fast a drop must return, whatever user code is doing.
const PROMPT: Duration = Duration::from_secs(1);

/// One test at a time: they count feeder threads.
fn serial() -> MutexGuard<'static, ()> {
    static SERIAL: Mutex<()> = Mutex::new(());
    SERIAL
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Runs `body` on its own thread and fails if it does not finish within [`HANG`].
fn guarded<T: Send + 'static>(body: impl FnOnce() -> T + Send + 'static) -> T {
    let (done, finished) = mpsc::channel();
    let worker = std::thread::spawn(move || {
        let result = catch_unwind(AssertUnwindSafe(body));
        let _ = done.send(());
        result
    });
    if finished.recv_timeout(HANG).is_err() {
        panic!("hang: the test did not finish within {HANG:?}");
    }
    match worker.join().unwrap() {
        Ok(value) => value,
        Err(payload) => std::panic::resume_unwind(payload),
    }
}

/// The process's feeder threads now.
fn feeders() -> usize {
    let Ok(tasks) = std::fs::read_dir("/proc/self/task") else {
        return 0;
    };
    tasks
        .filter_map(|task| std::fs::read_to_string(task.ok()?.path().join("comm")).ok())
        .filter(|name| name.trim_end() == "lazy-par-map-fe")
        .count()
}

/// Waits until the feeder count is at most `want`; returns the count seen last. Feeding
/// threads are shared by every adapter and exit after a keep-alive of half a second with
/// nothing to do, so a count that stays above `want` is a feeding turn that never ended.
fn feeders_settle(want: usize) -> usize {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let now = feeders();
        if now <= want || Instant::now() > deadline {
            return now;
        }
        std::thread::sleep(Duration::from_millis(1));
    }
}

fn pool(threads: usize) -> Arc<rayon::ThreadPool> {
    Arc::new(
        rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .build()
            .unwrap(),
    )
}

/// Keeps the panics raised on purpose (payloads starting with `fault:`) off stderr.
fn quiet_fault_panics() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        let default = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            let payload = info.payload();
            let text = payload
                .downcast_ref::<&str>()
                .copied()
                .or_else(|| payload.downcast_ref::<String>().map(String::as_str));
            let on_purpose = text.is_some_and(|t| t.starts_with("fault:"))
                || payload.is::<u32>()
                || payload.is::<SourceFault>();
            if !on_purpose {
                default(info);
            }
        }));
    });
}

/// Waits until `flag` is set.
fn wait_for(flag: &AtomicBool) {
    let deadline = Instant::now() + HANG;
    while !flag.load(SeqCst) {
        assert!(Instant::now() < deadline, "the flag was never set");
        std::thread::sleep(Duration::from_micros(100));
    }
}

// ---- blocking user code ----------------------------------------------------------------

#[test]
fn drop_does_not_wait_for_an_f_that_sleeps() {
    let _serial = serial();
    let baseline = feeders_settle(0);
    guarded(move || {
        let entered = Arc::new(AtomicBool::new(false));
        let flag = Arc::clone(&entered);
        let mut it = (0..10u32)
            .lazy_par_map(move |x| {
                flag.store(true, SeqCst);
                std::thread::sleep(Duration::from_secs(5));
                x
            })
            .buffer(2)
            .pool(pool(2))
            .start();
        wait_for(&entered);
        assert_eq!(it.try_next(), Err(lazy_par_map::TryNextError::NotReady));
        let started = Instant::now();
        drop(it);
        assert!(
            started.elapsed() < PROMPT,
            "drop took {:?}",
            started.elapsed()
        );
    });
    assert_eq!(feeders_settle(baseline), baseline, "the feeder did not end");
}

#[test]
fn drop_does_not_wait_for_an_f_that_blocks_forever() {
    let _serial = serial();
    let baseline = feeders_settle(0);
    guarded(move || {
        // The sender is kept and never used: `f` waits forever, and its pool thread is
        // leaked on purpose.
        let (never, waits) = mpsc::channel::<()>();
        std::mem::forget(never);
        let waits = Mutex::new(waits);
        let entered = Arc::new(AtomicBool::new(false));
        let flag = Arc::clone(&entered);
        let it = (0..10u32)
            .lazy_par_map(move |x| {
                flag.store(true, SeqCst);
                let _ = waits.lock().unwrap().recv();
                x
            })
            .buffer(3)
            .pool(pool(1))
            .start();
        wait_for(&entered);
        let started = Instant::now();
        drop(it);
        assert!(
            started.elapsed() < PROMPT,
            "drop took {:?}",
            started.elapsed()
        );
    });
    assert_eq!(feeders_settle(baseline), baseline, "the feeder did not end");
}

/// A source whose second `next()` blocks until the test releases it.
struct BlockingSource {
    pulls: Arc<AtomicUsize>,
    entered: Arc<AtomicBool>,
    release: mpsc::Receiver<()>,
    dropped: Arc<AtomicBool>,
}

impl Iterator for BlockingSource {
    type Item = u32;
    fn next(&mut self) -> Option<u32> {
        let pull = self.pulls.fetch_add(1, SeqCst);
        if pull == 1 {
            self.entered.store(true, SeqCst);
            let _ = self.release.recv();
        }
        Some(pull as u32)
    }
}

impl Drop for BlockingSource {
    fn drop(&mut self) {
        self.dropped.store(true, SeqCst);
    }
}

/// The feeder is the only thread that reads the source. While the source blocks, `drop`
/// returns anyway; the feeder thread then stays blocked inside the source's `next()` until
/// it returns (nothing can interrupt a thread in user code), and it is the only thread left:
/// the pool is idle. When the source returns, the feeder drops that item and the source, and
/// ends, without pulling again.
#[test]
fn drop_returns_while_the_source_blocks_and_only_the_feeder_waits_in_it() {
    let _serial = serial();
    let baseline = feeders_settle(0);
    let pulls = Arc::new(AtomicUsize::new(0));
    let entered = Arc::new(AtomicBool::new(false));
    let dropped = Arc::new(AtomicBool::new(false));
    let (release, blocked) = mpsc::channel();
    let source = BlockingSource {
        pulls: Arc::clone(&pulls),
        entered: Arc::clone(&entered),
        release: blocked,
        dropped: Arc::clone(&dropped),
    };
    let pool = pool(1);
    let on_pool = Arc::clone(&pool);
    guarded(move || {
        let mut it = source
            .lazy_par_map(|x| x * 2)
            .buffer(4)
            .pool(on_pool)
            .start();
        assert_eq!(it.next(), Some(0));
        wait_for(&entered);
        let started = Instant::now();
        drop(it);
        assert!(
            started.elapsed() < PROMPT,
            "drop took {:?}",
            started.elapsed()
        );
    });
    std::thread::sleep(Duration::from_millis(20));
    assert_eq!(feeders(), baseline + 1, "the feeder waits in the source");
    assert!(!dropped.load(SeqCst));
    // The pool has no runner of ours left: a job on its only thread runs at once.
    guarded(move || pool.install(|| ()));
    release.send(()).unwrap();
    assert_eq!(feeders_settle(baseline), baseline, "the feeder did not end");
    assert!(
        dropped.load(SeqCst),
        "the feeder drops the source when it ends"
    );
    assert_eq!(pulls.load(SeqCst), 2, "no pull after the drop");
}

// ---- panics ----------------------------------------------------------------------------

#[test]
fn a_panic_payload_that_is_not_a_string_comes_back_as_is() {
    let _serial = serial();
    quiet_fault_panics();
    guarded(|| {
        let mut it = (0..10u32)
            .lazy_par_map(|x| {
                if x == 3 {
                    panic_any(42u32);
                }
                x
            })
            .buffer(4);
        let got: Vec<u32> = it.by_ref().take(3).collect();
        assert_eq!(got, [0, 1, 2]);
        let payload = catch_unwind(AssertUnwindSafe(|| it.next())).unwrap_err();
        assert_eq!(payload.downcast_ref::<u32>(), Some(&42));
        assert_eq!(it.next(), None);
    });
}

#[derive(Debug, PartialEq)]
struct SourceFault {
    at: u32,
}

#[test]
fn a_source_panic_that_is_not_a_string_comes_back_as_is() {
    let _serial = serial();
    quiet_fault_panics();
    guarded(|| {
        let source = (0..10u32).inspect(|&x| {
            if x == 2 {
                panic_any(SourceFault { at: x });
            }
        });
        let mut it = source.lazy_par_map(|x| x + 1).buffer(3);
        assert_eq!(it.next(), Some(1));
        assert_eq!(it.next(), Some(2));
        let payload = catch_unwind(AssertUnwindSafe(|| it.next())).unwrap_err();
        assert_eq!(payload.downcast_ref(), Some(&SourceFault { at: 2 }));
        assert_eq!(it.next(), None);
    });
}

/// A result whose `Drop` panics, the first time one is dropped after `armed` is set.
struct Grenade {
    armed: Arc<AtomicBool>,
    drops: Arc<AtomicUsize>,
}

impl Drop for Grenade {
    fn drop(&mut self) {
        self.drops.fetch_add(1, SeqCst);
        if self.armed.swap(false, SeqCst) {
            panic!("fault: a result's Drop panics");
        }
    }
}

/// Results in flight when the adapter is dropped are dropped by the adapter, on the
/// consumer's thread (finished, waiting their turn) or on a runner (finished after the
/// drop). A `Drop` that panics must not abort (runners catch it; rayon would abort) nor
/// hang: on the consumer's thread it comes out of `drop(adapter)`, like any panicking
/// `Drop`. Either way every result is dropped and the feeder ends.
#[test]
fn a_panicking_drop_of_a_result_in_flight_neither_aborts_nor_hangs() {
    let _serial = serial();
    quiet_fault_panics();
    let baseline = feeders_settle(0);
    let (mut from_drop, mut elsewhere) = (0, 0);
    for round in 0..50u64 {
        let armed = Arc::new(AtomicBool::new(false));
        let drops = Arc::new(AtomicUsize::new(0));
        let made = Arc::new(AtomicUsize::new(0));
        let (a, d, m) = (armed.clone(), drops.clone(), made.clone());
        let (got, panicked) = guarded(move || {
            let mut it = (0..100u64)
                .lazy_par_map(move |x| {
                    // Odd rounds: results after the third finish well after the drop, so a
                    // runner drops them. Even rounds: most are finished and wait in the ring.
                    if round % 2 == 1 && x >= 3 {
                        std::thread::sleep(Duration::from_millis(5));
                    } else if x % 7 == round % 7 {
                        std::thread::sleep(Duration::from_micros(200));
                    }
                    m.fetch_add(1, SeqCst);
                    Grenade {
                        armed: a.clone(),
                        drops: d.clone(),
                    }
                })
                .buffer(8)
                .pool(pool(2));
            let got = it.by_ref().take(3).count();
            if round % 2 == 0 {
                std::thread::sleep(Duration::from_millis(1));
            }
            armed.store(true, SeqCst);
            let panicked = catch_unwind(AssertUnwindSafe(|| drop(it))).is_err();
            (got, panicked)
        });
        assert_eq!(got, 3);
        if panicked {
            from_drop += 1;
        } else {
            elsewhere += 1;
        }
        // A turn that never ended holds its feeding thread: they would pile up by round.
        assert!(
            feeders() <= baseline + 2,
            "round {round}: feeding threads pile up"
        );
        let deadline = Instant::now() + Duration::from_secs(10);
        while drops.load(SeqCst) != made.load(SeqCst) {
            assert!(
                Instant::now() < deadline,
                "results lost: made {}, dropped {}",
                made.load(SeqCst),
                drops.load(SeqCst)
            );
            std::thread::sleep(Duration::from_micros(100));
        }
    }
    assert_eq!(feeders_settle(baseline), baseline, "a feeder did not end");
    println!(
        "panicking Drop: out of drop(adapter) {from_drop} times, caught elsewhere {elsewhere}"
    );
}

/// An input whose `Drop` panics inside `f` is a panic of `f` for that item.
#[test]
fn a_panicking_drop_of_an_input_inside_f_is_fs_panic() {
    let _serial = serial();
    quiet_fault_panics();
    struct Input(u32);
    impl Drop for Input {
        fn drop(&mut self) {
            if self.0 == 3 {
                panic!("fault: input 3's Drop panics");
            }
        }
    }
    guarded(|| {
        let mut it = (0..10u32)
            .map(Input)
            .lazy_par_map(|input| input.0)
            .buffer(4);
        let got: Vec<u32> = it.by_ref().take(3).collect();
        assert_eq!(got, [0, 1, 2]);
        let payload = catch_unwind(AssertUnwindSafe(|| it.next())).unwrap_err();
        assert_eq!(
            payload.downcast_ref::<&str>(),
            Some(&"fault: input 3's Drop panics")
        );
        assert_eq!(it.next(), None);
    });
}

/// The consumer panics mid-iteration: the adapter is dropped while unwinding, the panic goes
/// on to the caller, and the feeder ends.
#[test]
fn a_consumer_that_panics_mid_iteration_drops_the_adapter_and_the_feeder_ends() {
    let _serial = serial();
    quiet_fault_panics();
    let baseline = feeders_settle(0);
    let source_dropped = Arc::new(AtomicBool::new(false));
    struct Flag(Arc<AtomicBool>);
    impl Drop for Flag {
        fn drop(&mut self) {
            self.0.store(true, SeqCst);
        }
    }
    let flag = Flag(Arc::clone(&source_dropped));
    let caught = guarded(move || {
        catch_unwind(move || {
            let source = (0..).inspect(move |_| {
                let _ = &flag;
            });
            for x in source.lazy_par_map(|x: u64| x).buffer(16) {
                if x == 5 {
                    panic!("fault: the consumer panics");
                }
            }
        })
    });
    assert!(caught.is_err());
    assert_eq!(feeders_settle(baseline), baseline, "the feeder did not end");
    assert!(source_dropped.load(SeqCst), "the source was not dropped");
}

// ---- pools -----------------------------------------------------------------------------

#[test]
fn a_pool_dropped_by_its_owner_is_kept_alive_by_the_adapter() {
    let _serial = serial();
    guarded(|| {
        let owned = pool(2);
        let mut it = (0..2000u64)
            .lazy_par_map(|x| x * 3)
            .buffer(16)
            .pool(Arc::clone(&owned))
            .start();
        assert_eq!(it.next(), Some(0));
        drop(owned);
        let rest: Vec<u64> = it.collect();
        assert_eq!(rest, (1..2000).map(|x| x * 3).collect::<Vec<_>>());
        // Given by value, the pool has no other owner from the start.
        let by_value = rayon::ThreadPoolBuilder::new()
            .num_threads(1)
            .build()
            .unwrap();
        let all: Vec<u64> = (0..500u64)
            .lazy_par_map(|x| x + 1)
            .buffer(4)
            .pool(by_value)
            .collect();
        assert_eq!(all, (1..=500).collect::<Vec<_>>());
    });
}

/// The consumer panics while finished results whose `Drop` panics wait in the ring: the
/// adapter drops them while the consumer's panic unwinds. A second panic during unwinding
/// would abort the process, so this runs in a child process and checks it exits normally.
#[test]
fn a_panicking_drop_while_the_consumer_unwinds_does_not_abort() {
    const CHILD: &str = "LPM_FAULTS_CHILD";
    if std::env::var_os(CHILD).is_some() {
        quiet_fault_panics();
        let armed = Arc::new(AtomicBool::new(false));
        let drops = Arc::new(AtomicUsize::new(0));
        let (a, d) = (armed.clone(), drops.clone());
        let result = catch_unwind(AssertUnwindSafe(|| {
            let mut it = (0..100u64)
                .lazy_par_map(move |_| Grenade {
                    armed: a.clone(),
                    drops: d.clone(),
                })
                .buffer(8);
            assert!(it.next().is_some());
            // Let the ring fill with finished results.
            std::thread::sleep(Duration::from_millis(50));
            armed.store(true, SeqCst);
            panic!("fault: the consumer panics");
        }));
        assert!(result.is_err());
        return;
    }
    let _serial = serial();
    let exe = std::env::current_exe().unwrap();
    let status = std::process::Command::new(exe)
        .args([
            "--exact",
            "a_panicking_drop_while_the_consumer_unwinds_does_not_abort",
            "--include-ignored",
            "--nocapture",
        ])
        .env(CHILD, "1")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status()
        .unwrap();
    assert!(status.success(), "the child process ended with {status}");
}

// ---- panicking drops that could abort the process ------------------------------------
// Each scenario runs in a child process (`common::in_child`): an abort there fails the
// test instead of killing this test binary.

/// Waits until `count` reaches `want`; panics after [`HANG`].
fn wait_for_count(count: &AtomicUsize, want: usize, what: &str) {
    let deadline = Instant::now() + HANG;
    while count.load(SeqCst) < want {
        assert!(
            Instant::now() < deadline,
            "{what}: {} of {want}",
            count.load(SeqCst)
        );
        std::thread::sleep(Duration::from_micros(100));
    }
}

/// An item that panics when dropped unless `f` disarmed it; every drop is counted first.
struct Fragile {
    index: u64,
    armed: bool,
    drops: Arc<AtomicUsize>,
}

impl Drop for Fragile {
    fn drop(&mut self) {
        self.drops.fetch_add(1, SeqCst);
        if self.armed {
            panic!("fault: item {}'s Drop panics", self.index);
        }
    }
}

/// `f` panics at item `k`; the items after `k` that `f` never takes (the rest of `k`'s job,
/// skipped once the adapter ends) panic when dropped. Those drops happen while `f`'s panic
/// is caught, or later: none may abort the process, and the consumer gets `f`'s payload
/// after the `k` items before it.
#[test]
fn fs_panic_reaches_the_consumer_when_the_rest_of_its_job_panics_when_dropped() {
    const TEST: &str = "fs_panic_reaches_the_consumer_when_the_rest_of_its_job_panics_when_dropped";
    if !common::is_child(TEST) {
        let _serial = serial();
        common::in_child(TEST);
        return;
    }
    quiet_fault_panics();
    guarded(|| {
        // 10,000 fast items and a buffer of 1024: by item `k` jobs hold hundreds of items.
        for k in [5_000u64, 5_001, 6_543] {
            let (made, drops) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
            let (in_source, in_items) = (Arc::clone(&made), Arc::clone(&drops));
            let mut it = (0..10_000u64)
                .map(move |index| {
                    in_source.fetch_add(1, SeqCst);
                    Fragile {
                        index,
                        armed: index > k,
                        drops: Arc::clone(&in_items),
                    }
                })
                .lazy_par_map(move |mut item: Fragile| {
                    if item.index == k {
                        panic!("fault: f panics at {k}");
                    }
                    item.armed = false;
                    item.index
                })
                .buffer(1024);
            let mut next = 0u64;
            let payload = loop {
                match catch_unwind(AssertUnwindSafe(|| it.next())) {
                    Ok(Some(x)) => {
                        assert_eq!(x, next, "k {k}");
                        next += 1;
                    }
                    Ok(None) => panic!("k {k}: f's panic was swallowed"),
                    Err(payload) => break payload,
                }
            };
            assert_eq!(next, k, "k {k}: the panic came before item {next}");
            assert_eq!(
                common::message(&payload),
                Some(format!("fault: f panics at {k}").as_str()),
                "k {k}: not f's payload"
            );
            assert!(
                matches!(catch_unwind(AssertUnwindSafe(|| it.next())), Ok(None)),
                "k {k}: not finished after f's panic"
            );
            let _ = catch_unwind(AssertUnwindSafe(move || drop(it)));
            // Every item is dropped in the end (an abort would come here, in the child).
            assert!(feeders() <= 2, "k {k}: feeding threads pile up");
            wait_for_count(&drops, made.load(SeqCst), "items dropped");
        }
        assert_eq!(feeders_settle(0), 0, "a feeder did not end");
    });
}

/// A value captured by `f` whose `Drop` panics (counted first).
struct Bomb(Arc<AtomicUsize>);

impl Drop for Bomb {
    fn drop(&mut self) {
        self.0.fetch_add(1, SeqCst);
        panic!("fault: a value captured by f panics when dropped");
    }
}

/// `f` (with what it captured) is dropped by whoever lets go of the adapter's state last:
/// the consumer, the feeder, or a runner inside a rayon `spawn`, where an escaping panic
/// aborts. The panic may come out of the consumer's `drop(adapter)`, or be discarded; the
/// process must not abort, and every result must have come out first.
#[test]
fn a_value_captured_by_f_that_panics_when_dropped_does_not_abort() {
    const TEST: &str = "a_value_captured_by_f_that_panics_when_dropped_does_not_abort";
    if !common::is_child(TEST) {
        let _serial = serial();
        common::in_child(TEST);
        return;
    }
    quiet_fault_panics();
    guarded(|| {
        let rounds = 120;
        let bombs = Arc::new(AtomicUsize::new(0));
        for round in 0..rounds {
            let bomb = Bomb(Arc::clone(&bombs));
            let it = (0..50u64)
                .lazy_par_map(move |x| {
                    let _captured = &bomb;
                    // The last item is slow, so that a runner is often the last to let go.
                    if x == 49 && round % 3 != 0 {
                        std::thread::sleep(Duration::from_micros(500));
                    }
                    x + 1
                })
                .buffer(4);
            let it = match round % 3 {
                0 => it,
                1 => it.pool(pool(1)),
                _ => it.pool(pool(2)),
            };
            let mut got = Vec::new();
            let outcome = catch_unwind(AssertUnwindSafe(|| {
                let mut it = it;
                got.extend(it.by_ref());
                drop(it);
            }));
            if let Err(payload) = outcome {
                assert_eq!(
                    common::message(&payload),
                    Some("fault: a value captured by f panics when dropped"),
                    "round {round}: a panic that is not the bomb's"
                );
            }
            assert_eq!(got, (1..=50).collect::<Vec<_>>(), "round {round}");
        }
        // Every bomb has gone off (inside this child) before it exits.
        wait_for_count(&bombs, rounds, "bombs dropped");
        assert_eq!(feeders_settle(0), 0, "a feeder did not end");
    });
}

/// A value that panics when dropped while armed (every drop counted first).
struct Armed {
    index: u64,
    armed: bool,
    drops: Arc<AtomicUsize>,
}

impl Armed {
    fn new(index: u64, armed: bool, made: &AtomicUsize, drops: &Arc<AtomicUsize>) -> Armed {
        made.fetch_add(1, SeqCst);
        Armed {
            index,
            armed,
            drops: Arc::clone(drops),
        }
    }
    fn defuse(mut self) -> u64 {
        self.armed = false;
        self.index
    }
}

impl Drop for Armed {
    fn drop(&mut self) {
        self.drops.fetch_add(1, SeqCst);
        if self.armed {
            panic!("fault: value {}'s Drop panics", self.index);
        }
    }
}

/// Many results (or items) that panic when dropped, left to the adapter when it ends early:
/// finished results waiting in the ring, results finishing after the drop, items never
/// mapped. Several sit in one job, one batch, one queue: each panicking drop must be caught
/// on its own (a second panic while the first unwinds would abort), whoever drops them.
#[test]
fn many_values_that_panic_when_dropped_by_the_adapter_never_abort() {
    const TEST: &str = "many_values_that_panic_when_dropped_by_the_adapter_never_abort";
    if !common::is_child(TEST) {
        let _serial = serial();
        common::in_child(TEST);
        return;
    }
    quiet_fault_panics();
    guarded(|| {
        for round in 0..60u64 {
            let (made, drops) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
            let one = pool(1 + (round % 2) as usize);
            let install = round % 3 == 0;
            let (m, d) = (Arc::clone(&made), Arc::clone(&drops));
            let (m2, d2) = (Arc::clone(&made), Arc::clone(&drops));
            let slow_f = round % 4 >= 2;
            // Items and results from index 3 on are armed; the consumer takes 3 and drops the
            // adapter, or meets `f`'s panic at item 3 (odd rounds).
            let it = (0..2_000u64)
                .map(move |i| Armed::new(i, i >= 3, &m, &d))
                .lazy_par_map(move |item: Armed| {
                    let i = item.defuse();
                    if i == 3 && round % 2 == 1 {
                        panic!("fault: f panics at 3");
                    }
                    if slow_f {
                        std::thread::sleep(Duration::from_micros(200));
                    }
                    Armed::new(i, i >= 3, &m2, &d2)
                })
                .buffer(64)
                .pool(Arc::clone(&one));
            let consume = move || {
                let mut it = it;
                let mut got = Vec::new();
                for _ in 0..3 {
                    got.push(it.next().map(Armed::defuse));
                }
                // Let finished results pile up in the ring.
                std::thread::sleep(Duration::from_millis(2));
                let fourth = catch_unwind(AssertUnwindSafe(|| it.next().map(Armed::defuse)));
                let _ = catch_unwind(AssertUnwindSafe(move || drop(it)));
                (got, fourth.is_err())
            };
            let (got, panicked) = if install {
                one.install(consume)
            } else {
                consume()
            };
            assert_eq!(got, [Some(0), Some(1), Some(2)], "round {round}");
            if round % 2 == 1 {
                assert!(panicked, "round {round}: f's panic at 3 was not raised");
            }
            assert!(feeders() <= 2, "round {round}: feeding threads pile up");
            let made = made.load(SeqCst);
            wait_for_count(&drops, made, "values dropped");
        }
        assert_eq!(feeders_settle(0), 0, "a feeder did not end");
    });
}
