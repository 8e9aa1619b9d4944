//! `lazy_par_map_init`: a state per thread that runs `f`, made by `init` about once per
//! such thread (never once per item), reused across items, never used by two calls at once,
//! and the whole contract of `lazy_par_map` besides.

mod common;

use common::{catch, guarded, jitter, message, pool, quiet_intended_panics, sleep_us};
use lazy_par_map::prelude::*;
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering::SeqCst};
use std::sync::{Arc, Mutex};

/// A state that knows who it is and fails the test if two calls use it at once.
struct State {
    id: usize,
    busy: AtomicBool,
    items: usize,
}

/// Counts `init` calls and items per state.
#[derive(Default)]
struct Census {
    made: AtomicUsize,
    per_state: Mutex<HashMap<usize, usize>>,
}

impl Census {
    fn init(self: &Arc<Self>) -> impl Fn() -> State + Send + Sync + 'static {
        let census = Arc::clone(self);
        move || State {
            id: census.made.fetch_add(1, SeqCst),
            busy: AtomicBool::new(false),
            items: 0,
        }
    }

    /// `f`'s body around `work`: checks the state is not in use, counts the item.
    fn call<T>(self: &Arc<Self>, state: &mut State, work: impl FnOnce() -> T) -> T {
        assert!(
            !state.busy.swap(true, SeqCst),
            "state {} used by two calls at once",
            state.id
        );
        let out = work();
        state.items += 1;
        *self.per_state.lock().unwrap().entry(state.id).or_default() += 1;
        state.busy.store(false, SeqCst);
        out
    }

    fn made(&self) -> usize {
        self.made.load(SeqCst)
    }
}

#[test]
fn init_runs_about_once_per_pool_thread_never_once_per_item() {
    guarded(|| {
        for threads in [1, 2, 4] {
            let census = Arc::new(Census::default());
            let in_f = Arc::clone(&census);
            let n = 20_000u64;
            let out: Vec<u64> = (0..n)
                .lazy_par_map_init(census.init(), move |state, x| {
                    in_f.call(state, || {
                        if x % 64 == 0 {
                            sleep_us(jitter(x) % 100);
                        }
                        x * 2
                    })
                })
                .pool(pool(threads))
                .buffer(256)
                .collect();
            assert_eq!(out, (0..n).map(|x| x * 2).collect::<Vec<_>>());
            let made = census.made();
            assert!(
                (1..=2 * threads).contains(&made),
                "pool of {threads}: init ran {made} times for {n} items"
            );
            let per_state = census.per_state.lock().unwrap();
            assert_eq!(per_state.values().sum::<usize>(), n as usize);
            assert!(
                per_state.values().any(|&items| items > 1),
                "pool of {threads}: no state was reused: {per_state:?}"
            );
        }
    });
}

#[test]
fn a_state_is_reused_across_runner_sessions() {
    guarded(|| {
        // A consumer that pauses lets every runner leave; the next items open new
        // sessions, which must take the states back rather than call `init` again.
        let census = Arc::new(Census::default());
        let in_f = Arc::clone(&census);
        let mut it = (0..400u64)
            .lazy_par_map_init(census.init(), move |state, x| in_f.call(state, || x))
            .pool(pool(2))
            .buffer(4);
        for x in 0..400u64 {
            assert_eq!(it.next(), Some(x));
            if x % 50 == 0 {
                std::thread::sleep(std::time::Duration::from_millis(5));
            }
        }
        assert!(census.made() <= 4, "init ran {} times", census.made());
    });
}

