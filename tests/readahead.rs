//! `readahead(n)`: the map's contract with the identity and no pool hop: lazy start, the
//! exact bound `c + n`, items handed over at once, the source read on the feeding thread
//! only, its panic re-raised in place, prompt drop with no pull after it, and the polling
//! forms.

mod common;

use common::{
    assert_settles, assert_stays, catch, counted, counted_with, guarded, message,
    quiet_intended_panics, Gate, Untouchable, STAY,
};
use lazy_par_map::prelude::*;
use lazy_par_map::{NextTimeoutError, TryNextError};
use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::Duration;

#[test]
fn readahead_yields_the_source_in_order() {
    guarded(|| {
        for n in [1, 3, 64, 10_000] {
            let out: Vec<u64> = (0..5000u64).readahead(n).collect();
            assert_eq!(out, (0..5000).collect::<Vec<_>>(), "readahead({n})");
        }
        let it = (0..10).readahead(4);
        assert_eq!(it.len(), 10);
    });
}

#[test]
fn building_a_readahead_pulls_nothing() {
    guarded(|| {
        let dropped = Arc::new(AtomicBool::new(false));
        let it = Untouchable {
            dropped: Arc::clone(&dropped),
        }
        .readahead(4);
        std::thread::sleep(Duration::from_millis(20));
        drop(it);
        assert!(dropped.load(std::sync::atomic::Ordering::SeqCst));
    });
}

#[test]
fn a_paused_consumer_finds_exactly_c_plus_n_read() {
    guarded(|| {
        for n in [1, 4, 16] {
            for c in [0, 1, 25] {
                let (source, pulls) = counted(0u64..);
                let mut it = source.readahead(n).start();
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
fn an_item_read_never_waits_for_the_next_read() {
    guarded(|| {
        let (tx, rx) = std::sync::mpsc::channel::<u32>();
        let mut it = rx.into_iter().readahead(64);
        for round in 0..3u32 {
            for x in 0..100 {
                tx.send(round * 100 + x).unwrap();
            }
            for x in 0..100 {
                assert_eq!(
                    it.next_timeout(Duration::from_secs(5)),
                    Ok(round * 100 + x),
                    "item {x} of burst {round} waited for the quiet channel"
                );
            }
        }
        drop(it);
        drop(tx);
    });
}

#[test]
fn a_slow_source_never_blocks_the_consumer() {
    guarded(|| {
        let gate = Gate::new();
        let in_source = Arc::clone(&gate);
        let source = (0u32..3).inspect(move |&x| {
            if x == 1 {
                in_source.wait(Duration::from_secs(20));
            }
        });
        let mut it = source.readahead(4);
        assert_eq!(it.next(), Some(0));
        assert_eq!(it.try_next(), Err(TryNextError::NotReady));
        assert_eq!(
            it.next_timeout(Duration::from_millis(20)),
            Err(NextTimeoutError::Timeout)
        );
        gate.open();
        assert_eq!(it.next_timeout(Duration::from_secs(10)), Ok(1));
        assert_eq!(it.next(), Some(2));
        // The end is known once the feeder's next pull returns `None`, which may come a
        // moment after item 2: wait for it, then it stays.
        assert_eq!(
            it.next_timeout(Duration::from_secs(10)),
            Err(NextTimeoutError::Finished)
        );
        assert_eq!(it.try_next(), Err(TryNextError::Finished));
        assert_eq!(it.next(), None);
    });
}

#[test]
fn a_source_panic_is_reraised_in_place_with_its_payload() {
    quiet_intended_panics();
    guarded(|| {
        let source = (0u32..10).inspect(|&x| {
            if x == 4 {
                panic!("intended: source fails at 4");
            }
        });
        let mut it = source.readahead(2);
        let before: Vec<u32> = it.by_ref().take(4).collect();
        assert_eq!(before, [0, 1, 2, 3]);
        let payload = catch(|| it.next()).unwrap_err();
        assert_eq!(message(&payload), Some("intended: source fails at 4"));
        assert_eq!(it.next(), None);
    });
}

#[test]
fn dropping_a_readahead_takes_no_further_item() {
    guarded(|| {
        let (source, pulls) = counted_with(0u64.., |_| {});
        let mut it = source.readahead(8);
        assert_eq!(it.next(), Some(0));
        assert_settles("pulls before the drop", || pulls.started(), 9);
        drop(it);
        assert_stays(|| pulls.started(), 9, STAY);
    });
}

#[test]
fn the_source_is_read_on_the_feeding_thread_not_on_a_pool() {
    guarded(|| {
        let names: Vec<(Option<String>, Option<usize>)> = (0..50)
            .map(|_| {
                (
                    std::thread::current().name().map(str::to_owned),
                    rayon::current_thread_index(),
                )
            })
            .readahead(8)
            .collect();
        for (name, index) in names {
            assert_eq!(name.as_deref(), Some("lazy-par-map-feeder"));
            assert_eq!(index, None, "the source ran on a rayon worker");
        }
    });
}

#[test]
#[should_panic(expected = "readahead(0)")]
fn readahead_of_zero_panics() {
    let _ = (0..3).readahead(0);
}
