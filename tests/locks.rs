//! No lock held across user code: `f`, the source's `next()`, and the `Drop` of items,
//! results and the source may all call back into rayon and into other adapters.
//!
//! A lock of the adapter's held across any of these would deadlock here; the watchdog
//! turns that into a failure.

mod common;

use common::{guarded, jitter, pool, sleep_us};
use lazy_par_map::prelude::*;
use rayon::prelude::*;
use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};
use std::sync::Arc;

/// Runs a small adapter and checks its sum: a re-entrant call into the crate.
fn inner_sum() -> u64 {
    let sum = (0..10u64).lazy_par_map(|x| x).buffer(2).sum::<u64>();
    assert_eq!(sum, 45);
    sum
}

#[test]
fn f_may_use_rayon_itself() {
    guarded(|| {
        let got: Vec<u64> = (0..40u64)
            .lazy_par_map(|i| (0..100u64).into_par_iter().map(|j| i * j).sum())
            .buffer(4)
            .collect();
        assert_eq!(got, (0..40u64).map(|i| 4950 * i).collect::<Vec<_>>());

        let one = pool(1);
        let inner = Arc::clone(&one);
        let got: Vec<u64> = (0..20u64)
            .lazy_par_map(move |i| {
                inner.install(|| (0..100u64).into_par_iter().map(|j| i + j).sum())
            })
            .buffer(3)
            .pool(Arc::clone(&one))
            .collect();
        assert_eq!(got, (0..20u64).map(|i| 4950 + 100 * i).collect::<Vec<_>>());
    });
}

#[test]
fn f_may_run_a_nested_adapter_on_the_same_one_thread_pool() {
    guarded(|| {
        let one = pool(1);
        let inner = Arc::clone(&one);
        let got: Vec<u64> = (0..20u64)
            .lazy_par_map(move |i| {
                (0..30u64)
                    .lazy_par_map(move |j| i * j)
                    .buffer(2)
                    .pool(Arc::clone(&inner))
                    .sum::<u64>()
            })
            .buffer(3)
            .pool(one)
            .collect();
        assert_eq!(got, (0..20u64).map(|i| 435 * i).collect::<Vec<_>>());
    });
}

#[test]
fn the_source_may_be_another_adapter() {
    guarded(|| {
        let got: Vec<u64> = (0..500u64)
            .lazy_par_map(|x| x + 1)
            .buffer(3)
            .lazy_par_map(|x| x * 2)
            .buffer(2)
            .lazy_par_map(|x| x - 1)
            .buffer(5)
            .collect();
        assert_eq!(
            got,
            (0..500u64).map(|x| (x + 1) * 2 - 1).collect::<Vec<_>>()
        );

        // Every stage on the same pool of one thread.
        let one = pool(1);
        let got: Vec<u64> = (0..200u64)
            .lazy_par_map(|x| {
                sleep_us(jitter(x) % 100);
                x + 1
            })
            .buffer(2)
            .pool(Arc::clone(&one))
            .lazy_par_map(|x| x * 3)
            .buffer(2)
            .pool(Arc::clone(&one))
            .collect();
        assert_eq!(got, (0..200u64).map(|x| (x + 1) * 3).collect::<Vec<_>>());
    });
}

#[test]
fn the_source_may_use_rayon_and_other_adapters() {
    guarded(|| {
        let one = pool(1);
        let in_source = Arc::clone(&one);
        let source = (0..30u64).map(move |i| {
            // The feeder blocks here on the pool that also runs `f`.
            in_source.install(|| (0..10u64).into_par_iter().map(|j| i + j).sum::<u64>())
                + inner_sum()
        });
        let got: Vec<u64> = source.lazy_par_map(|x| x).buffer(2).pool(one).collect();
        assert_eq!(
            got,
            (0..30u64).map(|i| 45 + 10 * i + 45).collect::<Vec<_>>()
        );
    });
}

/// Runs another adapter when dropped.
struct Reentrant {
    value: u64,
    drops: Arc<AtomicUsize>,
}

impl Drop for Reentrant {
    fn drop(&mut self) {
        inner_sum();
        self.drops.fetch_add(1, SeqCst);
    }
}

