//! The other forms of consumption and configuration: `unordered()`, `try_next()`,
//! `next_timeout()`, `stats()`, and the builder's panics.

mod common;

use common::{
    assert_settles, catch, counted, counted_with, guarded, jitter, message, pool,
    quiet_intended_panics, sleep_us, Gate, Lookahead,
};
use lazy_par_map::prelude::*;
use lazy_par_map::{NextTimeoutError, Stats, TryNextError};
use std::sync::Arc;
use std::time::{Duration, Instant};

// ---- unordered -------------------------------------------------------------------------

#[test]
fn unordered_yields_every_result_exactly_once() {
    guarded(|| {
        for n in [1, 4, 64] {
            let mut got: Vec<u64> = (0..300u64)
                .lazy_par_map(|i| {
                    sleep_us(jitter(i) % 400);
                    i * 3
                })
                .buffer(n)
                .unordered()
                .collect();
            got.sort_unstable();
            assert_eq!(
                got,
                (0..300u64).map(|i| i * 3).collect::<Vec<_>>(),
                "buffer {n}"
            );
        }
        let mut got: Vec<u64> = (0..20_000u64).lazy_par_map(|i| i).unordered().collect();
        got.sort_unstable();
        assert_eq!(got, (0..20_000u64).collect::<Vec<_>>());
        let mut got: Vec<u64> = (0..500u64)
            .lazy_par_map(|i| i)
            .unbounded()
            .unordered()
            .collect();
        got.sort_unstable();
        assert_eq!(got, (0..500u64).collect::<Vec<_>>());
    });
}

#[test]
fn unordered_does_not_hold_finished_results_behind_a_slow_one() {
    guarded(|| {
        // Item 0 waits until the consumer has received another item: an ordered adapter
        // could only deliver after the gate's limit.
        let gate = Gate::new();
        let in_f = Arc::clone(&gate);
        let mut it = (0..4u64)
            .lazy_par_map(move |i| {
                if i == 0 {
                    in_f.wait(Duration::from_secs(5));
                }
                i
            })
            .buffer(4)
            .pool(pool(2))
            .unordered();
        let first = it.next().unwrap();
        let held_back = gate.is_open() || first == 0;
        gate.open();
        let mut rest: Vec<u64> = it.collect();
        rest.push(first);
        rest.sort_unstable();
        assert_eq!(rest, [0, 1, 2, 3]);
        assert!(!held_back, "item 0 held back the finished items behind it");
    });
}

#[test]
fn unordered_keeps_the_bound() {
    guarded(|| {
        for n in [1, 3, 8] {
            for (f_us, consumer_us) in [(0, 300), (300, 0)] {
                let len = 120;
                let probe = Lookahead::new(n, len, false);
                let on_pull = Arc::clone(&probe);
                let (source, _) = counted_with(0..len, move |ordinal| on_pull.on_pull(ordinal));
                let mut it = source
                    .lazy_par_map(move |i| {
                        if f_us > 0 {
                            sleep_us(jitter(i as u64) % (2 * f_us));
                        }
                        i
                    })
                    .buffer(n)
                    .unordered();
                let mut got = Vec::new();
                while let Some(i) = probe.next(&mut it) {
                    got.push(i);
                    if consumer_us > 0 {
                        sleep_us(jitter(i as u64 + 3) % (2 * consumer_us));
                    }
                }
                probe.assert_held();
                got.sort_unstable();
                assert_eq!(got, (0..len).collect::<Vec<_>>());
            }
        }
        // A paused consumer finds exactly c + n taken, as in order.
        let (source, pulls) = counted(0u64..);
        let mut it = source.lazy_par_map(|x| x).buffer(5).unordered();
        for _ in 0..7 {
            it.next().unwrap();
        }
        assert_settles("pulls after pausing (unordered)", || pulls.started(), 12);
    });
}

