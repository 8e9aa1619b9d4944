//! Every interleaving (up to the preemption bound) of the real protocol: the feeder, the
//! feeding threads, the ring and the consumer from `src/`, run by `lazy_par_map::loom_model`
//! on loom threads instead of OS threads and rayon's workers.
//!
//! ```text
//! RUSTFLAGS="--cfg lazy_par_map_loom" LOOM_MAX_PREEMPTIONS=2 CARGO_TARGET_DIR=target/loom \
//!     cargo test --test loom --release -- --nocapture
//! ```
//! Each model prints how many interleavings it explored. Without `LOOM_MAX_PREEMPTIONS` the
//! bound is 2. Models are kept to 2-3 items and 1-2 slots. The item queue is the real ring
//! of `queue/ring.rs`, its slots loom's `UnsafeCell`s, so an interleaving that reads and
//! writes a slot at once fails its model (with the ring's laps hidden from loom,
//! `unordered_yields_every_item_once` does). Its counters, read by several threads, let
//! loom explore stale reads: the whole run takes about 8 minutes on 2 cores (1.5 with the
//! mutex-guarded queue modelled before). Under loom `ring.rs` sets the
//! runners' linger and the consumer's spin to zero: those bounded spins only multiplied the
//! interleavings (by 10 to 100) without adding states of the protocol.
//!
//! What is not modelled:
//! - **Time.** loom's `Condvar::wait_timeout` never times out, so under loom every timed
//!   wait of `sync.rs` is a plain wait: the feeder's hysteresis (waiting at most
//!   `HYSTERESIS` for a whole refill of free slots, then refilling what is free) is not
//!   explored, and neither is any wake-up that only a timeout would deliver. A model that
//!   passes therefore shows that no wake-up is lost even without the timeouts.
//! - **rayon.** Runners are loom threads; the consumer is never on a worker, so the
//!   helping path (`run_one`, `rayon::yield_now`) is left to `tests/stress.rs`.
//! - **`SeqCst` accesses** are `AcqRel` in loom (its README); `fence(SeqCst)` is exact. The
//!   feeder's resumption does not lean on them: the consumer stores its count, fences and
//!   loads the feeder's target; the parking feeder stores the target, fences and loads the
//!   count. With the consumer's fence removed, `a_paused_consumer_finds_the_ring_refilled`
//!   fails ("the ring was not refilled to c + n").
//! - **The feeding threads** are the real `feeding.rs` on loom threads, one set per model
//!   (`FeedingThreads`); a model ends by letting them exit once no turn is queued
//!   (`settle`). Their keep-alive and the refill timers are time, hence not modelled.
#![cfg(lazy_par_map_loom)]

use lazy_par_map::loom_model::{start, start_on, Config, FeedingThreads};
use loom::sync::atomic::{AtomicBool, AtomicUsize};
use loom::sync::Arc;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::Ordering::SeqCst;
use std::time::Instant;

/// Runs `model` under loom and prints how many interleavings it explored.
fn check(name: &str, model: impl Fn() + Sync + Send + 'static) {
    quiet_model_panics();
    let runs = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let counter = std::sync::Arc::clone(&runs);
    let mut builder = loom::model::Builder::new();
    builder.preemption_bound = builder.preemption_bound.or(Some(2));
    let started = Instant::now();
    builder.check(move || {
        counter.fetch_add(1, SeqCst);
        model();
    });
    println!(
        "loom model {name}: {} interleavings in {:.1?} (preemption bound {:?})",
        runs.load(SeqCst),
        started.elapsed(),
        builder.preemption_bound,
    );
}

/// The panics the models raise on purpose start with this; the hook keeps them quiet.
const MODEL_PANIC: &str = "model:";

fn quiet_model_panics() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        let default = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            let payload = info.payload();
            let message = payload
                .downcast_ref::<&str>()
                .copied()
                .or_else(|| payload.downcast_ref::<String>().map(String::as_str));
            if !message.is_some_and(|m| m.starts_with(MODEL_PANIC)) {
                default(info);
            }
        }));
    });
}

fn config(cap: u64, max_runners: usize, batch: u64) -> Config {
    Config {
        cap,
        ordered: true,
        max_runners,
        batch,
        inline: false,
    }
}