/// A source that runs another adapter when dropped (on the feeder thread).
struct ReentrantSource {
    next: u64,
    item_drops: Arc<AtomicUsize>,
    drops: Arc<AtomicUsize>,
}

impl Iterator for ReentrantSource {
    type Item = Reentrant;
    fn next(&mut self) -> Option<Reentrant> {
        self.next += 1;
        Some(Reentrant {
            value: self.next - 1,
            drops: Arc::clone(&self.item_drops),
        })
    }
}

impl Drop for ReentrantSource {
    fn drop(&mut self) {
        inner_sum();
        self.drops.fetch_add(1, SeqCst);
    }
}

#[test]
fn drops_of_items_results_and_source_may_run_other_adapters() {
    guarded(|| {
        for on_one_thread in [false, true] {
            for (n, take) in [(1, 3), (8, 5), (64, 40)] {
                let drops = Arc::new(AtomicUsize::new(0));
                let source_drops = Arc::new(AtomicUsize::new(0));
                let in_f = Arc::clone(&drops);
                let source = ReentrantSource {
                    next: 0,
                    item_drops: Arc::clone(&drops),
                    drops: Arc::clone(&source_drops),
                };
                let it = source
                    .lazy_par_map(move |item: Reentrant| {
                        sleep_us(jitter(item.value) % 200);
                        // The input is dropped here, inside `f`.
                        Reentrant {
                            value: item.value,
                            drops: Arc::clone(&in_f),
                        }
                    })
                    .buffer(n);
                let mut it = if on_one_thread { it.pool(pool(1)) } else { it };
                for want in 0..take {
                    assert_eq!(it.next().map(|r| r.value), Some(want));
                }
                // Results in flight and finishing later are dropped on the consumer, the
                // runners, or the pool; the source on the feeder thread.
                drop(it);
                assert!(
                    common::eventually(|| source_drops.load(SeqCst) == 1, common::SETTLE),
                    "the source was not dropped"
                );
                // Every input went into `f` (dropped there) or was skipped and dropped; every
                // result was returned or dropped: two drops per item taken, in the end.
                assert!(drops.load(SeqCst) >= 2 * take as usize);
            }
        }
    });
}

#[test]
fn try_form_err_drop_may_run_other_adapters() {
    guarded(|| {
        let drops = Arc::new(AtomicUsize::new(0));
        let in_f = Arc::clone(&drops);
        let out: Result<Vec<Reentrant>, Reentrant> = (0..100u64)
            .try_lazy_par_map(move |i| {
                let made = Reentrant {
                    value: i,
                    drops: Arc::clone(&in_f),
                };
                if i == 20 {
                    Err(made)
                } else {
                    Ok(made)
                }
            })
            .buffer(6)
            .collect();
        assert_eq!(out.err().map(|e| e.value), Some(20));
    });
}

#[test]
fn consuming_from_inside_a_drop_on_a_worker_is_fine() {
    guarded(|| {
        // Results dropped on pool workers run adapters that are consumed there.
        let drops = Arc::new(AtomicUsize::new(0));
        let in_f = Arc::clone(&drops);
        let total: u64 = (0..50u64)
            .into_par_iter()
            .map(|i| {
                let d = Arc::clone(&in_f);
                let r = Reentrant { value: i, drops: d };
                let v = r.value;
                drop(r);
                v
            })
            .sum();
        assert_eq!(total, 1225);
        assert_eq!(drops.load(SeqCst), 50);
    });
}

// ---- a task's `Waker` is cloned and dropped with no lock of ours held ------------------------

