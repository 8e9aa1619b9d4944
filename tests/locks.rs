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
