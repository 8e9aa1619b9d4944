//! Drop: dropping the adapter returns at once; no further item is taken from the source
//! (beyond a pull under way); results that finish later are dropped; the feeder thread
//! ends; nothing leaks, not even over thousands of adapters.
//!
//! Every test here takes the `serial()` lock because several count the process's threads.

mod common;

use common::{
    assert_settles, assert_stays, catch, counted, eventually, feeder_threads, guarded, jitter,
    pool, quiet_intended_panics, serial, sleep_us, warm_global_pool, Gate, Ledger, ThreadSnapshot,
    Tracked, Untouchable, SETTLE, STAY,
};
use lazy_par_map::prelude::*;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering::SeqCst};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Asserts that no feeder thread is left, and no thread that `before` did not have.
#[track_caller]
fn assert_threads_back_to(before: &ThreadSnapshot) {
    assert!(
        eventually(|| feeder_threads() == 0, SETTLE),
        "feeder threads: {} alive",
        feeder_threads()
    );
    before.assert_no_new_threads();
}

#[test]
fn drop_returns_at_once_while_f_is_still_running() {
    let _serial = serial();
    guarded(|| {
        // `f` blocks (up to 10 s) until the test opens the gate, after the drop.
        let gate = Gate::new();
        let entered = Arc::new(AtomicUsize::new(0));
        let (in_f, entered_f) = (Arc::clone(&gate), Arc::clone(&entered));
        let pool = pool(2);
        let it = (0..100u64)
            .lazy_par_map(move |x| {
                entered_f.fetch_add(1, SeqCst);
                in_f.wait(Duration::from_secs(10));
                x
            })
            .buffer(4)
            .pool(pool)
            .start();
        assert!(
            eventually(|| entered.load(SeqCst) > 0, SETTLE),
            "f never ran"
        );
        let started = Instant::now();
        drop(it);
        let took = started.elapsed();
        gate.open();
        assert!(took < Duration::from_secs(1), "drop waited {took:?} for f");
    });
}

#[test]
fn drop_returns_at_once_while_the_source_is_blocked() {
    let _serial = serial();
    guarded(|| {
        let gate = Gate::new();
        let in_source = Arc::clone(&gate);
        let source = (0u64..).inspect(move |&i| {
            if i == 2 {
                in_source.wait(Duration::from_secs(10));
            }
        });
        let mut it = source.lazy_par_map(|x| x).buffer(8);
        assert_eq!(it.next(), Some(0));
        let started = Instant::now();
        drop(it);
        let took = started.elapsed();
        gate.open();
        assert!(
            took < Duration::from_secs(1),
            "drop waited {took:?} for the source"
        );
    });
}

#[test]
fn no_pull_after_drop() {
    let _serial = serial();
    guarded(|| {
        for n in [1, 4, 64] {
            let (source, pulls) = counted(0u64..);
            let mut it = source
                .lazy_par_map(|x| {
                    sleep_us(jitter(x) % 200);
                    x
                })
                .buffer(n);
            it.next();
            it.next();
            drop(it);
            // A pull the feeder had already claimed may still start.
            let at_drop = pulls.started();
            std::thread::sleep(Duration::from_millis(10));
            let settled = pulls.started();
            assert!(
                settled <= at_drop + 1,
                "buffer {n}: {at_drop} pulls at drop, then {settled}"
            );
            assert_stays(|| pulls.started(), settled, STAY);
            assert!(settled <= 2 + n + 1);
        }
    });
}

#[test]
fn no_pull_after_drop_with_a_slow_source() {
    let _serial = serial();
    guarded(|| {
        let (source, pulls) =
            counted((0u64..).inspect(|_| std::thread::sleep(Duration::from_millis(20))));
        let mut it = source.lazy_par_map(|x| x).buffer(16);
        assert_eq!(it.next(), Some(0));
        drop(it); // most likely in the middle of a 20 ms pull
        let at_drop = pulls.started();
        std::thread::sleep(Duration::from_millis(60));
        let settled = pulls.started();
        assert!(
            settled <= at_drop + 1,
            "{at_drop} pulls at drop, then {settled}"
        );
        assert_stays(|| pulls.started(), settled, STAY);
    });
}

/// A source of tracked items and an `f` that drops its input and makes a tracked result.
fn tracked_map(
    ledger: &Arc<Ledger>,
    len: u64,
    f_us: u64,
) -> lazy_par_map::LazyParMap<
    impl Iterator<Item = Tracked> + Send + 'static,
    impl Fn(Tracked) -> Tracked + Send + Sync + 'static,
    Tracked,
