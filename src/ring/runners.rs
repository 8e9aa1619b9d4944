//! The runners' side of the ring: the only code that calls `f`. A runner takes runs of
//! items from the queue, maps them in a batch, and completes the batch into the ring.

use super::{Batch, Ring, Shared, RUNNER_LINGER};
#[cfg(not(lazy_par_map_loom))]
use super::{MAX_BATCH, TARGET_BATCH_NANOS};
use crate::mapper::MapFn;
use crate::queue::{Item, Local};
use crate::silent::drop_silently;
use crate::sync::{fence, Arc};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::AtomicU64;
use std::sync::atomic::Ordering::{Relaxed, SeqCst};
use std::time::Instant;

/// The cost of `f` per item first measured by the process's latest adapter (0: none yet).
/// An adapter whose own `f` is untimed goes by it: its consumer to choose between yielding
/// and sleeping (`Shared::may_yield`), its feeder to hold a runner back or not
/// (`Shared::first_runners`).
pub(super) static RECENT_F_NANOS: AtomicU64 = AtomicU64::new(0);

impl<T, R, F> Shared<T, R, F>
where
    F: MapFn<T, Output = R>,
{
    /// A runner's body, spawned on the pool: run items until the queue is empty. It never
    /// unwinds (a panic escaping a rayon `spawn` aborts the process).
    /// Once `f` is timed it starts the runner held back meanwhile, if one was
    /// ([`Shared::lift`]).
    pub(crate) fn run_jobs(this: &Arc<Self>) {
        let local = Local::new(this.queue.get());
        let mut held = None;
        let f = this.f.get();
        let mut scratch = f.open();
        loop {
            while let Some(first) = this.next_item(&local, &mut held) {
                let held_back = this.lift_pending();
                this.run_batch(first, Some(&local), &mut held, &mut scratch);
                if held_back {
                    Shared::lift(this);
                }
            }
            this.deliver(&mut held);
            this.runners.0.fetch_sub(1, SeqCst);
            fence(SeqCst);
            if this.queue.get().is_empty() || !this.claim_runner() {
                f.close(scratch);
                return;
            }
        }
    }

    /// How many results a runner gathers into one batch: one while `f`'s cost is unknown,
    /// about [`TARGET_BATCH_NANOS`] of work once it is known, and never so many that fewer
    /// than two batches per thread fit in the ring.
    pub(super) fn batch_limit(&self) -> usize {
        #[cfg(lazy_par_map_loom)]
        return self.loom_batch;
        #[cfg(not(lazy_par_map_loom))]
        {
            let f_nanos = self.f_nanos.load(Relaxed);
            if f_nanos == 0 {
                return 1;
            }
            let by_cost = TARGET_BATCH_NANOS / f_nanos;
            let by_ring = self.cap / (2 * self.max_runners() as u64);
            by_cost.min(by_ring).clamp(1, MAX_BATCH) as usize
        }
    }

    /// The next run of items for a runner: the first, and the rest in `local`. When the
    /// queue is empty the runner lingers a little (yielding its thread to whoever is
    /// runnable) before it gives up, because a stream of cheap items would otherwise cost a
    /// rayon `spawn` and a wake-up per batch; but not once the feeder has parked, when the
    /// next items wait for the consumer to free slots (with 2,000 live adapters of 4 slots,
    /// consumed round-robin, the linger made an item cost 6.7 µs instead of 1.5). Results it
    /// `held` go to the consumer at the first empty look if the consumer waits, else when
    /// the runner gives up.
    #[cfg_attr(lazy_par_map_loom, allow(clippy::reversed_empty_ranges))]
    fn next_item(&self, local: &Local<'_, T>, held: &mut Option<Batch<R>>) -> Option<Item<T>> {
        for _ in 0..RUNNER_LINGER {
            if let Some(item) = local.steal(self.batch_limit()) {
                return Some(item);
            }
            if held.is_some() && self.hungry.0.load(Relaxed) {
                self.deliver(held);
            }
            if self.is_stopped() || self.feeder_done.load(Relaxed) {
                return None;
            }
            if self.feeder_parked() {
                break;
            }
            std::thread::yield_now();
        }
        local.steal(self.batch_limit())
    }

    /// `readahead`'s hand-off, on the feeder's thread: maps `item` (the identity there) and
    /// gives the result to the consumer.
    pub(crate) fn run_inline(&self, seq: u64, item: T) {
        let f = self.f.get();
        let mut scratch = f.open();
        let result = f.call(&mut scratch, item);
        f.close(scratch);
        self.deliver_inline(seq, result);
    }

    /// Runs a run of queued items on the calling thread (a consumer that helps), if there is
    /// one: as many as a runner would take (one while `f`'s cost is unknown), so that a
    /// nested consumer pays a steal and a lock per batch, not per item.
    pub(crate) fn run_some(&self) -> bool {
        let local = Local::new(self.queue.get());
        match local.steal(self.batch_limit()) {
            Some(item) => {
                let (mut held, f) = (None, self.f.get());
                let mut scratch = f.open();
                self.run_batch(item, Some(&local), &mut held, &mut scratch);
                f.close(scratch);
                self.deliver(&mut held);
                true
            }
            None => false,
        }
    }

    /// Runs `first` and the items in `rest`, adding their results to the batch `held`
    /// (delivered first if `first` does not follow it, and after this run if it is large
    /// enough or `f` panicked). Items wait in `rest`, outside the unwinding code, so that a
    /// panic of `f` never drops them while it unwinds: they are dropped afterwards,
    /// silently.
    fn run_batch(
        &self,
        first: Item<T>,
        rest: Option<&Local<'_, T>>,
        held: &mut Option<Batch<R>>,
        scratch: &mut F::Scratch,
    ) {
        if held
            .as_ref()
            .is_some_and(|batch| batch.seq + batch.covered != first.0)
        {
            self.deliver(held);
        }
        let limit = self.batch_limit();
        // Sized for this run, not for `limit`: a batch of a few items must not hold a buffer
        // for thousands (with many such batches in the ring, memory would grow past the
        // items themselves).
        let run = 1 + rest.map_or(0, Local::len);
        let batch = held.get_or_insert_with(|| Batch {
            seq: first.0,
            covered: 0,
            results: Vec::with_capacity(run.min(limit)),
            panic: None,
        });
        let seq = first.0;
        let before = batch.results.len();
        // Timing every run would cost two clock reads per item or two: time the first runs,
        // and then about one run of several items in four (those starting in a quarter of
        // the sequence numbers; on `tiny` two clock reads per run were 4% of the time).
        let timed = self.f_nanos.load(Relaxed) == 0
            || (rest.is_some_and(|rest| rest.len() >= 7) && (seq >> 6) & 3 == 0);
        let started = timed.then(Instant::now);
        let mut covered = 0u64;
        let f = self.f.get();
        let flags = &self.flags.0;
        let results = &mut batch.results;
        let stop_when = self.stop_when;
        let caught = catch_unwind(AssertUnwindSafe(|| {
            let mut step = |at: u64, item: T| {
                covered += 1;
                if flags.cancelled.load(Relaxed) || at > flags.stop_at.load(Relaxed) {
                    drop_silently(item);
                    return;
                }
                let result = f.call(scratch, item);
                if stop_when.is_some_and(|stop| stop(&result)) {
                    flags.stop_at.fetch_min(at, SeqCst);
                }
                results.push(result);
            };
            step(first.0, first.1);
            if let Some(rest) = rest {
                rest.pop_each(|(at, item)| step(at, item));
            }
        }));
        if let Err(payload) = caught {
            // Items after the panicking one are not wanted; those still in hand are
            // dropped here, where their panics can be caught.
            flags.stop_at.fetch_min(seq + covered - 1, SeqCst);
            if let Some(rest) = rest {
                while let Some((_, item)) = rest.pop() {
                    covered += 1;
                    drop_silently(item);
                }
            }
            batch.panic = Some(payload);
        }
        batch.covered += covered;
        let ran = batch.results.len() - before;
        if let (Some(started), true) = (started, ran > 0) {
            let per_item = started.elapsed().as_nanos() as u64 / ran as u64;
            let old = self.f_nanos.load(Relaxed);
            let new = if old == 0 {
                // The first measure of this adapter's `f`: the process's latest.
                RECENT_F_NANOS.store(per_item.max(1), Relaxed);
                per_item
            } else {
                (old * 3 + per_item) / 4
            };
            self.f_nanos.store(new.max(1), Relaxed);
        }
        if batch.panic.is_some() || batch.results.len() >= limit {
            self.deliver(held);
        }
    }
}

