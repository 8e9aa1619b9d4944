//! rayon threads: `f` runs on the chosen pool; the adapter may be consumed on a worker of
//! the very pool it maps on (even a pool of one thread), inside another adapter's `f`,
//! inside `rayon::scope`, `join` and `par_iter`; it keeps a custom pool alive.

mod common;

use common::{eventually, guarded, jitter, pool, sleep_us, SETTLE};
use lazy_par_map::prelude::*;
use rayon::prelude::*;
use std::sync::{Arc, Mutex};

fn named_pool(threads: usize, prefix: &'static str) -> Arc<rayon::ThreadPool> {
    Arc::new(
        rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .thread_name(move |i| format!("{prefix}-{i}"))
            .build()
            .unwrap(),
    )
}

#[test]
fn f_runs_on_the_custom_pool() {
    guarded(|| {
        let pool = named_pool(3, "custom-pool");
        let probe = Arc::clone(&pool);
        let seen: Vec<(u32, Option<usize>, Option<usize>, String)> = (0..200u32)
            .lazy_par_map(move |i| {
                sleep_us(jitter(u64::from(i)) % 200);
                let name = std::thread::current().name().unwrap_or("").to_owned();
                (
                    i,
                    probe.current_thread_index(),
                    rayon::current_thread_index(),
                    name,
                )
            })
            .buffer(16)
            .pool(Arc::clone(&pool))
            .collect();
        assert_eq!(seen.len(), 200);
        for (i, in_pool, index, name) in seen {
            assert!(
                in_pool.is_some(),
                "item {i}: f ran outside the custom pool ({name})"
            );
            assert!(
                index.is_some_and(|index| index < 3),
                "item {i}: index {index:?}"
            );
            assert!(
                name.starts_with("custom-pool-"),
                "item {i}: thread {name:?}"
            );
        }
    });
}

#[test]
fn f_runs_on_the_global_pool_by_default() {
    guarded(|| {
        let consumer = std::thread::current().id();
        let seen: Vec<(Option<usize>, bool)> = (0..100u32)
            .lazy_par_map(move |_| {
                let here = std::thread::current().id();
                (rayon::current_thread_index(), here == consumer)
            })
            .buffer(8)
            .collect();
        for (index, on_consumer) in seen {
            assert!(index.is_some(), "f ran off the rayon pool");
            assert!(!on_consumer, "f ran on the consumer's thread");
        }
    });
}

#[test]
fn consuming_on_a_worker_of_the_same_pool_does_not_deadlock() {
    guarded(|| {
        for threads in 1..=3 {
            for n in [1, 4, 1024] {
                let pool = pool(threads);
                let inner = Arc::clone(&pool);
                let sum: u64 = pool.install(move || {
                    (0..1000u64)
                        .lazy_par_map(|x| x * 2)
                        .buffer(n)
                        .pool(inner)
                        .sum()
                });
                assert_eq!(sum, 999_000, "{threads} threads, buffer {n}");
            }
        }
    });
}

#[test]
fn consuming_on_the_only_worker_with_slow_f_and_slow_source() {
    guarded(|| {
        let pool = pool(1);
        let inner = Arc::clone(&pool);
        let got: Vec<u64> = pool.install(move || {
            (0..30u64)
                .inspect(|&i| sleep_us(jitter(i) % 500))
                .lazy_par_map(|x| {
                    sleep_us(jitter(x + 1) % 500);
                    x
                })
                .buffer(4)
                .pool(inner)
                .collect()
        });
        assert_eq!(got, (0..30).collect::<Vec<_>>());
    });
}

#[test]
fn consuming_on_a_worker_of_another_pool() {
    guarded(|| {
        let consumer_pool = pool(1);
        let map_pool = pool(1);
        let sum: u64 = consumer_pool.install(|| {
            (0..500u64)
                .lazy_par_map(|x| x + 1)
                .buffer(3)
                .pool(map_pool)
                .sum()
        });
        assert_eq!(sum, 125_250);
    });
}

#[test]
fn nested_inside_the_f_of_another_on_the_global_pool() {
    guarded(|| {
        let got: Vec<u64> = (0..20u64)
            .lazy_par_map(|i| {
                (0..50u64)
                    .lazy_par_map(move |j| {
                        sleep_us(jitter(i * 50 + j) % 100);
                        i * j
                    })
                    .buffer(4)
                    .sum::<u64>()
            })
            .buffer(4)
            .collect();
        let want: Vec<u64> = (0..20u64).map(|i| (0..50).map(|j| i * j).sum()).collect();
        assert_eq!(got, want);
    });
}

