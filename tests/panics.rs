//! Panics: a panic in `f` for item `k` (or in the source where item `k` would be) is
//! re-raised with its payload by the `next()` that would return item `k`, after every
//! earlier item; the adapter is then finished. Never swallowed, never an abort, never a
//! hang. The fallible form ends at the first `Err`.

mod common;

use common::{
    assert_settles, catch, counted, guarded, jitter, message, pool, quiet_intended_panics,
    sleep_us, Payload,
};
use lazy_par_map::prelude::*;
use rayon::prelude::*;
use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};
use std::sync::Arc;

/// Drains `it`, catching the first panic: the items before it, and its payload.
fn drain_until_panic<I: Iterator>(it: &mut I) -> (Vec<I::Item>, Option<Payload>) {
    let mut items = Vec::new();
    loop {
        match catch(|| it.next()) {
            Ok(Some(item)) => items.push(item),
            Ok(None) => return (items, None),
            Err(payload) => return (items, Some(payload)),
        }
    }
}

#[track_caller]
fn assert_finished<I: Iterator>(it: &mut I) {
    for _ in 0..5 {
        match catch(|| it.next()) {
            Ok(None) => {}
            Ok(Some(_)) => panic!("an item came after the adapter failed"),
            Err(_) => panic!("the adapter panicked again after it failed"),
        }
    }
}

#[test]
fn panic_in_f_is_reraised_in_place_after_every_earlier_item() {
    quiet_intended_panics();
    guarded(|| {
        for n in [1, 4, 64] {
            for k in [0u64, 5, 37] {
                let mut it = (0..100u64)
                    .lazy_par_map(move |i| {
                        sleep_us(jitter(i) % 300);
                        if i == k {
                            panic!("intended panic at {i}");
                        }
                        i
                    })
                    .buffer(n);
                let (items, payload) = drain_until_panic(&mut it);
                assert_eq!(items, (0..k).collect::<Vec<_>>(), "buffer {n}, k {k}");
                let payload = payload.expect("the panic was swallowed");
                assert_eq!(
                    message(&payload),
                    Some(format!("intended panic at {k}").as_str())
                );
                assert_finished(&mut it);
                assert_eq!(it.size_hint(), (0, Some(0)));
            }
        }
    });
}

#[test]
fn panic_in_f_waits_for_slower_earlier_items() {
    quiet_intended_panics();
    guarded(|| {
        // Item 6 panics at once while items 0..6 are still sleeping.
        let mut it = (0..20u64)
            .lazy_par_map(|i| {
                if i == 6 {
                    panic!("intended: fast panic");
                }
                sleep_us(3_000);
                i
            })
            .buffer(8)
            .pool(pool(4));
        let (items, payload) = drain_until_panic(&mut it);
        assert_eq!(items, (0..6).collect::<Vec<_>>());
        assert_eq!(message(&payload.unwrap()), Some("intended: fast panic"));
        assert_finished(&mut it);
    });
}

#[test]
fn static_str_payload_survives() {
    quiet_intended_panics();
    guarded(|| {
        let mut it = (0..10u32)
            .lazy_par_map(|i| if i == 3 { panic!("intended static") } else { i })
            .buffer(2);
        let (items, payload) = drain_until_panic(&mut it);
        assert_eq!(items, [0, 1, 2]);
        let payload = payload.unwrap();
        assert_eq!(payload.downcast_ref::<&str>(), Some(&"intended static"));
    });
}

#[derive(Debug, PartialEq)]
struct Oops {
    code: u32,
}

#[test]
fn non_string_payloads_survive() {
    quiet_intended_panics();
    guarded(|| {
        let mut it = (0..10u32)
            .lazy_par_map(|i| {
                if i == 4 {
                    std::panic::panic_any(42u32);
                }
                i
            })
            .buffer(3);
        let (items, payload) = drain_until_panic(&mut it);
        assert_eq!(items, [0, 1, 2, 3]);
        assert_eq!(payload.unwrap().downcast_ref::<u32>(), Some(&42));

        let mut it = (0..10u32)
            .lazy_par_map(|i| {
                if i == 2 {
                    std::panic::panic_any(Oops { code: 7 });
                }
                i
            })
            .buffer(3);
        let (items, payload) = drain_until_panic(&mut it);
        assert_eq!(items, [0, 1]);
        assert_eq!(
            payload.unwrap().downcast_ref::<Oops>(),
            Some(&Oops { code: 7 })
        );
    });
}