fn payload_text(payload: &(dyn std::any::Any + Send)) -> &str {
    payload
        .downcast_ref::<&str>()
        .copied()
        .or_else(|| payload.downcast_ref::<String>().map(String::as_str))
        .unwrap_or("<not a string>")
}

/// An item that counts its drops.
struct Tracked {
    value: u32,
    drops: Arc<AtomicUsize>,
}

impl Drop for Tracked {
    fn drop(&mut self) {
        self.drops.fetch_add(1, SeqCst);
    }
}

/// A source of `n` tracked items that counts its pulls.
fn tracked_source(
    n: u32,
    pulls: Arc<AtomicUsize>,
    drops: Arc<AtomicUsize>,
) -> impl Iterator<Item = Tracked> + Send + 'static {
    (0..n).map(move |value| {
        pulls.fetch_add(1, SeqCst);
        Tracked {
            value,
            drops: Arc::clone(&drops),
        }
    })
}

// ---- order and backpressure --------------------------------------------------------------

#[test]
fn full_ring_blocks_feeder_until_consumer_takes() {
    check("full_ring_blocks_feeder_until_consumer_takes", || {
        let run = start(0..3u32, |x| x * 10, config(1, 1, 1));
        let mut run = run;
        let got: Vec<u32> = run.by_ref().collect();
        assert_eq!(got, [0, 10, 20]);
        run.join();
    });
}

#[test]
fn full_ring_with_two_runners() {
    check("full_ring_with_two_runners", || {
        let mut run = start(0..3u32, |x| x + 1, config(1, 2, 1));
        let got: Vec<u32> = run.by_ref().collect();
        assert_eq!(got, [1, 2, 3]);
        run.join();
    });
}

#[test]
fn out_of_order_completion_is_yielded_in_order() {
    check("out_of_order_completion_is_yielded_in_order", || {
        let mut run = start(0..3u32, |x| x * 2, config(2, 2, 1));
        let got: Vec<u32> = run.by_ref().collect();
        assert_eq!(got, [0, 2, 4]);
        run.join();
    });
}

#[test]
fn jobs_of_two_items_keep_order() {
    check("jobs_of_two_items_keep_order", || {
        let mut run = start(0..3u32, |x| x, config(2, 2, 2));
        let got: Vec<u32> = run.by_ref().collect();
        assert_eq!(got, [0, 1, 2]);
        run.join();
    });
}

#[test]
fn unordered_yields_every_item_once() {
    check("unordered_yields_every_item_once", || {
        let config = Config {
            ordered: false,
            ..config(2, 2, 1)
        };
        let mut run = start(0..3u32, |x| x, config);
        let mut got: Vec<u32> = run.by_ref().collect();
        got.sort_unstable();
        assert_eq!(got, [0, 1, 2]);
        run.join();
    });
}

// ---- the bound -------------------------------------------------------------------------

/// At each pull, `taken - returned <= cap`, where `returned` counts the `next()` calls that
/// have returned. A `next()` under way may already have freed its slot (it publishes before
/// it returns), so while the consumer is inside `next()` the check allows that one item.
fn bound_model(items: u32, cap: u64, max_runners: usize, batch: u64, ordered: bool) {
    bound_model_with(items, ordered, config(cap, max_runners, batch));
}

fn bound_model_with(items: u32, ordered: bool, config: Config) {
    let cap = config.cap;
    let pulls = Arc::new(AtomicUsize::new(0));
    let returned = Arc::new(AtomicUsize::new(0));
    let in_next = Arc::new(AtomicBool::new(false));
    let source = {
        let (pulls, returned, in_next) = (pulls.clone(), returned.clone(), in_next.clone());
        (0..items).inspect(move |_| {
            let taken = pulls.fetch_add(1, SeqCst) + 1;
            // `in_next` first: while it is false, `returned` equals the consumer's count.
            let busy = in_next.load(SeqCst);
            let returned = returned.load(SeqCst);
            assert!(
                taken <= cap as usize + returned + usize::from(busy),
                "bound broken: taken {taken}, returned {returned}, in next() {busy}, cap {cap}"
            );
        })
    };
    let config = Config { ordered, ..config };
    let mut run = start(source, |x| x, config);
    let mut got = Vec::new();
    loop {
        in_next.store(true, SeqCst);
        let next = run.next();
        if next.is_some() {
            returned.fetch_add(1, SeqCst);
        }
        in_next.store(false, SeqCst);
        match next {
            Some(x) => got.push(x),
            None => break,
        }
    }
    if !ordered {
        got.sort_unstable();
    }
    assert_eq!(got, (0..items).collect::<Vec<_>>());
    run.join();
    assert_eq!(pulls.load(SeqCst), items as usize);
}