/// A `Waker` whose `clone` and `drop` test, the first time one of them runs while `armed`,
/// whether the adapter can still make progress meanwhile: they open the gate that holds `f`
/// of item 0 and wait (up to [`WAKER_PATIENCE`]) for `progress`. A lock of the adapter held
/// around the clone or drop stops the runner that finishes item 0 from storing its result, so
/// `progress` never comes.
#[cfg(feature = "stream")]
mod probe_waker {
    use super::common::{eventually, Gate};
    use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering::SeqCst};
    use std::sync::{Arc, Mutex};
    use std::task::{RawWaker, RawWakerVTable, Waker};
    use std::time::Duration;

    /// How long a clone or drop waits for progress: it needs microseconds.
    pub const WAKER_PATIENCE: Duration = Duration::from_secs(3);

    pub struct Probe {
        pub gate: Arc<Gate>,
        pub progress: Box<dyn Fn() -> bool + Send + Sync>,
        pub armed: AtomicBool,
        /// `"clone: progress"` or `"clone: stuck"` (and the same for `drop`), per check.
        pub checks: Mutex<Vec<String>>,
        pub clones: AtomicUsize,
        pub drops: AtomicUsize,
        /// Wakes by value (they consume a waker, like a drop).
        pub wakes: AtomicUsize,
        pub woken: AtomicBool,
        pub task: std::thread::Thread,
    }

    impl Probe {
        fn check(&self, what: &str) {
            if self.armed.swap(false, SeqCst) {
                self.gate.open();
                let moved = eventually(|| (self.progress)(), WAKER_PATIENCE);
                let verdict = if moved { "progress" } else { "stuck" };
                self.checks
                    .lock()
                    .unwrap()
                    .push(format!("{what}: {verdict}"));
            }
        }
        fn wake(&self) {
            self.woken.store(true, SeqCst);
            self.task.unpark();
        }
    }

    static VTABLE: RawWakerVTable = RawWakerVTable::new(clone, wake, wake_by_ref, drop);

    // SAFETY (all four): `data` always comes from `Arc::<Probe>::into_raw`, and each waker
    // owns one strong count of that `Arc`.
    unsafe fn clone(data: *const ()) -> RawWaker {
        let probe = &*(data as *const Probe);
        probe.clones.fetch_add(1, SeqCst);
        probe.check("clone");
        Arc::increment_strong_count(data as *const Probe);
        RawWaker::new(data, &VTABLE)
    }

    unsafe fn wake(data: *const ()) {
        let probe = Arc::from_raw(data as *const Probe);
        probe.wakes.fetch_add(1, SeqCst);
        probe.wake();
    }

    unsafe fn wake_by_ref(data: *const ()) {
        (*(data as *const Probe)).wake();
    }

    unsafe fn drop(data: *const ()) {
        let probe = Arc::from_raw(data as *const Probe);
        probe.drops.fetch_add(1, SeqCst);
        probe.check("drop");
    }

    /// The waker, and the probe to read.
    pub fn new(
        gate: Arc<Gate>,
        progress: impl Fn() -> bool + Send + Sync + 'static,
    ) -> (Waker, Arc<Probe>) {
        let probe = Arc::new(Probe {
            gate,
            progress: Box::new(progress),
            armed: AtomicBool::new(false),
            checks: Mutex::new(Vec::new()),
            clones: AtomicUsize::new(0),
            drops: AtomicUsize::new(0),
            wakes: AtomicUsize::new(0),
            woken: AtomicBool::new(false),
            task: std::thread::current(),
        });
        let data = Arc::into_raw(Arc::clone(&probe)) as *const ();
        // SAFETY: `data` is an `Arc<Probe>` given to the waker, as the vtable expects.
        let waker = unsafe { Waker::from_raw(RawWaker::new(data, &VTABLE)) };
        (waker, probe)
    }
}

/// Polls `stream` once with `waker`.
#[cfg(feature = "stream")]
fn poll_once<S: futures::Stream + Unpin>(
    stream: &mut S,
    waker: &std::task::Waker,
) -> std::task::Poll<Option<S::Item>> {
    let mut cx = std::task::Context::from_waker(waker);
    std::pin::Pin::new(stream).poll_next(&mut cx)
}

/// A result that sets a flag when dropped.
#[cfg(feature = "stream")]
struct Noted(u64, Arc<std::sync::atomic::AtomicBool>);

#[cfg(feature = "stream")]
impl Drop for Noted {
    fn drop(&mut self) {
        self.1.store(true, SeqCst);
    }
}

/// What the waker tests watch: `f` of item 0 has begun, `f` of item 1 has begun, the result
/// of item 0 has been dropped.
#[cfg(feature = "stream")]
#[derive(Default)]
struct Marks {
    f0_entered: std::sync::atomic::AtomicBool,
    f1_entered: std::sync::atomic::AtomicBool,
    result0_dropped: Arc<std::sync::atomic::AtomicBool>,
}

