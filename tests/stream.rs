//! The `stream` feature: `LazyParMap` is a `futures_core::Stream` that never blocks the
//! executor's thread, keeps input order, and wakes its task when a result is ready;
//! `into_stream()` gives a `Stream` that is not an `Iterator` (plain `s.next().await`), and
//! works on a tokio runtime; the fallible form's stream ends after its first `Err`.
#![cfg(feature = "stream")]

mod common;

use common::{
    assert_settles, catch, counted, guarded, jitter, message, pool, quiet_intended_panics,
    sleep_us, Gate,
};
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

// ---- into_stream: a Stream only ----------------------------------------------------------

/// A multi-thread tokio runtime of two workers, with timers.
fn tokio_runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_time()
        .build()
        .expect("build a tokio runtime")
}

#[test]
fn into_stream_takes_plain_stream_ext_calls() {
    // With `StreamExt` in scope, `s.next()` and `s.collect()` on the adapter itself are
    // ambiguous (E0034): this test is that they compile on `into_stream()`.
    guarded(|| {
        block_on(async {
            let mut s = (0..5u64).lazy_par_map(|i| i * i).buffer(2).into_stream();
            assert_eq!(s.next().await, Some(0));
            assert_eq!(s.next().await, Some(1));
            let rest: Vec<u64> = s.collect().await;
            assert_eq!(rest, [4, 9, 16]);

            let mut s = ["4", "2"]
                .into_iter()
                .try_lazy_par_map(str::parse::<u8>)
                .into_stream();
            assert_eq!(s.next().await, Some(Ok(4)));
            assert_eq!(s.next().await, Some(Ok(2)));
            assert_eq!(s.next().await, None);
            assert_eq!(s.next().await, None);
        });
    });
}

#[test]
fn into_stream_is_unpin_debug_and_keeps_the_size_hint() {
    guarded(|| {
        fn unpin_and_send<S: Stream + Unpin + Send>(s: S) -> S {
            s
        }
        let mut s = unpin_and_send((0..10u64).lazy_par_map(|i| i).buffer(2).into_stream());
        assert_eq!(s.size_hint(), (10, Some(10)));
        assert_eq!(next(&mut s), Some(0));
        assert_eq!(s.size_hint(), (9, Some(9)));
        assert_eq!(s.get_ref().stats().yielded, 1);
        let shown = format!("{s:?}");
        assert!(
            shown.starts_with("LazyParMapStream(LazyParMap {"),
            "{shown}"
        );
        // Back to an iterator, nothing lost.
        let rest: Vec<u64> = Iterator::collect(s.into_inner());
        assert_eq!(rest, (1..10).collect::<Vec<_>>());

        let s = unpin_and_send((0..3u64).try_lazy_par_map(Ok::<u64, ()>).into_stream());
        // Any item may be the `Err` that ends it: no lower bound.
        assert_eq!(s.size_hint(), (0, Some(3)));
        assert!(format!("{s:?}").starts_with("LazyParMapStream(TryLazyParMap {"));
    });
}

#[test]
fn streams_in_spawned_tokio_tasks_give_their_results_in_order() {
    guarded(|| {
        let runtime = tokio_runtime();
        let results = runtime.block_on(async {
            let tasks: Vec<_> = (0..6u64)
                .map(|k| {
                    tokio::spawn(async move {
                        let mut s = (0..200u64)
                            .lazy_par_map(move |i| {
                                sleep_us(jitter(i + k) % 100);
                                i * k
                            })
                            .buffer(1 + k as usize * 3)
                            .into_stream();
                        let mut got = Vec::new();
                        while let Some(x) = s.next().await {
                            got.push(x);
                        }
                        (k, got)
                    })
                })
                .collect();
            let mut results = Vec::new();
            for task in tasks {
                results.push(task.await.expect("the task panicked"));
            }
            results
        });
        assert_eq!(results.len(), 6);
        for (k, got) in results {
            assert_eq!(
                got,
                (0..200u64).map(|i| i * k).collect::<Vec<_>>(),
                "task {k}"
            );
        }
    });
}

#[test]
fn streams_of_both_forms_move_between_tokio_tasks() {
    guarded(|| {
        let runtime = tokio_runtime();
        runtime.block_on(async {
            // Started in one task, finished in another: the stream is `Send + Unpin`.
            let mut s = (0..50u64).lazy_par_map(|i| i + 1).buffer(4).into_stream();
            let mut t = (0..50u64)
                .try_lazy_par_map(|i| if i == 20 { Err(i) } else { Ok(i) })
                .buffer(4)
                .into_stream();
            assert_eq!(s.next().await, Some(1));
            assert_eq!(t.next().await, Some(Ok(0)));
            let rest = tokio::spawn(async move { s.collect::<Vec<u64>>().await });
            let tail = tokio::spawn(async move { t.collect::<Vec<_>>().await });
            assert_eq!(rest.await.unwrap(), (2..=50).collect::<Vec<_>>());
            let mut want: Vec<Result<u64, u64>> = (1..20).map(Ok).collect();
            want.push(Err(20));
            assert_eq!(tail.await.unwrap(), want);
        });
    });
}