#[test]
fn unordered_fallible_form_ends_at_the_first_err_to_complete() {
    guarded(|| {
        let mut it = (0..100u64)
            .try_lazy_par_map(|i| if i == 30 { Err(i) } else { Ok(i) })
            .buffer(4)
            .unordered();
        let mut oks = Vec::new();
        let err = loop {
            match it.next() {
                Some(Ok(i)) => oks.push(i),
                Some(Err(e)) => break e,
                None => panic!("ended without the Err"),
            }
        };
        assert_eq!(err, 30);
        assert!(oks.iter().all(|&i| i < 30 + 4 + 1), "{oks:?}");
        assert_eq!(it.next(), None);
    });
}

// ---- try_next and next_timeout ---------------------------------------------------------

#[test]
fn try_next_is_not_ready_until_the_item_is_done_then_finished() {
    guarded(|| {
        let gate = Gate::new();
        let in_f = Arc::clone(&gate);
        let mut it = (0..3u64)
            .lazy_par_map(move |i| {
                in_f.wait(Duration::from_secs(10));
                i
            })
            .buffer(2);
        for _ in 0..3 {
            assert_eq!(it.try_next(), Err(TryNextError::NotReady));
        }
        gate.open();
        let mut got = Vec::new();
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            match it.try_next() {
                Ok(x) => got.push(x),
                Err(TryNextError::NotReady) => {
                    assert!(Instant::now() < deadline, "never ready");
                    std::thread::yield_now();
                }
                Err(TryNextError::Finished) => break,
            }
        }
        assert_eq!(got, [0, 1, 2]);
        assert_eq!(it.try_next(), Err(TryNextError::Finished));
        assert_eq!(it.next(), None);
    });
}

#[test]
fn try_next_on_an_empty_source_ends_finished() {
    guarded(|| {
        let mut it = std::iter::empty::<u32>().lazy_par_map(|x| x);
        let deadline = Instant::now() + Duration::from_secs(10);
        while it.try_next() == Err(TryNextError::NotReady) {
            assert!(Instant::now() < deadline);
            std::thread::yield_now();
        }
        assert_eq!(it.try_next(), Err(TryNextError::Finished));
    });
}

#[test]
fn next_timeout_times_out_then_delivers_then_finishes() {
    guarded(|| {
        let gate = Gate::new();
        let in_f = Arc::clone(&gate);
        let mut it = (0..2u64)
            .lazy_par_map(move |i| {
                in_f.wait(Duration::from_secs(10));
                i
            })
            .buffer(2);
        assert_eq!(
            it.next_timeout(Duration::from_millis(20)),
            Err(NextTimeoutError::Timeout)
        );
        assert_eq!(
            it.next_timeout(Duration::ZERO),
            Err(NextTimeoutError::Timeout)
        );
        // A timeout does not end the adapter.
        gate.open();
        let long = Duration::from_secs(10);
        assert_eq!(it.next_timeout(long), Ok(0));
        assert_eq!(it.next_timeout(long), Ok(1));
        assert_eq!(it.next_timeout(long), Err(NextTimeoutError::Finished));
        assert_eq!(
            it.next_timeout(Duration::ZERO),
            Err(NextTimeoutError::Finished)
        );
        // A huge timeout is not an overflow.
        let mut it = (0..1u64).lazy_par_map(|x| x);
        assert_eq!(it.next_timeout(Duration::MAX), Ok(0));
        assert_eq!(
            it.next_timeout(Duration::MAX),
            Err(NextTimeoutError::Finished)
        );
    });
}

#[test]
fn next_timeout_waits_about_its_timeout() {
    guarded(|| {
        let gate = Gate::new();
        let in_f = Arc::clone(&gate);
        let mut it = (0..1u64)
            .lazy_par_map(move |i| {
                in_f.wait(Duration::from_secs(10));
                i
            })
            .start();
        let started = Instant::now();
        assert_eq!(
            it.next_timeout(Duration::from_millis(50)),
            Err(NextTimeoutError::Timeout)
        );
        let waited = started.elapsed();
        gate.open();
        assert!(
            waited >= Duration::from_millis(50),
            "returned early: {waited:?}"
        );
        assert!(waited < Duration::from_secs(5), "overslept: {waited:?}");
    });
}

/// The adapter of [`on_the_only_worker`].
type Gated = lazy_par_map::LazyParMap<
    std::ops::Range<u64>,
    Box<dyn Fn(u64) -> u64 + Send + Sync + 'static>,
    u64,