/// Checks the waker's `clone` (`check_drop` false) or its `drop` at cancel (`check_drop`
/// true) on an adapter whose `f` of item 0 waits on the probe's gate, on a pool of one
/// thread. Item 1 is pulled only once `f` of item 0 has begun, so it is a job of its own,
/// which the only worker runs after it has stored item 0's result.
#[cfg(feature = "stream")]
fn waker_runs_with_no_lock_held(check_drop: bool) {
    use std::task::Poll;
    use std::time::Duration;
    let marks = Arc::new(Marks::default());
    let gate = common::Gate::new();
    let watched = Arc::clone(&marks);
    let (waker, probe) = probe_waker::new(Arc::clone(&gate), move || {
        if check_drop {
            watched.result0_dropped.load(SeqCst)
        } else {
            watched.f1_entered.load(SeqCst)
        }
    });
    let (in_source, in_f) = (Arc::clone(&marks), Arc::clone(&marks));
    let in_gate = Arc::clone(&gate);
    let mut it = (0..20u64)
        .inspect(move |&i| {
            if i == 1 {
                let begun = || in_source.f0_entered.load(SeqCst);
                assert!(common::eventually(begun, Duration::from_secs(10)));
            }
        })
        .lazy_par_map(move |i| {
            match i {
                0 => {
                    in_f.f0_entered.store(true, SeqCst);
                    in_gate.wait(Duration::from_secs(20));
                }
                1 => in_f.f1_entered.store(true, SeqCst),
                _ => {}
            }
            let flag = if i == 0 {
                Arc::clone(&in_f.result0_dropped)
            } else {
                Arc::default()
            };
            Noted(i, flag)
        })
        .buffer(4)
        .pool(pool(1))
        .start();
    let begun = || marks.f0_entered.load(SeqCst);
    assert!(
        common::eventually(begun, Duration::from_secs(10)),
        "f never began"
    );

    if check_drop {
        // The task waits (its waker stored); then the adapter is dropped, and with it the
        // stored waker.
        assert!(
            poll_once(&mut it, &waker).is_pending(),
            "item 0 is still gated"
        );
        probe.armed.store(true, SeqCst);
        drop(it);
        probe.armed.store(false, SeqCst);
        gate.open();
    } else {
        // The first poll finds nothing ready: it stores a clone of the waker.
        probe.armed.store(true, SeqCst);
        let mut got = Vec::new();
        loop {
            match poll_once(&mut it, &waker) {
                Poll::Ready(Some(r)) => got.push(r.0),
                Poll::Ready(None) => break,
                Poll::Pending => {
                    while !probe.woken.swap(false, SeqCst) {
                        std::thread::park_timeout(Duration::from_millis(10));
                    }
                }
            }
        }
        probe.armed.store(false, SeqCst);
        gate.open();
        drop(it);
        assert_eq!(got, (0..20).collect::<Vec<_>>());
    }
    let checks = probe.checks.lock().unwrap().clone();
    assert!(
        !checks.iter().any(|c| c.ends_with("stuck")),
        "a runner could not store its result while the task's waker ran: {checks:?}"
    );
    if !check_drop {
        assert_eq!(checks, ["clone: progress"], "the waker was never cloned");
    }
    // Every clone is dropped or woken in the end: only the test's own waker is left.
    let outstanding = || {
        let gone = probe.drops.load(SeqCst) + probe.wakes.load(SeqCst);
        1 + probe.clones.load(SeqCst) as isize - gone as isize
    };
    assert_eq!(
        common::settle(outstanding, 1, common::SETTLE),
        1,
        "wakers leaked"
    );
    drop(waker);
}

#[cfg(feature = "stream")]
#[test]
fn a_tasks_waker_is_cloned_with_no_lock_held() {
    guarded(|| waker_runs_with_no_lock_held(false));
}

#[cfg(feature = "stream")]
#[test]
fn a_tasks_waker_is_dropped_with_no_lock_held() {
    guarded(|| waker_runs_with_no_lock_held(true));
}
