//! The scoped form: adapters whose source, items and `f` borrow from the caller's stack.

mod common;

use common::guarded;
use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};
use std::sync::Mutex;

#[test]
fn scoped_map_borrows_a_local_vec_and_mut_counters() {
    guarded(|| {
        let words: Vec<String> = (0..500).map(|i| format!("word{i}")).collect();
        let mut calls = 0usize;
        let mut longest = 0usize;
        let lens: Vec<usize> = {
            let counters = Mutex::new((&mut calls, &mut longest));
            lazy_par_map::scope(|s| {
                s.lazy_par_map(words.iter(), |w| {
                    let mut c = counters.lock().unwrap();
                    *c.0 += 1;
                    *c.1 = (*c.1).max(w.len());
                    w.len()
                })
                .buffer(8)
                .collect()
            })
        };
        assert_eq!(lens, words.iter().map(String::len).collect::<Vec<_>>());
        assert_eq!(calls, 500);
        assert_eq!(longest, 7);
    });
}

#[test]
fn scoped_results_may_borrow_the_input() {
    guarded(|| {
        let text = String::from("alpha beta gamma delta");
        let firsts: Vec<&str> =
            lazy_par_map::scope(|s| s.lazy_par_map(text.split(' '), |w| &w[..1]).collect());
        assert_eq!(firsts, ["a", "b", "g", "d"]);
    });
}

#[test]
fn forgetting_a_scoped_adapter_cannot_hang_or_escape_the_scope() {
    guarded(|| {
        let data: Vec<u64> = (0..10_000).collect();
        let pulled = AtomicUsize::new(0);
        lazy_par_map::scope(|s| {
            let it = s
                .lazy_par_map(
                    data.iter().inspect(|_| {
                        pulled.fetch_add(1, SeqCst);
                    }),
                    |x| x * 2,
                )
                .buffer(4)
                .start();
            // The feeder now waits for a consumer that will never come; the scope
            // must cancel it instead of waiting forever.
            std::mem::forget(it);
        });
        // After the scope, no thread of the adapter touches `data` any more.
        let after = pulled.load(SeqCst);
        assert!(after <= 4, "pulled {after} items with buffer 4");
        std::thread::sleep(std::time::Duration::from_millis(50));
        assert_eq!(pulled.load(SeqCst), after);
        drop(data);
    });
}

#[test]
fn a_panic_in_the_scope_closure_propagates_after_the_adapters_stop() {
    guarded(|| {
        let data: Vec<u32> = (0..1000).collect();
        let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            lazy_par_map::scope(|s| {
                let mut it = s.lazy_par_map(data.iter(), |x| x + 1).buffer(2);
                assert_eq!(it.next(), Some(1));
                panic!("consumer gave up");
            })
        }));
        let payload = result.expect_err("the scope must re-raise the panic");
        assert_eq!(payload.downcast_ref::<&str>(), Some(&"consumer gave up"));
    });
}

#[test]
fn scoped_panics_in_f_are_reraised_in_place() {
    guarded(|| {
        let data: Vec<u32> = (0..100).collect();
        let mut seen = Vec::new();
        let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            lazy_par_map::scope(|s| {
                for x in s.lazy_par_map(data.iter(), |&x| {
                    assert!(x != 42, "item 42");
                    x
                }) {
                    seen.push(x);
                }
            })
        }));
        assert!(result.is_err());
        assert_eq!(seen, (0..42).collect::<Vec<_>>());
    });
}

#[test]
fn scope_inside_a_pool_of_one_thread_does_not_deadlock() {
    guarded(|| {
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(1)
            .build()
            .unwrap();
        let data: Vec<u64> = (0..2000).collect();
        let sum: u64 = pool.install(|| {
            lazy_par_map::scope(|s| s.lazy_par_map(data.iter(), |x| x * 3).buffer(3).sum())
        });
        assert_eq!(sum, 3 * 1999 * 2000 / 2);
    });
}

#[test]
fn unordered_try_next_and_stats_work_in_a_scope() {
    guarded(|| {
        let data: Vec<u64> = (0..300).collect();
        lazy_par_map::scope(|s| {
            let mut out: Vec<u64> = s.lazy_par_map(data.iter(), |x| x + 1).unordered().collect();
            out.sort_unstable();
            assert_eq!(out, (1..=300).collect::<Vec<_>>());

            let mut it = s.lazy_par_map(data.iter(), |x| *x).buffer(5);
            let mut got = Vec::new();
            loop {
                match it.try_next() {
                    Ok(x) => got.push(x),
                    Err(lazy_par_map::TryNextError::NotReady) => std::thread::yield_now(),
                    Err(lazy_par_map::TryNextError::Finished) => break,
                }
            }
            assert_eq!(got, data);
            assert_eq!(it.stats().yielded, 300);
        });
    });
}
