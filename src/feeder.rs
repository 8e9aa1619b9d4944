//! The feeder: claims free slots, pulls items from the source, and hands each one to
//! the pool as soon as it is pulled.
//!
//! The feeder is the only code that touches the source after the adapter starts, so a slow
//! source never blocks the consumer. It claims a slot before each pull (so the bound holds
//! with a pull under way), pushes each item before the next pull (so no item waits for a
//! later one), and refills free slots in runs sized by [`Batching`]. Between refills it
//! parks in its ring ([`Turns`], on the feeding threads of `feeding.rs`), or sleeps on its
//! own thread in the scoped form ([`Feeder::run_on_own_thread`]).

use crate::feeding::{Feeding, Turn};
use crate::mapper::MapFn;
use crate::queue::{Pusher, Queue};
use crate::ring::{End, Shared};
use crate::silent::Silent;
use crate::sync::Arc;
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

/// How many times the feeder yields its thread, waiting for a whole refill of free slots,
/// before it parks. Measured on 2 cores with the thread-per-adapter engine (`f` of 2 ns and
/// of 0.2 µs, buffers 256 to 16384): 0 gave 0.08x / 0.9x / 1.35x sequential on tiny@1024 /
/// small@256 / small@1024, 16 gave 0.17x / 1.5x / 1.7x, 32 no better.
#[cfg(not(lazy_par_map_loom))]
const FEEDER_SPIN: u32 = 16;
#[cfg(lazy_par_map_loom)]
const FEEDER_SPIN: u32 = 0;

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

/// The feeder: the source, its end of the item queue and the shared state. It runs in
/// turns ([`Feeder::turn`]) on the feeding threads ([`crate::feeding`]), parked in its ring
/// between turns, or on a thread of its own ([`Feeder::run_on_own_thread`], the scoped form).
pub(crate) struct Feeder<I, R, F, S>
where
    I: Iterator,
{
    /// Dropped silently, on the feeder's thread, once the source has ended.
    pub(crate) source: Silent<I>,
    /// Where pulled items go; items left in it are dropped silently.
    pub(crate) pusher: Silent<Pusher<I::Item>>,
    pub(crate) shared: Arc<Shared<I::Item, R, F>>,
    pub(crate) batching: Batching,
    /// Starts a runner on the pool.
    start_runner: S,
    /// The pool's thread count, if it was read before the first turn; else the first turn
    /// reads the global pool's, on the feeder's thread (outside every pool).
    threads: Option<usize>,
    /// Items claimed so far (a pull under way included).
    taken: u64,
    /// The free slots it waits for before it pulls again; `None`: choose at the next look.
    want: Option<u64>,
    /// When it parked, for `stats().feeder_waited`.
    parked_at: Option<Instant>,
    /// The first turn has set the adapter up.
    started: bool,
}