#[test]
fn panic_in_the_source_is_reraised_in_place() {
    quiet_intended_panics();
    guarded(|| {
        for n in [1, 3, 50] {
            for k in [0u64, 1, 9] {
                let source = (0u64..).inspect(move |&i| {
                    if i == k {
                        panic!("intended source panic at {i}");
                    }
                });
                let mut it = source
                    .lazy_par_map(|i| {
                        sleep_us(jitter(i) % 500);
                        i * 2
                    })
                    .buffer(n);
                let (items, payload) = drain_until_panic(&mut it);
                assert_eq!(items, (0..k).map(|i| i * 2).collect::<Vec<_>>());
                let payload = payload.expect("the source's panic was swallowed");
                assert_eq!(
                    message(&payload),
                    Some(format!("intended source panic at {k}").as_str())
                );
                assert_finished(&mut it);
            }
        }
    });
}

#[test]
fn panic_is_reraised_by_try_next_and_next_timeout_too() {
    quiet_intended_panics();
    guarded(|| {
        let mut it = (0..5u32)
            .lazy_par_map(|i| {
                if i == 1 {
                    panic!("intended try_next")
                } else {
                    i
                }
            })
            .buffer(2);
        let mut got = Vec::new();
        let payload = loop {
            match catch(|| it.try_next()) {
                Ok(Ok(x)) => got.push(x),
                Ok(Err(lazy_par_map::TryNextError::NotReady)) => std::thread::yield_now(),
                Ok(Err(lazy_par_map::TryNextError::Finished)) => panic!("no panic re-raised"),
                Err(payload) => break payload,
            }
        };
        assert_eq!(got, [0]);
        assert_eq!(message(&payload), Some("intended try_next"));
        assert_eq!(it.try_next(), Err(lazy_par_map::TryNextError::Finished));

        let mut it = (0..5u32)
            .lazy_par_map(|i| {
                if i == 0 {
                    panic!("intended next_timeout")
                } else {
                    i
                }
            })
            .buffer(2);
        let timeout = std::time::Duration::from_secs(10);
        let payload = catch(|| it.next_timeout(timeout)).unwrap_err();
        assert_eq!(message(&payload), Some("intended next_timeout"));
        assert_eq!(
            it.next_timeout(timeout),
            Err(lazy_par_map::NextTimeoutError::Finished)
        );
    });
}

#[test]
fn unordered_panic_is_reraised_and_then_finished() {
    quiet_intended_panics();
    guarded(|| {
        let mut it = (0..50u32)
            .lazy_par_map(|i| {
                if i == 20 {
                    panic!("intended unordered")
                } else {
                    i
                }
            })
            .buffer(5)
            .unordered();
        let (items, payload) = drain_until_panic(&mut it);
        assert!(items.len() <= 49 && !items.contains(&20));
        assert_eq!(message(&payload.unwrap()), Some("intended unordered"));
        assert_finished(&mut it);
    });
}

#[test]
fn panics_do_not_poison_a_custom_pool() {
    quiet_intended_panics();
    guarded(|| {
        let pool = pool(2);
        for round in 0..5 {
            let mut it = (0..30u64)
                .lazy_par_map(|i| {
                    if i % 7 == 3 {
                        panic!("intended pool panic");
                    }
                    i
                })
                .buffer(4)
                .pool(Arc::clone(&pool));
            let (items, payload) = drain_until_panic(&mut it);
            assert_eq!(items, [0, 1, 2], "round {round}");
            assert!(payload.is_some());
        }
        let sum: u64 = pool.install(|| (0..1000u64).into_par_iter().sum());
        assert_eq!(sum, 499_500);
        let sum: u64 = (0..1000u64)
            .lazy_par_map(|x| x)
            .pool(Arc::clone(&pool))
            .sum();
        assert_eq!(sum, 499_500);
    });
}

#[test]
fn every_item_panicking_neither_aborts_nor_hangs() {
    quiet_intended_panics();
    guarded(|| {
        for n in [1, 2, 16] {
            let mut it = (0..200u32)
                .lazy_par_map(|_| -> u32 { panic!("intended: all panic") })
                .buffer(n);
            let (items, payload) = drain_until_panic(&mut it);
            assert!(items.is_empty());
            assert!(payload.is_some());
            assert_finished(&mut it);
        }
    });
}

#[test]
fn dropping_an_adapter_with_a_pending_panic_is_quiet() {
    quiet_intended_panics();
    guarded(|| {
        let mut it = (0..10u32)
            .lazy_par_map(|i| {
                if i == 2 {
                    panic!("intended, never seen")
                } else {
                    i
                }
            })
            .buffer(8);
        assert_eq!(it.next(), Some(0));
        // The panic of item 2 is pending or in flight; dropping must not raise it.
        drop(it);
    });
}