#[test]
fn a_helping_consumer_reentering_the_same_adapter_gets_a_fresh_state() {
    guarded(|| {
        // One thread: the consumer runs inside the pool and helps with the adapter's own
        // items; `f` itself consumes another adapter on the pool, so while it waits the
        // thread may run more items of the outer adapter, nested in an outer call of `f`.
        let p = pool(1);
        let (inner_pool, outer_pool) = (Arc::clone(&p), Arc::clone(&p));
        let census = Arc::new(Census::default());
        let census2 = Arc::clone(&census);
        let in_f = Arc::clone(&census);
        let sums: Vec<u64> = p.install(move || {
            (0..40u64)
                .lazy_par_map_init(census.init(), move |state, x| {
                    let pool = Arc::clone(&inner_pool);
                    in_f.call(state, || {
                        (0..x % 5)
                            .lazy_par_map(|y| y + 1)
                            .pool(pool)
                            .buffer(2)
                            .sum::<u64>()
                    })
                })
                .pool(outer_pool)
                .buffer(8)
                .collect()
        });
        // Each nesting level has a state of its own (two, as measured here), and `Census`
        // fails the test if a state is used by two calls at once.
        let made = census2.made();
        assert!(
            (1..=4).contains(&made),
            "init ran {made} times on one thread"
        );
        let want: Vec<u64> = (0..40u64).map(|x| (1..=x % 5).sum()).collect();
        assert_eq!(sums, want);
    });
}

#[test]
fn init_and_f_panics_are_reraised_in_place() {
    quiet_intended_panics();
    guarded(|| {
        let mut it = (0..10u32)
            .lazy_par_map_init(
                || -> Vec<u32> { panic!("intended: init fails") },
                |v: &mut Vec<u32>, x| {
                    v.push(x);
                    x
                },
            )
            .buffer(2);
        let payload = catch(|| it.next()).unwrap_err();
        assert_eq!(message(&payload), Some("intended: init fails"));
        assert_eq!(it.next(), None);

        let mut it = (0..10u32)
            .lazy_par_map_init(Vec::new, |v: &mut Vec<u32>, x| {
                if x == 4 {
                    panic!("intended: f fails at 4");
                }
                v.push(x);
                x
            })
            .buffer(3);
        let before: Vec<u32> = it.by_ref().take(4).collect();
        assert_eq!(before, [0, 1, 2, 3]);
        let payload = catch(|| it.next()).unwrap_err();
        assert_eq!(message(&payload), Some("intended: f fails at 4"));
        assert_eq!(it.next(), None);
    });
}

#[test]
fn states_are_dropped_with_the_adapter() {
    guarded(|| {
        let live = Arc::new(AtomicUsize::new(0));
        struct Counted(Arc<AtomicUsize>);
        impl Drop for Counted {
            fn drop(&mut self) {
                self.0.fetch_sub(1, SeqCst);
            }
        }
        for take in [0usize, 5, 1000] {
            let made = Arc::clone(&live);
            let mut it = (0..1000u32)
                .lazy_par_map_init(
                    move || {
                        made.fetch_add(1, SeqCst);
                        Counted(Arc::clone(&made))
                    },
                    |_: &mut Counted, x| x,
                )
                .buffer(16)
                .start();
            for _ in 0..take {
                it.next();
            }
            drop(it);
            assert!(
                common::eventually(|| live.load(SeqCst) == 0, common::SETTLE),
                "take {take}: {} states still alive after the adapter was dropped",
                live.load(SeqCst)
            );
        }
    });
}

#[test]
fn the_init_form_keeps_the_configuration_and_forms_of_the_map() {
    guarded(|| {
        // unordered, unbounded, try_next, next_timeout, stats, the scoped form.
        let mut got: Vec<u32> = (0..100u32)
            .lazy_par_map_init(|| 1u32, |one, x| x + *one)
            .unordered()
            .collect();
        got.sort_unstable();
        assert_eq!(got, (1..=100).collect::<Vec<_>>());

        let total: u64 = (0..1000u64)
            .lazy_par_map_init(|| 0u64, |_, x| x)
            .unbounded()
            .sum();
        assert_eq!(total, 499_500);

        let mut it = (0..3u32)
            .lazy_par_map_init(|| 10u32, |ten, x| x * *ten)
            .buffer(2);
        assert_eq!(it.next_timeout(std::time::Duration::from_secs(10)), Ok(0));
        assert_eq!(it.stats().yielded, 1);
        let rest: Vec<u32> = it.collect();
        assert_eq!(rest, [10, 20]);

        let data = [1u32, 2, 3];
        let offset = 100;
        let out: Vec<u32> = lazy_par_map::scope(|s| {
            s.lazy_par_map_init(data.iter(), || offset, |off, x| x + *off)
                .collect()
        });
        assert_eq!(out, [101, 102, 103]);
    });
}
