//! The `stream` feature: `LazyParMap` is a `futures_core::Stream` that never blocks the
//! executor's thread, keeps input order, and wakes its task when a result is ready.
#![cfg(feature = "stream")]

mod common;

use common::{catch, guarded, jitter, message, pool, quiet_intended_panics, sleep_us, Gate};
use futures::executor::block_on;
use futures::{Stream, StreamExt};
use lazy_par_map::prelude::*;
use std::sync::Arc;
use std::time::Duration;

/// Collects a stream on this thread's executor. (`LazyParMap` is both an `Iterator` and a
/// `Stream`, so the `StreamExt` methods are called by path.)
fn collect<S: Stream + Unpin>(stream: S) -> Vec<S::Item> {
    block_on(StreamExt::collect(stream))
}

/// Polls a stream for its next item on this thread's executor.
fn next<S: Stream + Unpin>(stream: &mut S) -> Option<S::Item> {
    block_on(StreamExt::next(stream))
}

#[test]
fn stream_collects_like_a_sequential_map() {
    guarded(|| {
        for n in [1, 7, 1024] {
            let got: Vec<u64> = collect(
                (0..1000u64)
                    .lazy_par_map(|i| {
                        sleep_us(jitter(i) % 50);
                        i * i
                    })
                    .buffer(n),
            );
            assert_eq!(
                got,
                (0..1000u64).map(|i| i * i).collect::<Vec<_>>(),
                "buffer {n}"
            );
        }
        let mut got: Vec<u64> = collect((0..500u64).lazy_par_map(|i| i).unordered());
        got.sort_unstable();
        assert_eq!(got, (0..500).collect::<Vec<_>>());
        let empty: Vec<u64> = collect(std::iter::empty::<u64>().lazy_par_map(|i| i));
        assert!(empty.is_empty());
    });
}

#[test]
fn a_slow_f_does_not_block_the_executor_thread() {
    guarded(|| {
        // `f` waits for a gate that only another future on the same thread opens: a poll
        // that blocked would never let that future run.
        let gate = Gate::new();
        let in_f = Arc::clone(&gate);
        let mut stream = (0..3u64)
            .lazy_par_map(move |i| {
                in_f.wait(Duration::from_secs(5));
                i
            })
            .buffer(2);
        let opener = Arc::clone(&gate);
        let (first, ()) = block_on(futures::future::join(
            StreamExt::next(&mut stream),
            async move {
                opener.open();
            },
        ));
        assert_eq!(first, Some(0));
        assert!(gate.is_open());
        let rest: Vec<u64> = collect(stream);
        assert_eq!(rest, [1, 2]);
    });
}

#[test]
fn the_stream_wakes_its_task_when_results_arrive() {
    guarded(|| {
        // `block_on` parks the thread while the stream is pending: only a wake-up resumes it.
        let got: Vec<u64> = collect(
            (0..40u64)
                .lazy_par_map(|i| {
                    sleep_us(1_000 + jitter(i) % 1_000);
                    i
                })
                .buffer(4)
                .pool(pool(2)),
        );
        assert_eq!(got, (0..40).collect::<Vec<_>>());
    });
}

#[test]
fn stream_and_iterator_calls_may_be_mixed() {
    guarded(|| {
        let mut it = (0..10u64).lazy_par_map(|i| i + 1).buffer(3);
        assert_eq!(Iterator::next(&mut it), Some(1));
        assert_eq!(next(&mut it), Some(2));
        assert_eq!(Iterator::next(&mut it), Some(3));
        let rest: Vec<u64> = collect(it);
        assert_eq!(rest, (4..=10).collect::<Vec<_>>());
    });
}

#[test]
fn stream_size_hint_matches_the_iterators() {
    guarded(stream_size_hint_body);
}

fn stream_size_hint_body() {
    let mut it = (0..10u64).lazy_par_map(|i| i).buffer(2);
    assert_eq!(Stream::size_hint(&it), (10, Some(10)));
    assert_eq!(next(&mut it), Some(0));
    assert_eq!(Stream::size_hint(&it), Iterator::size_hint(&it));
    assert_eq!(Stream::size_hint(&it), (9, Some(9)));
}

#[test]
fn stream_reraises_panics_in_place_then_ends() {
    quiet_intended_panics();
    guarded(|| {
        let mut stream = (0..10u64)
            .lazy_par_map(|i| {
                if i == 3 {
                    panic!("intended stream panic")
                } else {
                    i
                }
            })
            .buffer(2);
        let mut got = Vec::new();
        let payload = loop {
            match catch(|| next(&mut stream)) {
                Ok(Some(i)) => got.push(i),
                Ok(None) => panic!("the panic was swallowed"),
                Err(payload) => break payload,
            }
        };
        assert_eq!(got, [0, 1, 2]);
        assert_eq!(message(&payload), Some("intended stream panic"));
        assert_eq!(next(&mut stream), None);
    });
}

#[test]
fn a_dropped_stream_leaks_nothing() {
    guarded(|| {
        let ledger = common::Ledger::new();
        let (in_source, in_f) = (Arc::clone(&ledger), Arc::clone(&ledger));
        let stream = (0..1000u64)
            .map(move |i| in_source.make(i))
            .lazy_par_map(move |t: common::Tracked| in_f.make(t.value))
            .buffer(8);
        let firsts: Vec<u64> = collect(StreamExt::take(stream, 5).map(|t| t.value));
        assert_eq!(firsts, [0, 1, 2, 3, 4]);
        ledger.assert_all_dropped();
    });
}

#[test]

fn stream_polled_on_the_only_worker_of_its_pool_makes_progress() {
    common::watchdog(5, || {
        let one = pool(1);
        let inner = Arc::clone(&one);
        let got: Vec<u64> =
            one.install(move || collect((0..100u64).lazy_par_map(|x| x).buffer(4).pool(inner)));
        assert_eq!(got, (0..100).collect::<Vec<_>>());
    });
}

#[test]
fn a_stream_on_the_only_worker_whose_source_is_another_adapter_on_that_pool_finishes() {
    // Both stages map on the same pool of one thread, whose only worker polls the outer
    // stage: its poll must run the inner stage's jobs too (other pool work), not only its own.
    common::watchdog(10, || {
        let one = pool(1);
        let (a, b) = (Arc::clone(&one), Arc::clone(&one));
        let got: Vec<u64> = one.install(move || {
            collect(
                (0..200u64)
                    .lazy_par_map(|x| x + 1)
                    .buffer(4)
                    .pool(a)
                    .lazy_par_map(|x| x * 2)
                    .buffer(4)
                    .pool(b),
            )
        });
        assert_eq!(got, (0..200u64).map(|x| (x + 1) * 2).collect::<Vec<_>>());
    });
}