#[test]
fn three_levels_of_nesting_on_one_thread() {
    guarded(|| {
        let pool = pool(1);
        let (p1, p2, p3) = (Arc::clone(&pool), Arc::clone(&pool), Arc::clone(&pool));
        let got: Vec<u64> = (0..5u64)
            .lazy_par_map(move |i| {
                let p3 = Arc::clone(&p3);
                (0..5u64)
                    .lazy_par_map(move |j| {
                        (0..5u64)
                            .lazy_par_map(move |k| i * 100 + j * 10 + k)
                            .buffer(2)
                            .pool(Arc::clone(&p3))
                            .sum::<u64>()
                    })
                    .buffer(2)
                    .pool(Arc::clone(&p2))
                    .sum::<u64>()
            })
            .buffer(2)
            .pool(p1)
            .collect();
        let want: Vec<u64> = (0..5u64)
            .map(|i| {
                (0..5u64)
                    .map(|j| (0..5u64).map(|k| i * 100 + j * 10 + k).sum::<u64>())
                    .sum()
            })
            .collect();
        assert_eq!(got, want);
        // The same nesting consumed on the pool's only worker.
        let again: u64 = pool.install(|| {
            (0..5u64)
                .lazy_par_map(|i| {
                    (0..5u64)
                        .lazy_par_map(move |j| i + j)
                        .buffer(2)
                        .sum::<u64>()
                })
                .buffer(2)
                .sum()
        });
        assert_eq!(
            again,
            (0..5u64).map(|i| (0..5).map(|j| i + j).sum::<u64>()).sum()
        );
    });
}

#[test]
fn consuming_inside_rayon_scope_join_and_par_iter() {
    guarded(|| {
        let sums = Mutex::new(Vec::new());
        rayon::scope(|s| {
            for k in 0..4u64 {
                let sums = &sums;
                s.spawn(move |_| {
                    let sum: u64 = (0..200u64).lazy_par_map(move |x| x * k).buffer(3).sum();
                    sums.lock().unwrap().push((k, sum));
                });
            }
        });
        let mut sums = sums.into_inner().unwrap();
        sums.sort_unstable();
        assert_eq!(sums, (0..4).map(|k| (k, 19_900 * k)).collect::<Vec<_>>());

        let (a, b) = rayon::join(
            || (0..300u64).lazy_par_map(|x| x).buffer(2).sum::<u64>(),
            || (0..300u64).lazy_par_map(|x| x * 2).buffer(5).sum::<u64>(),
        );
        assert_eq!((a, b), (44_850, 89_700));

        let got: Vec<u64> = (0..16u64)
            .into_par_iter()
            .map(|i| {
                (0..100u64)
                    .lazy_par_map(move |x| x + i)
                    .buffer(4)
                    .sum::<u64>()
            })
            .collect();
        assert_eq!(got, (0..16u64).map(|i| 4950 + 100 * i).collect::<Vec<_>>());

        // The same on a custom pool of one thread.
        let one = pool(1);
        let inner = Arc::clone(&one);
        let got: Vec<u64> = one.install(move || {
            (0..8u64)
                .into_par_iter()
                .map(|i| {
                    (0..50u64)
                        .lazy_par_map(move |x| x * i)
                        .buffer(2)
                        .pool(Arc::clone(&inner))
                        .sum::<u64>()
                })
                .collect()
        });
        assert_eq!(got, (0..8u64).map(|i| 1225 * i).collect::<Vec<_>>());
    });
}

#[test]
fn the_adapter_keeps_a_custom_pool_alive() {
    guarded(|| {
        let pool = pool(2);
        let weak = Arc::downgrade(&pool);
        let mut it = (0..100u64)
            .lazy_par_map(|x| {
                sleep_us(jitter(x) % 200);
                x
            })
            .buffer(4)
            .pool(Arc::clone(&pool));
        let first: Vec<u64> = it.by_ref().take(3).collect();
        assert_eq!(first, [0, 1, 2]);
        drop(pool);
        let rest: Vec<u64> = it.by_ref().collect();
        assert_eq!(rest, (3..100).collect::<Vec<_>>());
        drop(it);
        // ...and lets go of it once finished.
        assert!(
            eventually(|| weak.upgrade().is_none(), SETTLE),
            "the pool is still held after the adapter ended"
        );

        // The pool handed over before start, with no other handle left.
        let sum: u64 = (0..100u64).lazy_par_map(|x| x).pool(common::pool(1)).sum();
        assert_eq!(sum, 4950);
        // A plain `ThreadPool` (not an `Arc`) is accepted too.
        let plain = rayon::ThreadPoolBuilder::new()
            .num_threads(1)
            .build()
            .unwrap();
        let sum: u64 = (0..100u64).lazy_par_map(|x| x).pool(plain).sum();
        assert_eq!(sum, 4950);
    });
}

#[test]
fn many_adapters_share_one_small_pool() {
    guarded(|| {
        let pool = pool(2);
        let mut its: Vec<_> = (0..6u64)
            .map(|k| {
                (0..100u64)
                    .lazy_par_map(move |x| {
                        sleep_us(jitter(x + k) % 100);
                        x * k
                    })
                    .buffer(1 + k as usize)
                    .pool(Arc::clone(&pool))
            })
            .collect();
        // Round-robin from one thread.
        for x in 0..100u64 {
            for (k, it) in its.iter_mut().enumerate() {
                assert_eq!(it.next(), Some(x * k as u64));
            }
        }
        for it in &mut its {
            assert_eq!(it.next(), None);
        }
    });
}

