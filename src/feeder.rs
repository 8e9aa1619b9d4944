//! The feeder thread: claims free slots, pulls items from the source, and hands each one to
//! the pool as soon as it is pulled.
//!
//! The feeder is the only code that touches the source after the adapter starts, so a slow
//! source never blocks the consumer. It claims a slot before each pull (so the bound holds
//! with a pull under way), pushes each item before the next pull (so no item waits for a
//! later one), and refills free slots in runs sized by [`Batching`].

use crate::mapper::MapFn;
use crate::ring::{End, Shared};
use crate::silent::Silent;
use crate::sync::{Arc, Pusher};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::Ordering::Relaxed;
use std::time::Instant;

/// A refill should bring about this much work, so that the feeder's wake-up is a few percent
/// of it.
const TARGET_REFILL_NANOS: u64 = 200_000;
/// A refill should not take the feeder longer than this in pulls: a consumer that frees
/// slots one by one gets them refilled promptly.
const PULL_BUDGET_NANOS: u64 = 20_000;
/// The largest refill, in items.
const MAX_REFILL: u64 = 16_384;

/// Chooses how many free slots the feeder waits for before it pulls again (hysteresis: a
/// fast consumer wakes it once a refill, not once an item): one while `f`'s cost is
/// unknown, when `f` is slow, or when the source is slow; up to [`TARGET_REFILL_NANOS`] of
/// work when both are fast. Never so many that fewer than two refills per thread fit in
/// the ring. Each item still goes to the pool as soon as it is pulled.
pub(crate) struct Batching {
    /// The size of the last refill; the next may be at most twice as large.
    last: u64,
    /// Recent cost of one pull from the source, in nanoseconds.
    pull_nanos: u64,
    /// Fixed batch size (loom models), or `None` to adapt.
    fixed: Option<u64>,
}

impl Batching {
    pub(crate) fn adaptive() -> Self {
        Batching {
            last: 1,
            pull_nanos: 0,
            fixed: None,
        }
    }

    #[cfg(lazy_par_map_loom)]
    pub(crate) fn fixed(size: u64) -> Self {
        Batching {
            last: size,
            pull_nanos: 0,
            fixed: Some(size),
        }
    }

    /// The size of the next refill, given the ring's capacity and the pool's threads.
    fn next_size<T, R, F>(&mut self, shared: &Shared<T, R, F>) -> u64 {
        if let Some(size) = self.fixed {
            return size;
        }
        let f_nanos = shared.f_nanos.load(Relaxed);
        if f_nanos == 0 {
            return 1;
        }
        let by_cost = TARGET_REFILL_NANOS / f_nanos.max(1);
        let by_pull = PULL_BUDGET_NANOS / self.pull_nanos.max(1);
        let by_ring = shared.cap / (2 * shared.max_runners() as u64);
        let size = by_cost
            .min(by_pull)
            .min(by_ring)
            .min(MAX_REFILL)
            .min(self.last * 2)
            .max(1);
        self.last = size;
        size
    }

    fn record_pulls(&mut self, nanos: u64, count: u64) {
        if self.fixed.is_none() && count > 0 {
            let per_item = (nanos / count).max(1);
            self.pull_nanos = if self.pull_nanos == 0 {
                per_item
            } else {
                (self.pull_nanos * 3 + per_item) / 4
            };
        }
    }
}

/// The feeder: the source, its end of the item queue and the shared state, run on its own
/// thread by [`Feeder::run`].
pub(crate) struct Feeder<I, R, F>
where
    I: Iterator,
{
    /// Dropped silently on the feeder's thread once the source has ended.
    pub(crate) source: Silent<I>,
    /// Where pulled items go; items left in it are dropped silently.
    pub(crate) pusher: Silent<Pusher<(u64, I::Item)>>,
    pub(crate) shared: Arc<Shared<I::Item, R, F>>,
    pub(crate) batching: Batching,
}

impl<I, R, F> Feeder<I, R, F>
where
    I: Iterator,
    F: MapFn<I::Item, Output = R>,
{
    /// A feeder with adaptive batching over `source`, and the consumer's handle on the
    /// same shared state, built by `shared` around the runners' end of the item queue.
    pub(crate) fn adaptive(
        source: I,
        shared: impl FnOnce(crate::sync::Queue<(u64, I::Item)>) -> Shared<I::Item, R, F>,
    ) -> (Self, Arc<Shared<I::Item, R, F>>) {
        let (pusher, queue) = crate::sync::queue();
        let shared = Arc::new(shared(queue));
        let feeder = Feeder {
            source: Silent::new(source),
            pusher: Silent::new(pusher),
            shared: Arc::clone(&shared),
            batching: Batching::adaptive(),
        };
        (feeder, shared)
    }

    /// The feeder thread's body, for a pool of `threads` threads. `start_runner` spawns a
    /// runner on the pool.
    pub(crate) fn run(mut self, threads: usize, start_runner: impl Fn(Arc<Shared<I::Item, R, F>>)) {
        let shared = &self.shared;
        shared.set_max_runners(threads);
        if shared.inline {
            // `readahead`'s identity costs nothing: refill in halves of the buffer, so that
            // the feeder and the consumer wake each other once a refill, not once an item.
            shared.f_nanos.store(1, Relaxed);
        }
        let mut taken: u64 = 0;
        let end = loop {
            if shared.is_stopped() {
                break End::Exhausted;
            }
            // Wait for a whole refill's worth of free slots (or, if the consumer is slow, for
            // whatever it frees within the ring's patience), then fill them all.
            let size = self.batching.next_size(shared);
            let mut free = shared.free_slots(taken);
            if free < size {
                match shared.wait_for_slots(taken, size) {
                    Some(now_free) => free = now_free,
                    None => break End::Exhausted,
                }
            }
            let started = Instant::now();
            let before = taken;
            let source = self.source.get_mut();
            let pusher = self.pusher.get();
            let end = match catch_unwind(AssertUnwindSafe(|| {
                // The slot is claimed (`free` counts it) before the pull, and the stop is
                // checked before every pull: after a drop, at most the pull under way.
                for _ in 0..free {
                    if shared.is_stopped() {
                        break;
                    }
                    let Some(item) = source.next() else {
                        return Some(End::Exhausted);
                    };
                    if shared.inline {
                        // No pool hop: `f` is the identity; the consumer gets the item now.
                        shared.run_inline(taken, item);
                    } else {
                        pusher.push((taken, item));
                    }
                    taken += 1;
                    if taken % 64 == 0 {
                        // Every item would cost a store to a line `stats()` reads.
                        shared.taken.0.store(taken, Relaxed);
                    }
                    if !shared.inline && shared.after_push(taken) {
                        start_runner(Arc::clone(shared));
                    }
                }
                None
            })) {
                Ok(end) => end,
                Err(payload) => Some(End::Panicked(payload)),
            };
            shared.taken.0.store(taken, Relaxed);
            self.batching
                .record_pulls(started.elapsed().as_nanos() as u64, taken - before);
            if let Some(end) = end {
                break end;
            }
        };
        shared.finish(end, taken);
        // The source is dropped here, on the feeder thread, after the consumer can see the
        // end (silently: see `silent.rs`).
    }
}
