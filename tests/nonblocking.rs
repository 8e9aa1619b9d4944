//! No blocking on the source: a slow source is read on the feeder thread only, and a result
//! is ready as soon as `f` of its item is done.
//!
//! The time limits here are generous multiples of the expected times; they only tell a
//! pipelined adapter from one that reads the source on the consumer's path.

mod common;

use common::{counted, counted_with, guarded, pool, sleep_ms, Gate};
use lazy_par_map::prelude::*;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// An infinite source that sleeps 20 ms per item.
fn slow_source() -> impl Iterator<Item = u64> + Send + 'static {
    (0u64..).inspect(|_| sleep_ms(20))
}

fn slow_f(x: u64) -> u64 {
    sleep_ms(100);
    x
}

#[test]
fn first_result_arrives_before_the_buffer_could_fill() {
    guarded(|| {
        let pool = pool(16);
        let (source, pulls) = counted(slow_source());
        let mut it = source.lazy_par_map(slow_f).buffer(64).pool(pool);
        let started = Instant::now();
        assert_eq!(it.next(), Some(0));
        let elapsed = started.elapsed();
        // Filling 64 slots from this source takes 64 * 20 ms = 1.28 s; the first result
        // needs one pull and one `f`: about 120 ms.
        assert!(
            elapsed < Duration::from_millis(900),
            "first result after {elapsed:?}"
        );
        assert!(
            pulls.started() < 64,
            "the consumer waited for the buffer to fill"
        );
    });
}

#[test]
fn slow_source_and_slow_f_overlap() {
    guarded(|| {
        let pool = pool(16);
        let it = slow_source().lazy_par_map(slow_f).buffer(64).pool(pool);
        let started = Instant::now();
        let got: Vec<u64> = it.take(10).collect();
        let elapsed = started.elapsed();
        assert_eq!(got, (0..10).collect::<Vec<_>>());
        // Sequentially: 10 * 120 ms = 1.2 s; pipelined: about 10 * 20 ms + 100 ms.
        assert!(
            elapsed < Duration::from_millis(800),
            "10 items took {elapsed:?}"
        );
    });
}

#[test]
fn a_ready_result_is_not_held_back_by_a_blocked_pull() {
    guarded(|| {
        // Item 0 comes at once; the pull of item 1 blocks until the test opens the gate.
        let gate = Gate::new();
        let in_source = Arc::clone(&gate);
        let source = (0u64..3).inspect(move |&i| {
            if i == 1 {
                in_source.wait(Duration::from_secs(10));
            }
        });
        let mut it = source.lazy_par_map(|x| x * 10).buffer(4);
        // If the consumer's `next()` pulled the source itself, this would wait for the gate.
        assert_eq!(it.next(), Some(0));
        assert!(
            !gate.is_open(),
            "item 0 came only after the blocked pull ended"
        );
        gate.open();
        assert_eq!(it.collect::<Vec<_>>(), [10, 20]);
    });
}

#[test]
fn the_source_is_read_only_on_the_feeder_thread() {
    guarded(|| {
        let names = Arc::new(Mutex::new(Vec::<String>::new()));
        let record = |names: &Arc<Mutex<Vec<String>>>| {
            let names = Arc::clone(names);
            move |_| {
                let name = std::thread::current()
                    .name()
                    .unwrap_or("<unnamed>")
                    .to_owned();
                names.lock().unwrap().push(name);
            }
        };

        // Consumed with next(), try_next(), next_timeout(), and on a rayon worker.
        let (source, _) = counted_with(0u32..50, record(&names));
        let mut it = source.lazy_par_map(|x| x).buffer(4);
        let mut got = Vec::new();
        got.extend(it.next());
        while got.len() < 10 {
            if let Ok(x) = it.try_next() {
                got.push(x);
            }
        }
        got.extend(it.next_timeout(Duration::from_secs(10)).ok());
        got.extend(it);
        assert_eq!(got, (0..50).collect::<Vec<_>>());

        let (source, _) = counted_with(0u32..50, record(&names));
        let on_pool = pool(2);
        let sum: u32 = on_pool.install(|| source.lazy_par_map(|x| x).buffer(3).sum());
        assert_eq!(sum, (0..50).sum());

        let names = names.lock().unwrap();
        assert_eq!(names.len(), 102, "every pull, the final `None` included");
        for name in names.iter() {
            assert_eq!(name, "lazy-par-map-feeder");
        }
    });
}