>;

/// Runs `call` on the only worker of the pool that runs `f`, so item 0's job can run only
/// on the calling thread. `f` waits (up to 2 s) for a gate the test opens after `call`
/// returns: a call that runs the job inline returns only after that limit. Returns what
/// `call` returned and how long it took.
fn on_the_only_worker(
    call: impl FnOnce(&mut Gated) -> String + Send + 'static,
) -> (String, Duration) {
    let one = pool(1);
    let inner = Arc::clone(&one);
    one.install(move || {
        let gate = Gate::new();
        let in_f = Arc::clone(&gate);
        let f: Box<dyn Fn(u64) -> u64 + Send + Sync + 'static> = Box::new(move |i| {
            in_f.wait(Duration::from_secs(2));
            i
        });
        let mut it: Gated = (0..2u64).lazy_par_map(f).buffer(2).pool(inner).start();
        // Let the feeder take and dispatch both items; neither can run yet.
        common::eventually(|| it.stats().taken >= 2, common::SETTLE);
        std::thread::sleep(Duration::from_millis(20));
        let started = Instant::now();
        let out = call(&mut it);
        let took = started.elapsed();
        gate.open();
        let rest: Vec<u64> = it.collect();
        assert!(rest.len() <= 2);
        (out, took)
    })
}

#[test]
fn try_next_on_a_worker_does_not_wait_for_f() {
    guarded(|| {
        let (out, took) = on_the_only_worker(|it| format!("{:?}", it.try_next()));
        assert!(
            out == "Err(NotReady)" && took < Duration::from_secs(1),
            "try_next on a worker returned {out} after {took:?}: it ran f inline"
        );
    });
}

#[test]

fn next_timeout_on_a_worker_returns_within_its_timeout() {
    guarded(|| {
        let (out, took) =
            on_the_only_worker(|it| format!("{:?}", it.next_timeout(Duration::from_millis(20))));
        assert!(
            out == "Err(Timeout)" && took < Duration::from_secs(1),
            "next_timeout(20 ms) on a worker returned {out} after {took:?}"
        );
    });
}

// ---- try_next and next_timeout of the fallible form ---------------------------------------

/// Calls `poll` (a `try_next`) until it is not `NotReady`, for at most 10 s.
fn try_next_ready(
    mut poll: impl FnMut() -> Result<Result<u64, u64>, TryNextError>,
) -> Result<Result<u64, u64>, TryNextError> {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        match poll() {
            Err(TryNextError::NotReady) => {
                assert!(Instant::now() < deadline, "never ready");
                std::thread::yield_now();
            }
            other => return other,
        }
    }
}

#[test]
fn fallible_try_next_is_not_ready_then_delivers_then_finishes_after_the_err() {
    guarded(|| {
        let gate = Gate::new();
        let in_f = Arc::clone(&gate);
        let mut it = (0..10u64)
            .try_lazy_par_map(move |i| {
                in_f.wait(Duration::from_secs(10));
                if i == 2 {
                    Err(i)
                } else {
                    Ok(i)
                }
            })
            .buffer(3);
        assert_eq!(it.try_next(), Err(TryNextError::NotReady));
        gate.open();
        let mut got = Vec::new();
        loop {
            match try_next_ready(|| it.try_next()) {
                Ok(result) => got.push(result),
                Err(TryNextError::Finished) => break,
                Err(TryNextError::NotReady) => unreachable!(),
            }
        }
        assert_eq!(got, [Ok(0), Ok(1), Err(2)]);
        assert_eq!(it.try_next(), Err(TryNextError::Finished));
        assert_eq!(it.next(), None);
        assert_eq!(it.stats().in_flight, 0);
    });
}