#[test]
fn a_started_adapter_may_move_between_threads_and_onto_workers() {
    guarded(|| {
        let one = pool(1);
        let mut it = (0..300u64)
            .lazy_par_map(|x| {
                sleep_us(jitter(x) % 50);
                x
            })
            .buffer(4)
            .pool(Arc::clone(&one));
        let mut got: Vec<u64> = it.by_ref().take(100).collect();
        // On another plain thread...
        let (it, more) = std::thread::spawn(move || {
            let more: Vec<u64> = it.by_ref().take(100).collect();
            (it, more)
        })
        .join()
        .unwrap();
        got.extend(more);
        // ...and on the only worker of the pool that runs `f`.
        got.extend(one.install(move || it.collect::<Vec<u64>>()));
        assert_eq!(got, (0..300).collect::<Vec<_>>());
    });
}

// ---- inside `install`: the global pool, unless `.pool(p)` ---------------------------------

/// Records the name of each thread that runs `f`.
fn recorder() -> (
    Arc<Mutex<Vec<String>>>,
    impl Fn() + Send + Sync + Clone + 'static,
) {
    let names = Arc::new(Mutex::new(Vec::new()));
    let record = {
        let names = Arc::clone(&names);
        move || {
            let name = std::thread::current()
                .name()
                .unwrap_or("<unnamed>")
                .to_owned();
            names.lock().unwrap().push(name);
        }
    };
    (names, record)
}

#[track_caller]
fn assert_none_on(names: &Mutex<Vec<String>>, prefix: &str, what: &str) {
    let names = names.lock().unwrap();
    assert!(!names.is_empty(), "{what}: f never ran");
    let on = names.iter().filter(|n| n.starts_with(prefix)).count();
    assert_eq!(
        on,
        0,
        "{what}: f ran {on} of {} times on the installed pool's thread",
        names.len()
    );
}

#[test]
fn inside_install_f_runs_on_the_global_pool_not_the_installed_one() {
    guarded(|| {
        let mine = named_pool(1, "mine");
        // The plain, unordered and fallible forms, consumed on `mine-0`.
        let (names, record) = recorder();
        let r = record.clone();
        let count = mine.install(move || {
            (0..400u64)
                .lazy_par_map(move |x| {
                    r();
                    assert!(rayon::current_thread_index().is_some(), "f ran off a pool");
                    sleep_us(1_000);
                    x
                })
                .buffer(64)
                .count()
        });
        assert_eq!(count, 400);
        assert_none_on(&names, "mine-", "lazy_par_map");

        let (names, record) = recorder();
        let r = record.clone();
        let count = mine.install(move || {
            (0..400u64)
                .lazy_par_map(move |x| {
                    r();
                    sleep_us(1_000);
                    x
                })
                .buffer(64)
                .unordered()
                .count()
        });
        assert_eq!(count, 400);
        assert_none_on(&names, "mine-", "unordered");

        let (names, record) = recorder();
        let r = record.clone();
        let count = mine.install(move || {
            (0..400u64)
                .try_lazy_par_map(move |x| {
                    r();
                    sleep_us(1_000);
                    Ok::<u64, ()>(x)
                })
                .buffer(64)
                .count()
        });
        assert_eq!(count, 400);
        assert_none_on(&names, "mine-", "try_lazy_par_map");
    });
}

#[test]
fn inside_install_f_runs_only_on_the_pool_given() {
    guarded(|| {
        let mine = named_pool(1, "mine");
        let given = named_pool(2, "given");
        let (names, record) = recorder();
        let count = mine.install(move || {
            (0..400u64)
                .lazy_par_map(move |x| {
                    record();
                    sleep_us(1_000);
                    x
                })
                .buffer(64)
                .pool(given)
                .count()
        });
        assert_eq!(count, 400);
        let names = names.lock().unwrap();
        let elsewhere: Vec<&String> = names.iter().filter(|n| !n.starts_with("given-")).collect();
        assert!(
            elsewhere.is_empty(),
            "f ran {} of 400 times off the given pool, on {:?}",
            elsewhere.len(),
            elsewhere.first()
        );
    });
}

#[test]
fn the_scoped_form_inside_install_runs_on_the_global_pool() {
    guarded(|| {
        let mine = named_pool(1, "mine");
        let (names, record) = recorder();
        let data: Vec<u64> = (0..400).collect();
        let count = mine.install(|| {
            lazy_par_map::scope(|s| {
                s.lazy_par_map(data.iter(), |x| {
                    record();
                    sleep_us(1_000);
                    *x
                })
                .buffer(64)
                .count()
            })
        });
        assert_eq!(count, 400);
        assert_none_on(&names, "mine-", "scope");
    });
}