> {
    let (source_ledger, f_ledger) = (Arc::clone(ledger), Arc::clone(ledger));
    (0..len)
        .map(move |i| source_ledger.make(i))
        .lazy_par_map(move |item: Tracked| {
            if f_us > 0 {
                sleep_us(jitter(item.value) % f_us);
            }
            f_ledger.make(item.value * 2)
        })
}

#[test]
fn every_item_and_result_is_dropped_exactly_once() {
    let _serial = serial();
    guarded(|| {
        // Fully consumed, partly consumed, never consumed, in every mode.
        for (n, take) in [(1, 3), (4, 0), (8, 5), (64, 100), (1024, 2000)] {
            let ledger = Ledger::new();
            let mut it = tracked_map(&ledger, 1_000, 300).buffer(n).start();
            for i in 0..take.min(1_000) {
                assert_eq!(it.next().map(|t| t.value), Some(i * 2));
            }
            drop(it);
            ledger.assert_all_dropped();
            assert!(take == 0 || ledger.created() > 0);
        }
        let ledger = Ledger::new();
        let it = tracked_map(&ledger, 500, 100).unbounded().start();
        assert_eq!(it.take(10).count(), 10);
        ledger.assert_all_dropped();

        let ledger = Ledger::new();
        let mut it = tracked_map(&ledger, 500, 300).buffer(16).unordered();
        assert!(it.next().is_some());
        drop(it);
        ledger.assert_all_dropped();

        let ledger = Ledger::new();
        let all: Vec<Tracked> = tracked_map(&ledger, 300, 0).buffer(7).collect();
        assert_eq!(all.len(), 300);
        drop(all);
        ledger.assert_all_dropped();
        assert_eq!(ledger.created(), 600);
    });
}

#[test]
fn results_finished_after_drop_are_dropped() {
    let _serial = serial();
    guarded(|| {
        let ledger = Ledger::new();
        let gate = Gate::new();
        let entered = Arc::new(AtomicUsize::new(0));
        let (f_ledger, in_f, entered_f) =
            (Arc::clone(&ledger), Arc::clone(&gate), Arc::clone(&entered));
        let source_ledger = Arc::clone(&ledger);
        let it = (0..100u64)
            .map(move |i| source_ledger.make(i))
            .lazy_par_map(move |item: Tracked| {
                entered_f.fetch_add(1, SeqCst);
                in_f.wait(Duration::from_secs(10));
                f_ledger.make(item.value)
            })
            .buffer(6)
            .pool(pool(3))
            .start();
        assert!(eventually(|| entered.load(SeqCst) >= 3, SETTLE));
        drop(it);
        // The results are made only now, after the adapter is gone.
        gate.open();
        ledger.assert_all_dropped();
        assert!(ledger.created() >= 6 + 3);
    });
}

#[test]
fn nothing_leaks_after_a_panic_or_an_err() {
    quiet_intended_panics();
    let _serial = serial();
    guarded(|| {
        let ledger = Ledger::new();
        let (source_ledger, f_ledger) = (Arc::clone(&ledger), Arc::clone(&ledger));
        let mut it = (0..200u64)
            .map(move |i| source_ledger.make(i))
            .lazy_par_map(move |item: Tracked| {
                if item.value == 17 {
                    panic!("intended drop-test panic");
                }
                f_ledger.make(item.value)
            })
            .buffer(8);
        let mut seen = 0;
        while let Ok(Some(_)) = catch(|| it.next()) {
            seen += 1;
        }
        assert_eq!(seen, 17);
        drop(it);
        ledger.assert_all_dropped();

        let ledger = Ledger::new();
        let (source_ledger, f_ledger) = (Arc::clone(&ledger), Arc::clone(&ledger));
        let out: Result<Vec<Tracked>, Tracked> = (0..200u64)
            .map(move |i| source_ledger.make(i))
            .try_lazy_par_map(move |item: Tracked| {
                let made = f_ledger.make(item.value);
                if item.value == 33 {
                    Err(made)
                } else {
                    Ok(made)
                }
            })
            .buffer(8)
            .collect();
        assert_eq!(out.unwrap_err().value, 33);
        ledger.assert_all_dropped();
    });
}

