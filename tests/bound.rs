//! Bound and laziness: at every moment `taken - returned <= n`; building does nothing;
//! `start()` prefetches exactly `n`; a paused consumer finds exactly `c + n` taken, and a
//! pipeline of `k` stages `c + j*n` at stage `j` from the end.
//!
//! Every test here takes the `serial()` lock: the laziness test counts threads, and no
//! other test of this binary may start feeders meanwhile.

mod common;

use common::{
    assert_settles, assert_stays, counted, counted_with, feeder_threads, guarded, jitter, serial,
    sleep_us, warm_global_pool, Lookahead, ThreadSnapshot, Untouchable, STAY,
};
use lazy_par_map::prelude::*;
use lazy_par_map::DEFAULT_BUFFER;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering::SeqCst};
use std::sync::Arc;

/// Runs `source.lazy_par_map(f).buffer(n)` over `0..len` with the [`Lookahead`] probe,
/// `f` taking `f_us` and the consumer `consumer_us` per item (both jittered).
fn check_lookahead(n: usize, len: usize, f_us: u64, consumer_us: u64, ordered: bool) {
    let probe = Lookahead::new(n, len, ordered);
    let on_pull = Arc::clone(&probe);
    let (source, _) = counted_with(0..len, move |ordinal| on_pull.on_pull(ordinal));
    let in_f = Arc::clone(&probe);
    let it = source
        .lazy_par_map(move |i| {
            if f_us > 0 {
                sleep_us(jitter(i as u64) % (2 * f_us));
            }
            in_f.f_done(i);
            i
        })
        .buffer(n);
    let mut it = if ordered { it } else { it.unordered() };
    let mut got = Vec::with_capacity(len);
    while let Some(i) = probe.next(&mut it) {
        got.push(i);
        if consumer_us > 0 {
            sleep_us(jitter(i as u64 + 7) % (2 * consumer_us));
        }
    }
    probe.assert_held();
    if !ordered {
        got.sort_unstable();
    }
    assert_eq!(got, (0..len).collect::<Vec<_>>());
}

#[test]
fn lookahead_never_exceeds_buffer_with_a_slow_consumer_and_fast_f() {
    let _serial = serial();
    guarded(|| {
        for n in [1, 3, 8] {
            check_lookahead(n, 120, 0, 300, true);
        }
    });
}

#[test]
fn lookahead_never_exceeds_buffer_with_a_fast_consumer_and_slow_f() {
    let _serial = serial();
    guarded(|| {
        for n in [1, 3, 8] {
            check_lookahead(n, 120, 300, 0, true);
        }
    });
}

#[test]
fn lookahead_never_exceeds_buffer_when_everything_is_fast() {
    let _serial = serial();
    guarded(|| {
        for n in [1, 2, 16, 64] {
            check_lookahead(n, 5_000, 0, 0, true);
        }
    });
}

#[test]
fn lookahead_never_exceeds_buffer_unordered_while_earlier_items_are_slower() {
    let _serial = serial();
    guarded(|| {
        // In completion order the consumer returns later items while earlier ones are still
        // in a runner's hands, so the feeder refills slots past them: the item queue must
        // not hand it a slot still in use (`queue/ring.rs`).
        for n in [1, 2, 3, 8] {
            check_lookahead(n, 300, 300, 0, false);
        }
    });
}

#[test]
fn lookahead_never_exceeds_buffer_on_either_side_of_the_ring_limit() {
    let _serial = serial();
    guarded(|| {
        // Buffers up to 65,536 items queue them in a ring of slots, larger ones in a deque
        // (`queue/mod.rs`): both keep the bound and the order over several laps.
        for n in [65_536, 65_537] {
            check_lookahead(n, 2 * n + 1_000, 0, 0, true);
            check_lookahead(n, 2 * n + 1_000, 0, 0, false);
        }
    });
}

#[test]
fn building_the_adapter_touches_nothing_and_starts_no_thread() {
    let _serial = serial();
    guarded(|| {
        warm_global_pool();
        let custom = common::pool(1);
        let threads = ThreadSnapshot::take();
        let feeders = feeder_threads();
        let dropped = Arc::new(AtomicBool::new(false));
        let source = Untouchable {
            dropped: Arc::clone(&dropped),
        };
        let it = source
            .lazy_par_map(|_: u64| -> u64 { panic!("f called before start") })
            .buffer(4)
            .pool(custom)
            .unordered();
        let try_it = Untouchable {
            dropped: Arc::new(AtomicBool::new(false)),
        }
        .try_lazy_par_map(|_: u64| -> Result<u64, ()> { panic!("f called before start") })
        .buffer(4);
        std::thread::sleep(STAY);
        assert!(feeder_threads() <= feeders, "a feeder thread was started");
        threads.assert_no_new_threads();
        assert_eq!(it.stats(), Default::default());
        assert_eq!(try_it.stats(), Default::default());
        drop(it);
        drop(try_it);
        assert!(
            dropped.load(SeqCst),
            "the source was not dropped with the adapter"
        );
    });
}

#[test]
fn start_prefetches_exactly_buffer_items() {
    let _serial = serial();
    guarded(|| {
        for n in [1, 5, 32] {
            let calls = Arc::new(AtomicUsize::new(0));
            let in_f = Arc::clone(&calls);
            let (source, pulls) = counted(0u64..);
            let it = source
                .lazy_par_map(move |x| {
                    in_f.fetch_add(1, SeqCst);
                    x
                })
                .buffer(n)
                .start();
            assert_settles("pulls after start", || pulls.started(), n);
            assert_settles("f calls after start", || calls.load(SeqCst), n);
            assert_eq!(it.stats().taken, n as u64);
            assert_eq!(it.stats().yielded, 0);
            drop(it);
        }
    });
}