#[test]
fn fallible_next_timeout_times_out_then_delivers_then_finishes_after_the_err() {
    guarded(|| {
        let gate = Gate::new();
        let in_f = Arc::clone(&gate);
        let mut it = (0..10u64)
            .try_lazy_par_map(move |i| {
                in_f.wait(Duration::from_secs(10));
                if i == 1 {
                    Err(i)
                } else {
                    Ok(i)
                }
            })
            .buffer(2);
        assert_eq!(
            it.next_timeout(Duration::from_millis(20)),
            Err(NextTimeoutError::Timeout)
        );
        // A timeout does not end the adapter; the `Err` does.
        gate.open();
        let long = Duration::from_secs(10);
        assert_eq!(it.next_timeout(long), Ok(Ok(0)));
        assert_eq!(it.next_timeout(long), Ok(Err(1)));
        assert_eq!(it.next_timeout(long), Err(NextTimeoutError::Finished));
        assert_eq!(
            it.next_timeout(Duration::ZERO),
            Err(NextTimeoutError::Finished)
        );
        assert_eq!(it.try_next(), Err(TryNextError::Finished));
        assert_eq!(it.next(), None);
    });
}

#[test]
fn fallible_polling_takes_no_new_item_after_the_err() {
    guarded(|| {
        let n = 4;
        let long = Duration::from_secs(10);
        // The `Err` found by `try_next` ...
        let (source, pulls) = counted(0u64..);
        let mut it = source
            .try_lazy_par_map(|i| if i == 2 { Err(i) } else { Ok(i) })
            .buffer(n);
        assert_eq!(it.next_timeout(long), Ok(Ok(0)));
        assert_eq!(it.next_timeout(long), Ok(Ok(1)));
        assert_eq!(try_next_ready(|| it.try_next()), Ok(Err(2)));
        let pulled = pulls.started();
        assert!(pulled <= 2 + 1 + n, "{pulled} pulls");
        assert_settles("pulls after the Err", || pulls.started(), pulled);
        assert_eq!(it.try_next(), Err(TryNextError::Finished));
        assert_eq!(it.stats().in_flight, 0);
        // ... and by `next_timeout`.
        let (source, pulls) = counted(0u64..);
        let mut it = source
            .try_lazy_par_map(|i| if i == 2 { Err(i) } else { Ok(i) })
            .buffer(n);
        assert_eq!(it.next_timeout(long), Ok(Ok(0)));
        assert_eq!(it.next_timeout(long), Ok(Ok(1)));
        assert_eq!(it.next_timeout(long), Ok(Err(2)));
        let pulled = pulls.started();
        assert!(pulled <= 2 + 1 + n, "{pulled} pulls");
        assert_settles("pulls after the Err", || pulls.started(), pulled);
        assert_eq!(it.next_timeout(long), Err(NextTimeoutError::Finished));
    });
}

#[test]
fn error_types_display_and_implement_error() {
    fn is_error<E: std::error::Error + Send + Sync + 'static>(_: &E) {}
    is_error(&TryNextError::NotReady);
    is_error(&NextTimeoutError::Timeout);
    for text in [
        TryNextError::NotReady.to_string(),
        TryNextError::Finished.to_string(),
        NextTimeoutError::Timeout.to_string(),
        NextTimeoutError::Finished.to_string(),
    ] {
        assert!(!text.is_empty());
    }
}

// ---- stats -----------------------------------------------------------------------------

#[test]
fn stats_are_zero_before_start() {
    let it = (0..10u32).lazy_par_map(|x| x).buffer(3);
    assert_eq!(it.stats(), Stats::default());
    let s = it.stats();
    assert_eq!((s.taken, s.yielded, s.in_flight), (0, 0, 0));
}

#[test]
fn stats_count_taken_yielded_and_in_flight() {
    guarded(|| {
        let n = 10;
        let mut it = (0..100u64)
            .lazy_par_map(|i| {
                sleep_us(jitter(i) % 200);
                i
            })
            .buffer(n);
        let mut count = 0u64;
        while let Some(_) = it.next() {
            count += 1;
            let s = it.stats();
            assert_eq!(s.yielded, count);
            assert!(s.taken >= s.yielded, "{s:?}");
            assert!(s.in_flight <= n as u64, "{s:?}");
            assert_eq!(s.in_flight, s.taken - s.yielded, "{s:?}");
        }
        let s = it.stats();
        assert_eq!(s.yielded, 100);
        assert_eq!(s.taken, 100);
        assert_eq!(s.in_flight, 0);

        // Paused after 5: the buffer refills to exactly n.
        let mut it = (0u64..).lazy_par_map(|i| i).buffer(n);
        for _ in 0..5 {
            it.next();
        }
        assert_settles("stats().taken", || it.stats().taken, 5 + n as u64);
        assert_eq!(it.stats().in_flight, n as u64);
    });
}