#[test]
fn bound_holds_at_every_pull_cap_1() {
    check("bound_holds_at_every_pull_cap_1", || {
        bound_model(3, 1, 1, 1, true)
    });
}

#[test]
fn bound_holds_at_every_pull_cap_2_jobs_of_2() {
    check("bound_holds_at_every_pull_cap_2_jobs_of_2", || {
        bound_model(3, 2, 1, 2, true)
    });
}

#[test]
fn bound_holds_at_every_pull_cap_2_two_runners() {
    check("bound_holds_at_every_pull_cap_2_two_runners", || {
        bound_model(2, 2, 2, 1, true)
    });
}

#[test]
fn bound_holds_at_every_pull_unordered() {
    check("bound_holds_at_every_pull_unordered", || {
        bound_model(3, 1, 2, 1, false)
    });
}

/// `readahead`: the feeder hands each item to the consumer itself; order and the bound
/// hold at every pull.
#[test]
fn readahead_keeps_order_and_the_bound() {
    check("readahead_keeps_order_and_the_bound", || {
        let config = Config {
            inline: true,
            ..config(2, 1, 2)
        };
        bound_model_with(3, true, config)
    });
}

// ---- drop -------------------------------------------------------------------------------

/// Orders the drop before the test's read of the pull count, as C11 orders a `SeqCst` store
/// (`cancel`'s) before a later `SeqCst` load: loom treats `SeqCst` accesses as `AcqRel`, so
/// without this fence it reports pulls that C11 forbids. The feeder's side is the real
/// code: its `fence(SeqCst)` in `after_push` after each pull, before it re-reads `cancelled`.
fn after_drop() {
    loom::sync::atomic::fence(SeqCst);
}

/// The consumer takes `keep` items, then drops the adapter: the model must end (loom
/// reports a deadlock itself), every item taken must be dropped exactly once, and the source
/// must not be pulled after the drop beyond one pull already under way.
fn drop_model(items: u32, cap: u64, max_runners: usize, keep: usize) {
    drop_model_with(items, keep, config(cap, max_runners, 1));
}

fn drop_model_with(items: u32, keep: usize, config: Config) {
    let pulls = Arc::new(AtomicUsize::new(0));
    let drops = Arc::new(AtomicUsize::new(0));
    let source = tracked_source(items, pulls.clone(), drops.clone());
    let mut run = start(source, |t| t, config);
    let kept: Vec<Tracked> = run.by_ref().take(keep).collect();
    assert_eq!(
        kept.iter().map(|t| t.value).collect::<Vec<_>>(),
        (0..keep as u32).collect::<Vec<_>>()
    );
    drop(kept);
    run.close();
    after_drop();
    let pulled_at_drop = pulls.load(SeqCst);
    run.join();
    let pulled = pulls.load(SeqCst);
    assert!(
        pulled <= pulled_at_drop + 1,
        "the source was pulled after drop: {pulled_at_drop} then {pulled}"
    );
    assert_eq!(drops.load(SeqCst), pulled, "items lost or dropped twice");
}

#[test]
fn drop_before_first_item_while_job_runs() {
    check("drop_before_first_item_while_job_runs", || {
        drop_model(3, 2, 1, 0)
    });
}

#[test]
fn drop_after_one_item_while_feeder_waits() {
    check("drop_after_one_item_while_feeder_waits", || {
        drop_model(3, 1, 1, 1)
    });
}

#[test]
fn drop_after_one_item_two_runners() {
    check("drop_after_one_item_two_runners", || drop_model(3, 2, 2, 1));
}

// ---- an item pulled never waits for the next pull ----------------------------------------