#[test]
fn the_earliest_failure_in_input_order_wins() {
    quiet_intended_panics();
    guarded(|| {
        // `f` panics at item 2 (slowly); the source panics where item 5 would be.
        let source = (0u64..).inspect(|&i| {
            if i == 5 {
                panic!("intended: source at 5");
            }
        });
        let mut it = source
            .lazy_par_map(|i| {
                if i == 2 {
                    sleep_us(5_000);
                    panic!("intended: f at 2");
                }
                i
            })
            .buffer(8);
        let (items, payload) = drain_until_panic(&mut it);
        assert_eq!(items, [0, 1]);
        assert_eq!(message(&payload.unwrap()), Some("intended: f at 2"));
        assert_finished(&mut it);

        // A later item panicking first does not overtake an earlier slow one.
        let mut it = (0..20u64)
            .lazy_par_map(|i| match i {
                3 => {
                    sleep_us(5_000);
                    panic!("intended: f at 3")
                }
                7 => panic!("intended: f at 7"),
                _ => i,
            })
            .buffer(10)
            .pool(pool(4));
        let (items, payload) = drain_until_panic(&mut it);
        assert_eq!(items, [0, 1, 2]);
        assert_eq!(message(&payload.unwrap()), Some("intended: f at 3"));
    });
}

// ---- the fallible form -----------------------------------------------------------------

#[test]
fn fallible_form_yields_oks_in_order_then_the_first_err_then_none() {
    guarded(|| {
        for n in [1, 3, 32] {
            // Errors at 12 and 15: the first in input order wins even if 15 finishes first.
            let mut it = (0..100u64)
                .try_lazy_par_map(|i| {
                    if i != 15 {
                        sleep_us(jitter(i) % 400);
                    }
                    if i == 12 || i == 15 {
                        Err(format!("bad {i}"))
                    } else {
                        Ok(i)
                    }
                })
                .buffer(n);
            for want in 0..12 {
                assert_eq!(it.next(), Some(Ok(want)), "buffer {n}");
            }
            assert_eq!(it.next(), Some(Err("bad 12".to_owned())), "buffer {n}");
            for _ in 0..5 {
                assert_eq!(it.next(), None);
            }
            assert_eq!(it.size_hint(), (0, Some(0)));
        }
    });
}

#[test]
fn fallible_form_stops_pulling_and_mapping_after_the_err() {
    guarded(|| {
        for n in [1, 4, 16] {
            let err_at = 10u64;
            let calls = Arc::new(AtomicUsize::new(0));
            let in_f = Arc::clone(&calls);
            let (source, pulls) = counted(0u64..);
            let it = source
                .try_lazy_par_map(move |i| {
                    in_f.fetch_add(1, SeqCst);
                    if i == err_at {
                        Err(i)
                    } else {
                        Ok(i)
                    }
                })
                .buffer(n);
            let out: Result<Vec<u64>, u64> = it.collect();
            assert_eq!(out, Err(err_at));
            // Whatever was pulled by now stays: no new pull after the `Err`.
            let pulled = pulls.started();
            assert_settles("pulls after the Err", || pulls.started(), pulled);
            let f_calls = calls.load(SeqCst);
            assert!(
                f_calls as u64 <= err_at + n as u64 + 1,
                "buffer {n}: f called {f_calls} times for an Err at {err_at}"
            );
            assert!(pulled as u64 <= err_at + n as u64 + 1, "{pulled} pulls");
        }
    });
}

#[test]
fn fallible_form_stops_pulling_while_the_adapter_is_kept() {
    guarded(|| {
        let n = 4;
        let (source, pulls) = counted(0u64..);
        let mut it = source
            .try_lazy_par_map(|i| if i == 2 { Err(()) } else { Ok(i) })
            .buffer(n);
        assert_eq!(it.next(), Some(Ok(0)));
        assert_eq!(it.next(), Some(Ok(1)));
        assert_eq!(it.next(), Some(Err(())));
        let pulled = pulls.started();
        assert!(pulled <= 2 + 1 + n, "{pulled} pulls");
        assert_settles("pulls after the Err", || pulls.started(), pulled);
        assert_eq!(it.next(), None);
    });
}

#[test]
fn fallible_form_reports_whichever_of_err_and_panic_comes_first_in_input_order() {
    quiet_intended_panics();
    guarded(|| {
        // `Err` at 4 before a panic at 9: the `Err`, then the end; the panic is dropped.
        let mut it = (0..20u64)
            .try_lazy_par_map(|i| match i {
                4 => {
                    sleep_us(3_000);
                    Err(i)
                }
                9 => panic!("intended: after the Err"),
                _ => Ok(i),
            })
            .buffer(12)
            .pool(pool(3));
        let (items, payload) = drain_until_panic(&mut it);
        assert!(payload.is_none(), "a panic after the Err was raised");
        assert_eq!(items, [Ok(0), Ok(1), Ok(2), Ok(3), Err(4)]);

        // A panic at 2 before an `Err` at 6: the panic.
        let mut it = (0..20u64)
            .try_lazy_par_map(|i| match i {
                2 => {
                    sleep_us(3_000);
                    panic!("intended: before the Err")
                }
                6 => Err(i),
                _ => Ok(i),
            })
            .buffer(12)
            .pool(pool(3));
        let (items, payload) = drain_until_panic(&mut it);
        assert_eq!(items, [Ok(0), Ok(1)]);
        assert_eq!(message(&payload.unwrap()), Some("intended: before the Err"));
        assert_finished(&mut it);
    });
}