// ---- items already pulled never wait for a later pull ------------------------------------

/// How long an item already pulled may take to come out: it needs microseconds; this only
/// bounds how long a broken adapter takes to fail.
const READY: Duration = Duration::from_secs(5);

/// Sends `burst` items into `tx` and receives them all with `next_timeout`, while the
/// sender stays open and quiet: every item must come out without a later pull.
#[track_caller]
fn burst_comes_out<F>(
    it: &mut lazy_par_map::LazyParMap<std::sync::mpsc::IntoIter<u64>, F, u64>,
    tx: &std::sync::mpsc::Sender<u64>,
    first: u64,
    burst: u64,
    ordered: bool,
    what: &str,
) where
    F: Fn(u64) -> u64 + Send + Sync + 'static,
{
    for x in first..first + burst {
        tx.send(x).unwrap();
    }
    let mut got = Vec::new();
    for k in 0..burst {
        match it.next_timeout(READY) {
            Ok(y) => got.push(y),
            Err(e) => panic!(
                "{what}: burst of {burst} from {first}: item {k} of the burst did not come out \
                 ({e}) while the source waited for its next item"
            ),
        }
    }
    if !ordered {
        got.sort_unstable();
    }
    let want: Vec<u64> = (first..first + burst).map(|x| x + 1).collect();
    assert_eq!(got, want, "{what}: burst of {burst} from {first}");
}

#[test]
fn items_already_pulled_never_wait_for_the_next_pull() {
    guarded(|| {
        for ordered in [true, false] {
            for burst in [1u64, 5, 100, 2000] {
                let what = if ordered { "ordered" } else { "unordered" };
                let (tx, rx) = std::sync::mpsc::channel::<u64>();
                let it = rx.into_iter().lazy_par_map(|x| x + 1);
                let mut it = if ordered { it } else { it.unordered() };
                // A request-response loop: each burst is answered before the next is sent.
                for round in 0..3 {
                    burst_comes_out(&mut it, &tx, round * burst, burst, ordered, what);
                }
                drop(it);
                drop(tx); // lets the feeder, blocked in the channel, end
            }
        }
    });
}

#[test]
fn a_burst_after_a_warm_up_never_waits_for_the_next_pull() {
    guarded(|| {
        // 20,000 fast items first, so that `f`'s cost is known and jobs are large; then a
        // burst of 50 while the channel (a socket, say) stays open and quiet.
        for one_thread in [false, true] {
            let what = if one_thread {
                "pool of 1"
            } else {
                "global pool"
            };
            let (tx, rx) = std::sync::mpsc::channel::<u64>();
            let it = rx.into_iter().lazy_par_map(|x| x + 1);
            let mut it = if one_thread { it.pool(pool(1)) } else { it };
            for x in 0..20_000u64 {
                tx.send(x).unwrap();
            }
            for x in 0..20_000u64 {
                assert_eq!(
                    it.next_timeout(READY),
                    Ok(x + 1),
                    "{what}: warm-up item {x}, while the channel waits for more"
                );
            }
            burst_comes_out(&mut it, &tx, 20_000, 50, true, what);
            drop(it);
            drop(tx);
        }
    });
}

#[test]
fn items_pulled_before_a_blocked_pull_are_not_held_back() {
    guarded(|| {
        // After a fast warm-up the source blocks (until the test opens the gate) in the
        // middle of what would be a job: the items pulled before it must all come out.
        for one_thread in [false, true] {
            let what = if one_thread {
                "pool of 1"
            } else {
                "global pool"
            };
            let blocks_at = 20_050u64;
            let gate = Gate::new();
            let in_source = Arc::clone(&gate);
            let source = (0u64..30_000).inspect(move |&i| {
                if i == blocks_at {
                    in_source.wait(Duration::from_secs(20));
                }
            });
            let it = source.lazy_par_map(|x| x + 1);
            let mut it = if one_thread { it.pool(pool(1)) } else { it };
            for x in 0..blocks_at {
                match it.next_timeout(READY) {
                    Ok(y) => assert_eq!(y, x + 1, "{what}"),
                    Err(e) => panic!("{what}: item {x} held back by the blocked pull ({e})"),
                }
            }
            assert!(!gate.is_open());
            gate.open();
            assert_eq!(it.count(), 30_000 - blocks_at as usize, "{what}");
        }
    });
}