/// The source's second pull blocks until the consumer has received the first item: if the
/// feeder held item 0 back until that pull returned (to fill a refill of `batch`), the two
/// would wait on each other and loom reports the deadlock.
fn pulled_item_model(batch: u64, max_runners: usize) {
    let gate = Arc::new(loom::sync::Notify::new());
    let in_source = Arc::clone(&gate);
    let mut pulls = 0u32;
    let source = std::iter::from_fn(move || {
        pulls += 1;
        match pulls {
            1 => Some(0u32),
            2 => {
                in_source.wait();
                Some(1)
            }
            _ => None,
        }
    });
    let mut run = start(source, |x| x, config(2, max_runners, batch));
    assert_eq!(run.next(), Some(0));
    gate.notify();
    assert_eq!(run.next(), Some(1));
    assert_eq!(run.next(), None);
    run.join();
}

#[test]
fn a_pulled_item_never_waits_for_the_next_pull() {
    check("a_pulled_item_never_waits_for_the_next_pull", || {
        pulled_item_model(2, 1)
    });
}

#[test]
fn a_pulled_item_never_waits_for_the_next_pull_two_runners() {
    check(
        "a_pulled_item_never_waits_for_the_next_pull_two_runners",
        || pulled_item_model(2, 2),
    );
}

#[test]
fn readahead_drop_after_one_item() {
    check("readahead_drop_after_one_item", || {
        let config = Config {
            inline: true,
            ..config(2, 1, 2)
        };
        drop_model_with(3, 1, config)
    });
}

// ---- panics -----------------------------------------------------------------------------

#[test]
fn panic_in_f_comes_after_prior_items() {
    check("panic_in_f_comes_after_prior_items", || {
        let mut run = start(
            0..3u32,
            |x| {
                if x == 1 {
                    panic!("model: f panics on 1");
                }
                x
            },
            config(2, 2, 1),
        );
        assert_eq!(run.next(), Some(0));
        let payload = catch_unwind(AssertUnwindSafe(|| run.next())).unwrap_err();
        assert_eq!(payload_text(&*payload), "model: f panics on 1");
        assert_eq!(run.next(), None, "the adapter is finished after a panic");
        run.join();
    });
}

#[test]
fn panic_in_f_unordered_ends_the_stream() {
    check("panic_in_f_unordered_ends_the_stream", || {
        let config = Config {
            ordered: false,
            ..config(2, 2, 1)
        };
        let mut run = start(
            0..3u32,
            |x| {
                if x == 1 {
                    panic!("model: f panics on 1");
                }
                x
            },
            config,
        );
        // In completion order the panic may come before item 0, and items after it may
        // or may not have been run; each item comes at most once, then the panic, then
        // `None`.
        let mut got = Vec::new();
        let payload = loop {
            match catch_unwind(AssertUnwindSafe(|| run.next())) {
                Ok(Some(x)) => got.push(x),
                Ok(None) => panic!("the panic of item 1 was lost; got {got:?}"),
                Err(payload) => break payload,
            }
        };
        assert_eq!(payload_text(&*payload), "model: f panics on 1");
        got.sort_unstable();
        got.dedup();
        assert!(got.len() <= 2 && got.iter().all(|&x| x != 1), "{got:?}");
        assert_eq!(run.next(), None);
        run.join();
    });
}

#[test]
fn drop_unordered_after_one_item() {
    check("drop_unordered_after_one_item", || {
        let pulls = Arc::new(AtomicUsize::new(0));
        let drops = Arc::new(AtomicUsize::new(0));
        let source = tracked_source(3, pulls.clone(), drops.clone());
        let config = Config {
            ordered: false,
            ..config(2, 2, 1)
        };
        let mut run = start(source, |t| t, config);
        assert!(run.next().is_some());
        run.close();
        after_drop();
        let pulled_at_drop = pulls.load(SeqCst);
        run.join();
        let pulled = pulls.load(SeqCst);
        assert!(pulled <= pulled_at_drop + 1);
        assert_eq!(drops.load(SeqCst), pulled, "items lost or dropped twice");
    });
}

#[test]
fn panic_in_source_comes_after_prior_items() {
    check("panic_in_source_comes_after_prior_items", || {
        let source = (0..3u32).inspect(|&x| {
            if x == 1 {
                panic!("model: source panics at 1");
            }
        });
        let mut run = start(source, |x| x, config(2, 1, 1));
        assert_eq!(run.next(), Some(0));
        let payload = catch_unwind(AssertUnwindSafe(|| run.next())).unwrap_err();
        assert_eq!(payload_text(&*payload), "model: source panics at 1");
        assert_eq!(run.next(), None);
        run.join();
    });
}

