//! The feeder thread: claims free slots, pulls that many items from the source, and hands
//! them to the pool as jobs.
//!
//! The feeder is the only code that touches the source after the adapter starts, so a slow
//! source never blocks the consumer. It claims a slot before each pull (so the bound holds
//! with a pull under way) and refills every free slot, in jobs sized by [`Batching`].

use crate::ring::{End, Job, Shared};
use crate::sync::Arc;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::Ordering::Relaxed;
use std::time::Instant;

/// A job should take about this long to run, so that its fixed cost (a lock, perhaps a
/// wake-up) is a few percent of it.
const TARGET_JOB_NANOS: u64 = 200_000;
/// The first item of a job should not wait longer than this for the rest to be pulled.
const PULL_BUDGET_NANOS: u64 = 20_000;
/// The largest job, in items.
const MAX_BATCH: u64 = 16_384;

/// Chooses how many items go in the next job: one while `f`'s cost is unknown, when `f` is
/// slow, or when the source is slow (laziness and latency first); up to
/// [`TARGET_JOB_NANOS`] of work when both are fast (throughput). Never more than the free
/// slots, and never so many that fewer than two jobs per thread fit in the ring.
pub(crate) struct Batching {
    /// The size of the last job; the next may be at most twice as large.
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

    /// The size of the next job, given the ring's capacity and the pool's threads.
    fn next_size<T, R, F>(&mut self, shared: &Shared<T, R, F>) -> u64 {
        if let Some(size) = self.fixed {
            return size;
        }
        let f_nanos = shared.f_nanos.load(Relaxed);
        if f_nanos == 0 {
            return 1;
        }
        let by_cost = TARGET_JOB_NANOS / f_nanos.max(1);
        let by_pull = PULL_BUDGET_NANOS / self.pull_nanos.max(1);
        let by_ring = shared.cap / (2 * shared.max_runners as u64);
        let size = by_cost
            .min(by_pull)
            .min(by_ring)
            .min(MAX_BATCH)
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

/// The feeder: the source and the shared state, run on its own thread by [`Feeder::run`].
pub(crate) struct Feeder<I, R, F>
where
    I: Iterator,
{
    pub(crate) source: I,
    pub(crate) shared: Arc<Shared<I::Item, R, F>>,
    pub(crate) batching: Batching,
}

impl<I, R, F> Feeder<I, R, F>
where
    I: Iterator,
    F: Fn(I::Item) -> R,
{
    /// A feeder with adaptive batching over `source`, and the consumer's handle on the
    /// same shared state.
    pub(crate) fn adaptive(
        source: I,
        shared: Shared<I::Item, R, F>,
    ) -> (Self, Arc<Shared<I::Item, R, F>>) {
        let shared = Arc::new(shared);
        let feeder = Feeder {
            source,
            shared: Arc::clone(&shared),
            batching: Batching::adaptive(),
        };
        (feeder, shared)
    }

    /// The feeder thread's body. `start_runner` spawns a runner on the pool.
    pub(crate) fn run(mut self, start_runner: impl Fn(Arc<Shared<I::Item, R, F>>)) {
        let shared = &self.shared;
        let mut taken: u64 = 0;
        let mut index: u64 = 0;
        let end = loop {
            if shared.is_stopped() {
                break End::Exhausted;
            }
            if index == 2 * shared.max_runners as u64 && shared.f_nanos.load(Relaxed) == 0 {
                shared.await_first_cost();
            }
            // Wait for a whole job's worth of free slots (or, if the consumer is slow, for
            // whatever it frees within the ring's patience), then fill them all.
            let size = self.batching.next_size(shared);
            let mut free = shared.free_slots(taken);
            if free < size {
                match shared.wait_for_slots(taken, size) {
                    Some(now_free) => free = now_free,
                    None => break End::Exhausted,
                }
            }
            let size = size.min(free);
            let mut items = Vec::with_capacity(size as usize);
            // The slots are claimed (counted in `taken`) before the pulls.
            shared.taken.0.store(taken + size, Relaxed);
            let started = Instant::now();
            let source = &mut self.source;
            let end = match catch_unwind(AssertUnwindSafe(|| {
                // Checked before every pull: after a drop, at most the pull under way.
                for _ in 0..size {
                    if shared.is_stopped() {
                        break;
                    }
                    match source.next() {
                        Some(item) => items.push(item),
                        None => return Some(End::Exhausted),
                    }
                }
                None
            })) {
                Ok(end) => end,
                Err(payload) => Some(End::Panicked(payload)),
            };
            taken += items.len() as u64;
            shared.taken.0.store(taken, Relaxed);
            self.batching
                .record_pulls(started.elapsed().as_nanos() as u64, items.len() as u64);
            if !items.is_empty() {
                let seq = taken - items.len() as u64;
                let job = Job { index, seq, items };
                index += 1;
                if shared.dispatch(job) {
                    start_runner(Arc::clone(shared));
                }
            }
            if let Some(end) = end {
                break end;
            }
        };
        shared.finish(end, index);
        // The source is dropped here, on the feeder thread, after the consumer can see the end.
    }
}