#[test]
fn start_is_idempotent_and_next_after_start_is_fine() {
    let _serial = serial();
    guarded(|| {
        let (source, pulls) = counted(0u32..10);
        let mut it = source.lazy_par_map(|x| x).buffer(3).start().start();
        assert_settles("pulls", || pulls.started(), 3);
        assert_eq!(it.next(), Some(0));
        assert_eq!(it.collect::<Vec<_>>(), (1..10).collect::<Vec<_>>());
    });
}

#[test]
fn default_buffer_bounds_the_lookahead() {
    let _serial = serial();
    guarded(|| {
        let (source, pulls) = counted(0u64..);
        let it = source.lazy_par_map(|x| x).start();
        assert_settles(
            "pulls with the default buffer",
            || pulls.started(),
            DEFAULT_BUFFER,
        );
        drop(it);
    });
}

#[test]
fn paused_consumer_finds_exactly_c_plus_n_taken() {
    let _serial = serial();
    guarded(|| {
        for n in [1, 4, 16] {
            for c in [1, 3, 25] {
                let (source, pulls) = counted(0u64..);
                let mut it = source
                    .lazy_par_map(|x| {
                        sleep_us(jitter(x) % 300);
                        x
                    })
                    .buffer(n);
                for want in 0..c as u64 {
                    assert_eq!(it.next(), Some(want));
                }
                assert_settles(
                    &format!("pulls after pausing at c={c}, n={n}"),
                    || pulls.started(),
                    c + n,
                );
                let stats = it.stats();
                assert_eq!(stats.yielded, c as u64);
                assert_eq!(stats.taken, (c + n) as u64);
                assert_eq!(stats.in_flight, n as u64);
            }
        }
    });
}

#[test]
fn a_pipeline_of_three_stages_fills_each_stage_exactly() {
    let _serial = serial();
    guarded(|| {
        let n = 3;
        let c = 5;
        let counter = || Arc::new(AtomicUsize::new(0));
        let (f_calls, g_calls, h_calls) = (counter(), counter(), counter());
        let (f_in, g_in, h_in) = (
            Arc::clone(&f_calls),
            Arc::clone(&g_calls),
            Arc::clone(&h_calls),
        );
        let (source, pulls) = counted(0u64..);
        let mut it = source
            .lazy_par_map(move |x| {
                f_in.fetch_add(1, SeqCst);
                x + 1
            })
            .buffer(n)
            .lazy_par_map(move |x| {
                g_in.fetch_add(1, SeqCst);
                x * 2
            })
            .buffer(n)
            .lazy_par_map(move |x| {
                h_in.fetch_add(1, SeqCst);
                x + 3
            })
            .buffer(n);
        for i in 0..c as u64 {
            assert_eq!(it.next(), Some((i + 1) * 2 + 3));
        }
        assert_settles("h calls", || h_calls.load(SeqCst), c + n);
        assert_settles("g calls", || g_calls.load(SeqCst), c + 2 * n);
        assert_settles("f calls", || f_calls.load(SeqCst), c + 3 * n);
        assert_settles("source pulls", || pulls.started(), c + 3 * n);
    });
}

#[test]
fn unbounded_reads_ahead_the_whole_finite_source() {
    let _serial = serial();
    guarded(|| {
        let (source, pulls) = counted(0u32..500);
        let mut it = source.lazy_par_map(|x| x).unbounded().start();
        assert_settles("items taken", || pulls.produced(), 500);
        assert_eq!(it.next(), Some(0));
        assert_eq!(it.count(), 499);
    });
}

#[test]
fn infinite_source_with_take_stays_bounded() {
    let _serial = serial();
    guarded(|| {
        let (k, n) = (200, 8);
        let (source, pulls) = counted(0u64..);
        let got: Vec<u64> = source.lazy_par_map(|x| x * 2).buffer(n).take(k).collect();
        assert_eq!(got, (0..k as u64).map(|x| x * 2).collect::<Vec<_>>());
        let taken = pulls.started();
        assert!(
            taken <= k + n,
            "{taken} pulls for {k} items with buffer {n}"
        );
        // The adapter was dropped by `take`: the count stays put.
        assert_stays(|| pulls.started(), taken, STAY);

        let (source, pulls) = counted(0u64..);
        let got: Vec<u64> = source.lazy_par_map(|x| x).take(5).collect();
        assert_eq!(got, [0, 1, 2, 3, 4]);
        assert!(pulls.started() <= 5 + DEFAULT_BUFFER);
    });
}

#[test]
fn fallible_form_obeys_the_same_bound() {
    let _serial = serial();
    guarded(|| {
        let n = 6;
        let (source, pulls) = counted(0u64..);
        let mut it = source.try_lazy_par_map(Ok::<u64, ()>).buffer(n).start();
        assert_settles("pulls after start", || pulls.started(), n);
        for i in 0..4 {
            assert_eq!(it.next(), Some(Ok(i)));
        }
        assert_settles("pulls after pausing", || pulls.started(), 4 + n);
    });
}

#[test]
fn a_huge_buffer_is_a_bound_not_an_allocation() {
    let _serial = serial();
    guarded(|| {
        let got: Vec<u32> = (0..100u32).lazy_par_map(|x| x).buffer(usize::MAX).collect();
        assert_eq!(got, (0..100).collect::<Vec<_>>());
        let (source, pulls) = counted(0u64..);
        let got: Vec<u64> = source
            .lazy_par_map(|x| x)
            .buffer(1 << 40)
            .take(10)
            .collect();
        assert_eq!(got, (0..10).collect::<Vec<_>>());
        assert!(pulls.started() >= 10);
    });
}