impl<I, R, F, S> Feeder<I, R, F, S>
where
    I: Iterator,
    F: MapFn<I::Item, Output = R>,
    S: Fn(Arc<Shared<I::Item, R, F>>),
{
    /// A feeder with adaptive batching over `source`, and the consumer's handle on the
    /// same shared state, built by `shared` around the runners' end of the item queue (sized
    /// for `cap` slots).
    /// `threads` is the pool's size if known (else the global pool's is read on the
    /// feeder's thread); `start_runner` spawns a runner on the pool.
    pub(crate) fn adaptive(
        source: I,
        cap: u64,
        shared: impl FnOnce(Queue<I::Item>) -> Shared<I::Item, R, F>,
        threads: Option<usize>,
        start_runner: S,
    ) -> (Self, Arc<Shared<I::Item, R, F>>) {
        let (pusher, queue) = crate::queue::queue(cap);
        let shared = Arc::new(shared(queue));
        let feeder = Feeder {
            source: Silent::new(source),
            pusher: Silent::new(pusher),
            shared: Arc::clone(&shared),
            batching: Batching::adaptive(),
            start_runner,
            threads,
            taken: 0,
            want: None,
            parked_at: None,
            started: false,
        };
        (feeder, shared)
    }

    /// Feeds until the feeder must wait for free slots (returns how many it waits for) or
    /// the adapter has ended (returns `None`; the end is recorded and the consumer woken).
    pub(crate) fn turn(&mut self, timed_out: bool) -> Option<u64> {
        let shared = Arc::clone(&self.shared);
        if !self.started {
            self.started = true;
            shared.set_max_runners(self.threads.unwrap_or_else(rayon::current_num_threads));
            if shared.inline {
                // `readahead`'s identity costs nothing: refill in halves of the buffer, so
                // that the feeder and the consumer wake each other once a refill, not once
                // an item.
                shared.f_nanos.store(1, Relaxed);
            }
        }
        if let Some(parked_at) = self.parked_at.take() {
            let waited = parked_at.elapsed().as_nanos() as u64;
            shared.feeder_wait_nanos.fetch_add(waited, Relaxed);
        }
        if timed_out {
            // The consumer is slow or paused: refill what it freed, then follow it slot by
            // slot.
            self.want = Some(1);
        }
        loop {
            if shared.is_stopped() {
                shared.finish(End::Exhausted, self.taken);
                return None;
            }
            // Wait for a whole refill's worth of free slots (hysteresis), then fill them all.
            let want = match self.want {
                Some(want) => want,
                None => self.batching.next_size(&shared),
            };
            let mut free = shared.free_slots(self.taken);
            if free < want && want > 1 {
                // A refill's worth of slots is usually a few microseconds away: yield a few
                // times before parking. (One slot at a time means a slow `f` or source:
                // park at once.)
                for _ in 0..FEEDER_SPIN {
                    std::thread::yield_now();
                    free = shared.free_slots(self.taken);
                    if free >= want || shared.is_stopped() {
                        break;
                    }
                }
            }
            if free < want {
                self.want = Some(want);
                self.parked_at = Some(Instant::now());
                return Some(want);
            }
            self.want = None;
            if let Some(end) = self.fill(&shared, free) {
                shared.finish(end, self.taken);
                return None;
            }
        }
    }

    /// Pulls up to `free` items and hands each one over before the next pull. Returns how
    /// the source ended, if it did.
    fn fill(&mut self, shared: &Shared<I::Item, R, F>, free: u64) -> Option<End> {
        let started = Instant::now();
        let before = self.taken;
        let source = self.source.get_mut();
        let pusher = self.pusher.get_mut();
        let taken = &mut self.taken;
        let start_runner = &self.start_runner;
        let end = match catch_unwind(AssertUnwindSafe(|| {
            // The slot is claimed (`free` counts it) before the pull, and the stop is
            // checked before every pull: after a drop, at most the pull under way.
            let spawn_check = (!shared.inline).then(|| shared.spawn_check());
            for _ in 0..free {
                if shared.is_stopped() {
                    break;
                }
                let Some(item) = source.next() else {
                    return Some(End::Exhausted);
                };
                if shared.inline {
                    // No pool hop: `f` is the identity; the consumer gets the item now.
                    shared.run_inline(*taken, item);
                } else {
                    pusher.push(*taken, item);
                }
                *taken += 1;
                if *taken % 64 == 0 {
                    // Every item would cost a store to a line `stats()` reads.
                    shared.taken.0.store(*taken, Relaxed);
                }
                if let Some(check) = spawn_check {
                    if shared.after_push(*taken, check) {
                        start_runner(Arc::clone(&self.shared));
                    }
                }
            }
            None
        })) {
            Ok(end) => end,
            Err(payload) => Some(End::Panicked(payload)),
        };
        shared.taken.0.store(self.taken, Relaxed);
        self.batching
            .record_pulls(started.elapsed().as_nanos() as u64, self.taken - before);
        end
    }

    /// The same feeder, starting its runners with `start_runner`.
    pub(crate) fn with_runners<S2>(self, start_runner: S2) -> Feeder<I, R, F, S2> {
        Feeder {
            source: self.source,
            pusher: self.pusher,
            shared: self.shared,
            batching: self.batching,
            start_runner,
            threads: self.threads,
            taken: self.taken,
            want: self.want,
            parked_at: self.parked_at,
            started: self.started,
        }
    }

    /// Runs the feeder on the calling thread until the adapter ends, sleeping in its ring
    /// while it waits (the scoped form, whose source may borrow, has a thread of its own).
    pub(crate) fn run_on_own_thread(mut self) {
        let mut timed_out = false;
        while let Some(want) = self.turn(timed_out) {
            crate::pool::learn_cores();
            timed_out = self.shared.park_thread(self.taken, want);
        }
        // The source is dropped here, on the feeder's thread, after the consumer can see
        // the end (silently: see `silent.rs`).
    }
}

/// A feeder run in turns by a set of feeding threads.
pub(crate) struct Turns<I, R, F, S>
where
    I: Iterator,
{
    feeder: Feeder<I, R, F, S>,
    feeding: std::sync::Arc<Feeding>,
}

impl<I, R, F, S> Turns<I, R, F, S>
where
    I: Iterator + Send + 'static,
    I::Item: Send + 'static,
    R: Send + 'static,
    F: MapFn<I::Item, Output = R> + Send + Sync + 'static,
    S: Fn(Arc<Shared<I::Item, R, F>>) + Send + 'static,
{
    /// Submits the feeder's first turn to `feeding`.
    pub(crate) fn start(feeder: Feeder<I, R, F, S>, feeding: &std::sync::Arc<Feeding>) {
        let turns = Turns {
            feeder,
            feeding: std::sync::Arc::clone(feeding),
        };
        feeding.submit(Box::new(turns), false, None);
    }
}

impl<I, R, F, S> Turn for Turns<I, R, F, S>
where
    I: Iterator + Send + 'static,
    I::Item: Send + 'static,
    R: Send + 'static,
    F: MapFn<I::Item, Output = R> + Send + Sync + 'static,
    S: Fn(Arc<Shared<I::Item, R, F>>) + Send + 'static,
{
    /// One turn on a feeding thread: feeds, then parks in the ring (the thread goes back to
    /// the queue), or ends (the source is dropped here, on the feeding thread).
    fn resume(mut self: Box<Self>, mut timed_out: bool) -> bool {
        let feeding = std::sync::Arc::clone(&self.feeding);
        loop {
            let turn = self.feeder.turn(timed_out);
            crate::pool::learn_cores();
            #[cfg(not(lazy_par_map_loom))]
            Shared::arm_lift(&self.feeder.shared, &feeding);
            let Some(want) = turn else {
                return false;
            };
            timed_out = false;
            feeding.will_return();
            let shared = Arc::clone(&self.feeder.shared);
            match Shared::park(&shared, self.feeder.taken, want, self, &feeding) {
                Ok(()) => return true,
                Err(back) => {
                    feeding.wont_return();
                    self = back;
                }
            }
        }
    }
}