// ---- the feeding threads -------------------------------------------------------------------

/// A source that fails the model if two threads are ever inside its `next()` at once (one
/// adapter fed twice at the same time), counting its pulls.
fn exclusive_source(n: u32, pulls: Arc<AtomicUsize>) -> impl Iterator<Item = u32> + Send {
    let inside = Arc::new(AtomicBool::new(false));
    (0..n).inspect(move |_| {
        assert!(
            !inside.swap(true, SeqCst),
            "model: two feeders in one source"
        );
        pulls.fetch_add(1, SeqCst);
        inside.store(false, SeqCst);
    })
}

/// The late refill: a consumer that takes `c` items and pauses finds exactly `c + n` taken
/// once the feeding threads are idle, in every interleaving. The feeder parks in its ring
/// when the ring is full, and the consumer's `next()` resumes it; a store-load race between
/// the feeder parking and the consumer passing its target (the old engine's, which only a
/// timeout repaired) shows here as a ring left one short.
#[test]
fn a_paused_consumer_finds_the_ring_refilled() {
    // A runner's thread, or none (`readahead`'s inline hand-off) to leave loom room for two
    // slots: loom counts every thread a model ever starts.
    for (cap, inline) in [(1, false), (2, true)] {
        check(
            &format!("a_paused_consumer_finds_the_ring_refilled cap {cap}"),
            move || {
                let pulls = Arc::new(AtomicUsize::new(0));
                let feeding = FeedingThreads::new();
                let source = exclusive_source(5, pulls.clone());
                let config = Config {
                    inline,
                    ..config(cap, 1, 1)
                };
                let mut run = start_on(source, |x| x, config, &feeding);
                assert_eq!(run.next(), Some(0));
                // The consumer pauses: the feeding threads run every turn there is, then exit.
                feeding.settle();
                assert_eq!(run.taken(), 1 + cap, "the ring was not refilled to c + n");
                assert_eq!(pulls.load(SeqCst) as u64, 1 + cap);
                run.join();
            },
        );
    }
}

/// Two adapters on one set of feeding threads (no pool hop, so no runner threads): each
/// yields its items in order, no turn is lost between them (no lost wake-up of a feeding
/// thread), and no source is ever fed by two threads at once.
#[test]
fn two_adapters_share_the_feeding_threads() {
    check("two_adapters_share_the_feeding_threads", || {
        let feeding = FeedingThreads::new();
        let inline = Config {
            inline: true,
            ..config(1, 1, 1)
        };
        let (pa, pb) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
        let mut a = start_on(exclusive_source(2, pa.clone()), |x| x, inline, &feeding);
        let mut b = start_on(exclusive_source(2, pb.clone()), |x| x, inline, &feeding);
        assert_eq!(a.next(), Some(0));
        assert_eq!(b.next(), Some(0));
        assert_eq!(a.next(), Some(1));
        assert_eq!(b.next(), Some(1));
        assert_eq!((a.next(), b.next()), (None, None));
        a.join();
        b.join();
        feeding.settle();
        assert_eq!((pa.load(SeqCst), pb.load(SeqCst)), (2, 2));
    });
}

/// Dropped while its feeder is parked (ring full) or queued: the feeder is resumed only to
/// end, pulls nothing more, and drops the source.
#[test]
fn no_feeding_after_drop() {
    check("no_feeding_after_drop", || {
        let pulls = Arc::new(AtomicUsize::new(0));
        let drops = Arc::new(AtomicUsize::new(0));
        let feeding = FeedingThreads::new();
        let source = tracked_source(4, pulls.clone(), drops.clone());
        let mut run = start_on(source, |t| t, config(1, 1, 1), &feeding);
        assert_eq!(run.next().map(|t| t.value), Some(0));
        run.close();
        let pulled_at_drop = pulls.load(SeqCst);
        run.join();
        feeding.settle();
        let pulled = pulls.load(SeqCst);
        assert!(
            pulled <= pulled_at_drop + 1,
            "pulled {pulled} after {pulled_at_drop}"
        );
        assert_eq!(drops.load(SeqCst), pulled, "items lost or dropped twice");
    });
}