impl<T, R, F> Shared<T, R, F> {
    /// Hands the results a runner holds to the consumer (or drops them, silently and
    /// outside the lock, if the adapter was cancelled).
    fn deliver(&self, held: &mut Option<Batch<R>>) {
        if let Some(batch) = held.take() {
            if let Some(unwanted) = self.complete(batch) {
                unwanted.drop_silently();
            }
        }
    }

    /// Stores a batch's results; hands them back if the adapter was cancelled.
    fn complete(&self, batch: Batch<R>) -> Option<Batch<R>> {
        let mut ring = self.ring.lock();
        if self.flags.0.cancelled.load(Relaxed) {
            return Some(batch);
        }
        if self.ordered {
            let head = batch.seq == ring.next_seq;
            ring.done.insert(batch.seq, batch);
            if head {
                self.wake_consumer(ring);
            }
        } else {
            ring.ready.push_back(batch);
            self.wake_consumer(ring);
        }
        None
    }

    /// Wakes the consumer if it waits, releasing the lock first.
    pub(super) fn wake_consumer(&self, mut ring: crate::sync::Guard<'_, Ring<R>>) {
        if !ring.consumer_waits {
            return;
        }
        ring.consumer_waits = false;
        #[cfg(feature = "stream")]
        let waker = ring.waker.take();
        self.consumer_cv.notify_one();
        drop(ring);
        #[cfg(feature = "stream")]
        if let Some(waker) = waker {
            waker.wake();
        }
    }
}