#[test]
fn fallible_form_reraises_panics_like_the_plain_form() {
    quiet_intended_panics();
    guarded(|| {
        let mut it = (0..10u32)
            .try_lazy_par_map(|i| {
                if i == 3 {
                    panic!("intended fallible panic");
                }
                Ok::<u32, ()>(i)
            })
            .buffer(2);
        let (items, payload) = drain_until_panic(&mut it);
        assert_eq!(items, [Ok(0), Ok(1), Ok(2)]);
        assert_eq!(message(&payload.unwrap()), Some("intended fallible panic"));
        assert_finished(&mut it);
    });
}

// ---- a result whose `Drop` panics does not replace the outcome -------------------------

/// A payload's message for a failure report. (The quiet panic hook hides any message that
/// contains the word the intended panics carry, the report's own included.)
fn shown(payload: &Payload) -> String {
    format!("{:?}", message(payload)).replace("intended", "on purpose")
}

/// A result that panics when dropped while `armed`. (One armed result per adapter: two
/// panicking drops in one container would abort the test binary whatever the adapter did.)
struct Touchy {
    index: u64,
    armed: bool,
}

impl Touchy {
    /// Disarms it and returns its index.
    fn defuse(mut self) -> u64 {
        self.armed = false;
        self.index
    }
}

impl Drop for Touchy {
    fn drop(&mut self) {
        if self.armed {
            panic!("intended: result {}'s Drop panics", self.index);
        }
    }
}

#[test]
fn fs_panic_is_raised_even_when_a_later_result_panics_when_dropped() {
    quiet_intended_panics();
    guarded(|| {
        for armed in 1..=3u64 {
            for n in [4, 8] {
                // Item 0 panics after 100 ms; the armed result is finished long before and
                // waits its turn when the adapter ends at item 0.
                let mut it = (0..10u64)
                    .lazy_par_map(move |i| {
                        if i == 0 {
                            sleep_us(100_000);
                            panic!("intended: f panicked at 0");
                        }
                        Touchy {
                            index: i,
                            armed: i == armed,
                        }
                    })
                    .buffer(n)
                    .pool(pool(2));
                match catch(|| it.next()) {
                    Err(payload) => assert!(
                        message(&payload) == Some("intended: f panicked at 0"),
                        "armed result {armed}, buffer {n}: the wrong payload: {}",
                        shown(&payload)
                    ),
                    Ok(got) => panic!(
                        "armed result {armed}, buffer {n}: next() gave {:?}, not f's panic",
                        got.map(Touchy::defuse)
                    ),
                }
                assert!(
                    matches!(catch(|| it.next().map(Touchy::defuse)), Ok(None)),
                    "armed result {armed}, buffer {n}: not finished after f's panic"
                );
                // Where the armed result's panic goes is the adapter's business.
                let _ = catch(move || drop(it));
            }
        }
    });
}

#[test]
fn fallible_forms_err_is_returned_even_when_a_later_result_panics_when_dropped() {
    quiet_intended_panics();
    guarded(|| {
        for armed in 1..=3u64 {
            for n in [4, 8] {
                let mut it = (0..10u64)
                    .try_lazy_par_map(move |i| {
                        if i == 0 {
                            sleep_us(100_000);
                            return Err(format!("bad {i}"));
                        }
                        Ok(Touchy {
                            index: i,
                            armed: i == armed,
                        })
                    })
                    .buffer(n)
                    .pool(pool(2));
                match catch(|| it.next()) {
                    Ok(Some(Err(e))) => assert_eq!(e, "bad 0"),
                    Ok(Some(Ok(t))) => panic!("armed {armed}: Ok({}) before the Err", t.defuse()),
                    Ok(None) => panic!("armed {armed}, buffer {n}: the Err was lost (None)"),
                    Err(payload) => panic!(
                        "armed {armed}, buffer {n}: the Err was lost to a panic: {}",
                        shown(&payload)
                    ),
                }
                assert!(
                    matches!(catch(|| it.next().map(|r| r.map(Touchy::defuse))), Ok(None)),
                    "armed result {armed}, buffer {n}: not finished after the Err"
                );
                let _ = catch(move || drop(it));
            }
        }
    });
}