#[test]
fn the_feeder_thread_ends_after_drop_or_at_the_end() {
    let _serial = serial();
    guarded(|| {
        warm_global_pool();
        assert!(
            eventually(|| feeder_threads() == 0, SETTLE),
            "feeders left by other tests"
        );
        let threads = ThreadSnapshot::take();

        // Dropped while the feeder waits for a free slot.
        let it = (0u64..).lazy_par_map(|x| x).buffer(2).start();
        assert!(
            eventually(|| feeder_threads() == 1, SETTLE),
            "no feeder thread"
        );
        drop(it);
        assert_threads_back_to(&threads);

        // Dropped while the feeder is inside a slow pull.
        let gate = Gate::new();
        let in_source = Arc::clone(&gate);
        let mut it = (0u64..)
            .inspect(move |&i| {
                if i == 1 {
                    in_source.wait(Duration::from_secs(10));
                }
            })
            .lazy_par_map(|x| x)
            .buffer(4);
        assert_eq!(it.next(), Some(0));
        drop(it);
        gate.open();
        assert_threads_back_to(&threads);

        // Kept, but the source is exhausted.
        let mut it = (0..10u64).lazy_par_map(|x| x).buffer(3);
        assert_eq!(it.by_ref().count(), 10);
        assert_threads_back_to(&threads);
        drop(it);

        // Kept, after the fallible form's `Err`.
        let mut it = (0u64..)
            .try_lazy_par_map(|x| if x == 5 { Err(x) } else { Ok(x) })
            .buffer(3);
        assert_eq!(it.by_ref().filter(Result::is_err).count(), 1);
        assert_threads_back_to(&threads);
        drop(it);
    });
}

#[test]
fn thousands_of_adapters_leak_no_thread_and_no_item() {
    let _serial = serial();
    guarded(|| {
        warm_global_pool();
        assert!(
            eventually(|| feeder_threads() == 0, SETTLE),
            "feeders left by other tests"
        );
        let threads = ThreadSnapshot::take();
        let ledger = Ledger::new();
        let shared_pool = pool(2);
        for i in 0..2000u64 {
            let it = tracked_map(&ledger, 50, 0).buffer(1 + (i % 8) as usize);
            let it = if i % 3 == 0 {
                it.pool(Arc::clone(&shared_pool))
            } else {
                it
            };
            let it = if i % 5 == 0 { it.unordered() } else { it };
            let mut it = it.start();
            for _ in 0..i % 10 {
                assert!(it.next().is_some());
            }
            drop(it);
        }
        ledger.assert_all_dropped();
        // The adapters must also let go of the custom pool, so that its threads end.
        drop(shared_pool);
        assert_threads_back_to(&threads);
    });
}

#[test]
fn dropping_before_start_does_nothing() {
    let _serial = serial();
    guarded(|| {
        warm_global_pool();
        let feeders = feeder_threads();
        let threads = ThreadSnapshot::take();
        let dropped = Arc::new(AtomicBool::new(false));
        let called = Arc::new(AtomicBool::new(false));
        let in_f = Arc::clone(&called);
        let it = Untouchable {
            dropped: Arc::clone(&dropped),
        }
        .lazy_par_map(move |x: u64| {
            in_f.store(true, SeqCst);
            x
        })
        .buffer(3);
        drop(it);
        assert!(
            dropped.load(SeqCst),
            "the source must be dropped with the adapter"
        );
        assert!(!called.load(SeqCst));
        assert!(feeder_threads() <= feeders);
        threads.assert_no_new_threads();

        // Tracked items in a source that was never started are dropped too.
        let ledger = Ledger::new();
        let items: Vec<Tracked> = (0..10).map(|i| ledger.make(i)).collect();
        let it = items.into_iter().lazy_par_map(|t: Tracked| t.value);
        assert_eq!(ledger.live(), 10);
        drop(it);
        assert_eq!(ledger.live(), 0);
    });
}

#[test]
fn a_partly_consumed_job_is_dropped_with_the_adapter() {
    let _serial = serial();
    guarded(|| {
        // Cheap items travel in large jobs; the consumer holds part of one when it drops.
        let ledger = Ledger::new();
        let mut it = tracked_map(&ledger, 100_000, 0).buffer(4096);
        for i in 0..10 {
            assert_eq!(it.next().map(|t| t.value), Some(i * 2));
        }
        drop(it);
        ledger.assert_all_dropped();
        assert_settles("live values", || ledger.live(), 0);
    });
}

#[test]
fn f_and_the_source_are_released_once_the_adapter_is_gone() {
    let _serial = serial();
    guarded(|| {
        for take in [0, 3, 1000] {
            let in_f = Arc::new(());
            let in_source = Arc::new(());
            let (weak_f, weak_source) = (Arc::downgrade(&in_f), Arc::downgrade(&in_source));
            let mut it = (0..1000u64)
                .inspect(move |_| {
                    let _ = &in_source;
                })
                .lazy_par_map(move |x| {
                    let _ = &in_f;
                    x
                })
                .buffer(8)
                .start();
            for _ in 0..take {
                it.next();
            }
            drop(it);
            assert!(
                eventually(|| weak_f.upgrade().is_none(), SETTLE),
                "take {take}: `f` is still alive after the adapter was dropped"
            );
            assert!(
                eventually(|| weak_source.upgrade().is_none(), SETTLE),
                "take {take}: the source is still alive after the adapter was dropped"
            );
        }
    });
}