#[test]
fn stats_record_who_waited() {
    guarded(|| {
        // The consumer waits for a gated item.
        let gate = Gate::new();
        let in_f = Arc::clone(&gate);
        let mut it = (0..1u64)
            .lazy_par_map(move |i| {
                in_f.wait(Duration::from_secs(10));
                i
            })
            .start();
        let opener = Arc::clone(&gate);
        let t = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(30));
            opener.open();
        });
        assert_eq!(it.next(), Some(0));
        t.join().unwrap();
        assert!(
            it.stats().consumer_waited > Duration::ZERO,
            "{:?}",
            it.stats()
        );

        // The feeder waits for a free slot behind a slow consumer.
        let mut it = (0..20u64).lazy_par_map(|i| i).buffer(1);
        for _ in 0..5 {
            it.next();
            std::thread::sleep(Duration::from_millis(5));
        }
        assert!(
            it.stats().feeder_waited > Duration::ZERO,
            "{:?}",
            it.stats()
        );
    });
}

#[test]
fn fallible_form_has_stats_too() {
    guarded(|| {
        let mut it = (0..10u64).try_lazy_par_map(Ok::<u64, ()>).buffer(3);
        assert_eq!(it.stats(), Stats::default());
        it.next();
        it.next();
        let s = it.stats();
        assert_eq!(s.yielded, 2);
        assert!(s.in_flight <= 3);
    });
}

/// Checks one reading of `stats()` against the source's pulls begun (read after it) and the
/// reading before it. `taken` may be one ahead of the source's own count: the adapter counts
/// a pull just before it calls the source's `next()`.
#[track_caller]
fn check_taken(s: Stats, pulls_begun: usize, before: &mut u64, what: &str) {
    assert!(
        s.taken >= *before,
        "{what}: taken went from {before} down to {}",
        s.taken
    );
    assert!(
        s.taken <= pulls_begun as u64 + 1,
        "{what}: taken {} with {pulls_begun} pulls begun",
        s.taken
    );
    *before = s.taken;
}

#[test]
fn stats_taken_counts_pulls_begun_and_never_decreases() {
    guarded(|| {
        // While consuming a 109-item source through 64 slots.
        for round in 0..20 {
            let what = format!("round {round}");
            let (source, pulls) = counted(0..109u64);
            let mut it = source.lazy_par_map(|x| x).buffer(64);
            let mut before = 0;
            for want in 0..109u64 {
                check_taken(it.stats(), pulls.started(), &mut before, &what);
                assert_eq!(it.next(), Some(want));
                check_taken(it.stats(), pulls.started(), &mut before, &what);
            }
            assert_eq!(it.next(), None);
            let s = it.stats();
            assert_eq!((s.taken, s.yielded, s.in_flight), (109, 109, 0), "{what}");
            check_taken(s, pulls.started(), &mut before, &what);
        }

        // While the source blocks in the middle of what would be a job: the blocked pull has
        // begun, the ones after it have not.
        for blocks_at in [70u64, 77, 83, 91] {
            let gate = Gate::new();
            let in_source = Arc::clone(&gate);
            let (source, pulls) = counted((0..109u64).inspect(move |&i| {
                if i == blocks_at {
                    in_source.wait(Duration::from_secs(20));
                }
            }));
            let mut it = source.lazy_par_map(|x| x).buffer(64);
            for want in 0..40u64 {
                assert_eq!(it.next(), Some(want));
            }
            let begun = blocks_at as usize + 1;
            let blocked = common::settle(|| pulls.started(), begun, common::SETTLE);
            assert_eq!(blocked, begun, "the feeder did not reach the blocked pull");
            let s = it.stats();
            gate.open();
            assert!(
                s.taken <= begun as u64,
                "blocked at item {blocks_at}: taken {} with {begun} pulls begun",
                s.taken
            );
            assert_eq!(it.count(), 69);
        }
    });
}