#[test]
fn a_tokio_timeout_around_a_slow_stream_times_out_and_the_stream_goes_on() {
    guarded(|| {
        let gate = Gate::new();
        let in_f = Arc::clone(&gate);
        let mut s = (0..3u64)
            .lazy_par_map(move |i| {
                in_f.wait(Duration::from_secs(10));
                i
            })
            .buffer(2)
            .into_stream();
        let runtime = tokio_runtime();
        runtime.block_on(async {
            // `f` waits for the gate: the first `next()` cannot finish in time.
            let timed_out = tokio::time::timeout(Duration::from_millis(20), s.next()).await;
            assert!(timed_out.is_err(), "{timed_out:?}");
            let again = tokio::time::timeout(Duration::ZERO, s.next()).await;
            assert!(again.is_err(), "{again:?}");
            // The dropped `next()` futures lost nothing: the stream still has every item.
            gate.open();
            let long = Duration::from_secs(10);
            assert_eq!(tokio::time::timeout(long, s.next()).await, Ok(Some(0)));
            let rest = tokio::time::timeout(long, s.by_ref().collect::<Vec<_>>()).await;
            assert_eq!(rest, Ok(vec![1, 2]));
            assert_eq!(tokio::time::timeout(long, s.next()).await, Ok(None));
        });
    });
}

// ---- the fallible form's Stream ------------------------------------------------------------

#[test]
fn fallible_stream_ends_after_the_first_err() {
    guarded(|| {
        for n in [1, 4, 64] {
            // The adapter's own `Stream` impl, called by path ...
            let mut it = (0..100u64)
                .try_lazy_par_map(|i| if i == 3 { Err(i) } else { Ok(i) })
                .buffer(n);
            let got: Vec<Result<u64, u64>> = collect(&mut it);
            assert_eq!(got, [Ok(0), Ok(1), Ok(2), Err(3)], "buffer {n}");
            assert_eq!(next(&mut it), None);
            assert_eq!(Stream::size_hint(&it), (0, Some(0)));
            assert_eq!(it.stats().in_flight, 0, "buffer {n}");
            // ... and through `into_stream()`.
            let mut s = (0..100u64)
                .try_lazy_par_map(|i| if i == 3 { Err(i) } else { Ok(i) })
                .buffer(n)
                .into_stream();
            let got: Vec<Result<u64, u64>> = block_on(s.by_ref().collect());
            assert_eq!(got, [Ok(0), Ok(1), Ok(2), Err(3)], "buffer {n}");
            assert_eq!(block_on(s.next()), None);
            // Iterator calls agree: it stays finished.
            assert_eq!(Iterator::next(&mut s.into_inner()), None);
        }
        // The first `Err` in completion order ends the unordered form.
        let got: Vec<Result<u64, u64>> = block_on(
            (0..100u64)
                .try_lazy_par_map(|i| if i == 30 { Err(i) } else { Ok(i) })
                .buffer(4)
                .unordered()
                .into_stream()
                .collect(),
        );
        assert_eq!(got.last(), Some(&Err(30)));
        assert_eq!(got.iter().filter(|r| r.is_err()).count(), 1);
    });
}

#[test]
fn fallible_stream_takes_no_new_item_after_the_err() {
    guarded(|| {
        let n = 4;
        let (source, pulls) = counted(0u64..);
        let mut s = source
            .try_lazy_par_map(|i| if i == 2 { Err(()) } else { Ok(i) })
            .buffer(n)
            .into_stream();
        assert_eq!(next(&mut s), Some(Ok(0)));
        assert_eq!(next(&mut s), Some(Ok(1)));
        assert_eq!(next(&mut s), Some(Err(())));
        let pulled = pulls.started();
        assert!(pulled <= 2 + 1 + n, "{pulled} pulls");
        assert_settles("pulls after the Err", || pulls.started(), pulled);
        assert_eq!(next(&mut s), None);
        assert_eq!(s.get_ref().stats().in_flight, 0);
    });
}

#[test]
fn fallible_stream_reraises_a_panic_before_a_later_err() {
    quiet_intended_panics();
    guarded(|| {
        let mut s = (0..10u64)
            .try_lazy_par_map(|i| match i {
                2 => panic!("intended fallible stream panic"),
                4 => Err(i),
                _ => Ok(i),
            })
            .buffer(4)
            .into_stream();
        assert_eq!(next(&mut s), Some(Ok(0)));
        assert_eq!(next(&mut s), Some(Ok(1)));
        let payload = catch(|| next(&mut s)).unwrap_err();
        assert_eq!(message(&payload), Some("intended fallible stream panic"));
        assert_eq!(next(&mut s), None);
    });
}