#[test]
fn an_ended_fallible_adapter_has_nothing_in_flight() {
    guarded(|| {
        for n in [1, 4, 64] {
            let mut it = (0..100u64)
                .try_lazy_par_map(|i| if i == 3 { Err(i) } else { Ok(i) })
                .buffer(n);
            for want in 0..3 {
                assert_eq!(it.next(), Some(Ok(want)));
            }
            assert_eq!(it.next(), Some(Err(3)));
            let s = it.stats();
            assert_eq!(s.in_flight, 0, "buffer {n}, after the Err: {s:?}");
            assert_eq!(it.next(), None);
            let s = it.stats();
            assert_eq!(s.in_flight, 0, "buffer {n}, at the end: {s:?}");
            assert!(s.taken >= 4, "buffer {n}: {s:?}");
        }
    });
}

// ---- the builder ---------------------------------------------------------------------------

#[track_caller]
fn assert_panics_with<T>(what: &str, needle: &str, f: impl FnOnce() -> T) {
    quiet_intended_panics();
    match catch(f) {
        Ok(_) => panic!("{what}: did not panic"),
        Err(payload) => {
            let text = message(&payload).unwrap_or("<non-string payload>");
            assert!(text.contains(needle), "{what}: panicked with {text:?}");
        }
    }
}

#[test]
fn buffer_zero_panics_naming_buffer() {
    assert_panics_with("buffer(0)", "buffer", || {
        (0..3u32).lazy_par_map(|x| x).buffer(0)
    });
    assert_panics_with("try buffer(0)", "buffer", || {
        (0..3u32).try_lazy_par_map(Ok::<u32, ()>).buffer(0)
    });
}

#[test]
fn configuring_after_start_panics() {
    guarded(configuring_after_start_panics_body);
}

fn configuring_after_start_panics_body() {
    const AFTER: &str = "after the adapter started";
    let started = || (0..10u32).lazy_par_map(|x| x).buffer(2).start();
    assert_panics_with("buffer", AFTER, || started().buffer(3));
    assert_panics_with("unbounded", AFTER, || started().unbounded());
    assert_panics_with("pool", AFTER, || started().pool(pool(1)));
    assert_panics_with("unordered", AFTER, || started().unordered());

    // `next()` starts the adapter too.
    assert_panics_with("buffer after next", AFTER, || {
        let mut it = (0..10u32).lazy_par_map(|x| x);
        it.next();
        it.buffer(3)
    });
    // So do `try_next()` and `next_timeout()`.
    assert_panics_with("buffer after try_next", AFTER, || {
        let mut it = (0..10u32).lazy_par_map(|x| x);
        let _ = it.try_next();
        it.buffer(3)
    });
    assert_panics_with("unordered after next_timeout", AFTER, || {
        let mut it = (0..10u32).lazy_par_map(|x| x);
        let _ = it.next_timeout(Duration::from_millis(1));
        it.unordered()
    });

    let try_started = || (0..10u32).try_lazy_par_map(Ok::<u32, ()>).start();
    assert_panics_with("try buffer", AFTER, || try_started().buffer(3));
    assert_panics_with("try unbounded", AFTER, || try_started().unbounded());
    assert_panics_with("try pool", AFTER, || try_started().pool(pool(1)));
    assert_panics_with("try unordered", AFTER, || try_started().unordered());
}

#[test]
fn configuration_order_does_not_matter_before_start() {
    guarded(|| {
        let a: Vec<u32> = (0..50u32)
            .lazy_par_map(|x| x + 1)
            .unbounded()
            .buffer(3)
            .pool(pool(2))
            .collect();
        let b: Vec<u32> = (0..50u32)
            .lazy_par_map(|x| x + 1)
            .pool(pool(2))
            .buffer(3)
            .collect();
        assert_eq!(a, b);
        // The last of `buffer`/`unbounded` wins.
        let (source, pulls) = counted(0u64..);
        let it = source.lazy_par_map(|x| x).unbounded().buffer(4).start();
        assert_settles("pulls", || pulls.started(), 4);
        drop(it);
    });
}
