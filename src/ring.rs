//! The slot ring: sequence-numbered slots, the lock, the two condition variables,
//! backpressure and cancellation. This file is the whole protocol.
//!
//! # Counting
//! The ring has `cap` item slots (`buffer(cap)`). The feeder counts `taken` (items it has
//! claimed a slot for, a pull under way included); the consumer counts `yielded` (items
//! `next()` has returned) and publishes it in an atomic after every item. The feeder may
//! claim a slot only while `taken - yielded < cap`, so items taken and not yet returned
//! never number more than `cap`. Each item gets a sequence number (`seq`) and goes to the
//! pool *as soon as it is pulled*: the feeder pushes it, with a plain store, on a FIFO whose
//! other end the runners steal from. An item never waits for a later pull, so a source that
//! blocks between two items (a quiet channel, a socket) strands nothing. Batching happens on
//! the taking side: a runner steals a run of consecutive items (up to about
//! `TARGET_BATCH_NANOS` of work, at most half the queue) and hands their results back as one
//! [`Batch`], keyed by its first `seq`; the feeder's final `end` says how many items there
//! were, so dispatching takes no lock.
//!
//! # Who waits on what, who wakes whom
//! - The **consumer** waits on `consumer_cv` for the batch that starts at `next_seq` (or,
//!   when unordered, for any finished batch). The runner that finishes *that* batch wakes
//!   it; other completions wake nobody.
//! - The **feeder** waits on `feeder_cv` for `want` free slots (a whole job: hysteresis,
//!   so a fast consumer wakes it once a refill, not once an item). Under the lock it stores
//!   `wake_feeder_at`, the `yielded` count that frees them, then re-reads `yielded`. The
//!   consumer, after every item, stores `yielded` (`Release`: a plain store) and reads
//!   `wake_feeder_at`; if it has reached it, it takes the lock and wakes the feeder. A
//!   `SeqCst` store would close the store-load race for good, but costs 3 ns an item, as
//!   much as a cheap `f`; the race is closed instead at the two places it can matter: the
//!   consumer checks under the lock before it sleeps (so the two never sleep on each
//!   other), and the feeder's sleep is always timed, with a patience that starts at
//!   [`HYSTERESIS`] and doubles to [`MAX_PATIENCE`]. When a wait times out (the consumer
//!   is slow, paused, or raced past), the feeder refills whatever is free and then follows
//!   slot by slot. So a consumer that pauses finds the ring refilled to exactly `cap` items,
//!   and a feeder with nothing to do wakes at most a few times a second.
//! - **Cancel** (the adapter dropped, or a panic re-raised) sets `cancelled`, wakes the
//!   feeder, and takes every finished result out to drop it outside the lock.
//!
//! No lock of ours is held while user code runs: `f`, the source's `next()`, a `Drop` of an
//! item or a result, rayon's `spawn`, or a `Waker`'s clone, wake or drop. A `Drop` of ours
//! that panics is caught and discarded ([`crate::silent`]).

use crate::mapper::MapFn;
use crate::silent::{drop_each_silently, drop_silently, Silent};
use crate::sync::{fence, AtomicBool, AtomicU64, AtomicUsize, Condvar, Local, Mutex, Queue};
use std::any::Any;
use std::collections::{BTreeMap, VecDeque};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::Ordering::{Relaxed, Release, SeqCst};
use std::time::{Duration, Instant};

/// A panic payload, carried from the thread that caught it to the consumer.
pub(crate) type Payload = Box<dyn Any + Send + 'static>;

/// How long the feeder waits for a whole refill's worth of free slots before it refills
/// whatever is free.
pub(crate) const HYSTERESIS: Duration = Duration::from_millis(1);

/// The longest timed sleep of a feeder waiting for a free slot.
const MAX_PATIENCE: Duration = Duration::from_millis(256);

/// A runner's batch should take about this long to run, so that its fixed cost (a steal, a
/// lock, perhaps a wake-up) is a few percent of it.
#[cfg_attr(lazy_par_map_loom, allow(dead_code))]
const TARGET_BATCH_NANOS: u64 = 200_000;
/// The largest batch a runner steals, in items.
#[cfg_attr(lazy_par_map_loom, allow(dead_code))]
const MAX_BATCH: u64 = 16_384;

/// Queued work, in nanoseconds of `f`, that pays for starting one more runner while one is
/// already draining the queue (a rayon `spawn` and the wake-up of a sleeping worker cost
/// tens of microseconds on this kind of VM).
const SPAWN_WORTH_NANOS: u64 = 20_000;

/// How many times a runner with an empty queue yields its thread before it exits. Measured
/// on 2 cores (20 M items of a 2 ns `f`, buffer 16384, with [`CONSUMER_SPIN`] 8): 8 gave
/// 22 ns an item, 16 gave 4.7 ns, 32 and 64 no better. When the stream has really ended it
/// costs a few microseconds of yielding.
#[cfg(not(lazy_par_map_loom))]
const RUNNER_LINGER: u32 = 16;
/// Under loom the linger is a bounded spin that only multiplies the interleavings.
#[cfg(lazy_par_map_loom)]
const RUNNER_LINGER: u32 = 0;

/// How many times a consumer yields its thread, waiting for the next batch, before it sleeps
/// (same measure, with [`RUNNER_LINGER`] 16: 8 gave 4.7 ns an item, 16 gave 5.6 ns).
#[cfg(not(lazy_par_map_loom))]
const CONSUMER_SPIN: u32 = 8;

/// How many times the feeder yields its thread, waiting for a whole refill of free slots,
/// before it sleeps. Measured on 2 cores (`f` of 2 ns and of 0.2 µs, buffers 256 to 16384):
/// 0 gave 0.08x / 0.9x / 1.35x sequential on tiny@1024 / small@256 / small@1024, 16 gave
/// 0.17x / 1.5x / 1.7x, 32 no better.
#[cfg(not(lazy_par_map_loom))]
const FEEDER_SPIN: u32 = 16;
#[cfg(lazy_par_map_loom)]
const FEEDER_SPIN: u32 = 0;
#[cfg(lazy_par_map_loom)]
const CONSUMER_SPIN: u32 = 0;

/// How long a consumer on a rayon worker blocks before it looks for pool work again.
pub(crate) const HELP_POLL: Duration = Duration::from_millis(1);

/// An item on its way to the pool, with its sequence number.
pub(crate) type Item<T> = (u64, T);

/// The results of a run of consecutive items `seq..seq + covered` that one runner took.
pub(crate) struct Batch<R> {
    /// The sequence number of the run's first item.
    seq: u64,
    /// How many items the run took: results, the item that panicked, and items skipped
    /// after a stop.
    covered: u64,
    /// The results, in input order.
    pub(crate) results: Vec<R>,
    /// The panic of the item after the last result, if `f` panicked.
    pub(crate) panic: Option<Payload>,
}

impl<R> Batch<R> {
    /// Drops the results and the payload unread, each silently.
    fn drop_silently(self) {
        drop_each_silently(self.results);
        drop_silently(self.panic);
    }
}

/// How the source ended, recorded by the feeder after its last item.
pub(crate) enum End {
    /// The source returned `None`, or the adapter stopped taking items.
    Exhausted,
    /// The source's `next()` panicked with this payload.
    Panicked(Payload),
}

/// What the consumer gets from [`Shared::next_batch`].
pub(crate) enum Next<R> {
    /// The next batch (ordered), or any finished batch (unordered).
    Batch(Batch<R>),
    /// No item is left and the feeder has ended.
    End(End),
    /// Nothing is ready and the deadline passed.
    NotReady,
}

/// Everything behind the lock.
struct Ring<R> {
    /// Items accounted for by the batches the consumer has taken: in ordered mode, the
    /// `seq` of the next batch it needs.
    next_seq: u64,
    /// Finished batches by first `seq` (ordered mode).
    done: BTreeMap<u64, Batch<R>>,
    /// Finished batches in completion order (unordered mode).
    ready: VecDeque<Batch<R>>,
    /// Set by the feeder once it will dispatch no more items: how the source ended, and
    /// how many items there were.
    end: Option<(End, u64)>,
    /// The consumer sleeps on `consumer_cv`, or its task waits on `waker`.
    consumer_waits: bool,
    /// The feeder sleeps on `feeder_cv`.
    feeder_waits: bool,
    /// The async consumer's waker, when it waits (`stream` feature).
    #[cfg(feature = "stream")]
    waker: Option<std::task::Waker>,
}

/// Cache-line padding, so the consumer's per-item counter does not share a line with
/// fields other threads write.
#[repr(align(128))]
pub(crate) struct Padded<T>(pub(crate) T);

/// Whether work is still wanted.
struct Flags {
    /// The adapter was dropped or has failed: take nothing more, skip work not started.
    cancelled: AtomicBool,
    /// Items after this sequence number are not wanted (a panic or an `Err` at it).
    stop_at: AtomicU64,
    /// A consumer on a worker of the adapter's pool waits and can run items: wake it for
    /// each new item. Read by the feeder after every item, written when such a consumer
    /// starts or stops waiting.
    helper_waits: AtomicBool,
}

/// The state shared by the adapter (consumer), the feeder thread and the pool's runners.
pub(crate) struct Shared<T, R, F> {
    /// The user's function; dropped silently wherever the last thread lets go of it.
    f: Silent<F>,
    /// The number of item slots (`u64::MAX` when unbounded).
    pub(crate) cap: u64,
    /// Yield in input order (`true`) or in completion order.
    ordered: bool,
    /// No pool hop (`readahead`): the feeder hands each item to the consumer itself.
    pub(crate) inline: bool,
    /// A result that ends the stream after itself (the `Err` of the fallible form).
    stop_when: Option<fn(&R) -> bool>,
    /// Runners allowed at once: the pool's thread count, set by the feeder as it starts
    /// (it asks the pool from its own thread, outside every `install`).
    max_runners: AtomicUsize,
    /// Items the consumer has returned; written by the consumer after every item.
    yielded: Padded<AtomicU64>,
    /// Items the source has returned (for `stats`); written by the feeder after every item.
    pub(crate) taken: Padded<AtomicU64>,
    /// The `yielded` count at which the waiting feeder wants a wake-up (`u64::MAX`: none).
    /// Read by the consumer after every item, written rarely: a line of its own.
    wake_feeder_at: Padded<AtomicU64>,
    /// Read by the feeder and the runners after every item, written once: a line of its own.
    flags: Padded<Flags>,
    /// Recent cost of `f` per item, in nanoseconds (0: not known yet); sizes batches.
    pub(crate) f_nanos: AtomicU64,
    /// Time the feeder spent waiting for free slots, in nanoseconds (for `stats`).
    pub(crate) feeder_wait_nanos: AtomicU64,
    /// The feeder has ended: no item will come.
    feeder_done: AtomicBool,
    /// Runners currently draining `queue`: read by the feeder after every item, written
    /// when a runner starts or leaves, so a line of its own.
    runners: Padded<AtomicUsize>,
    /// The consumer has found no batch ready: a runner that holds results and finds the
    /// queue empty delivers them at once instead of lingering with them.
    hungry: Padded<AtomicBool>,
    /// Items pulled and not yet started; items left in it are dropped silently.
    queue: Silent<Queue<Item<T>>>,
    /// The finished batches, the end, and who waits.
    ring: Mutex<Ring<R>>,
    /// The consumer waits here for results.
    consumer_cv: Condvar,
    /// The feeder waits here for free slots.
    feeder_cv: Condvar,
    /// Items a runner takes at once under loom, where timing must not steer the model.
    #[cfg(lazy_par_map_loom)]
    pub(crate) loom_batch: usize,
}

impl<T, R, F> Shared<T, R, F> {
    pub(crate) fn new(
        f: F,
        queue: Queue<Item<T>>,
        cap: u64,
        ordered: bool,
        stop_when: Option<fn(&R) -> bool>,
        inline: bool,
    ) -> Self {
        Shared {
            f: Silent::new(f),
            cap,
            // Inline, one thread completes items, in order: the completion-order queue
            // keeps input order and costs no map insert per item.
            ordered: ordered && !inline,
            inline,
            stop_when,
            max_runners: AtomicUsize::new(1),
            yielded: Padded(AtomicU64::new(0)),
            taken: Padded(AtomicU64::new(0)),
            wake_feeder_at: Padded(AtomicU64::new(u64::MAX)),
            flags: Padded(Flags {
                cancelled: AtomicBool::new(false),
                stop_at: AtomicU64::new(u64::MAX),
                helper_waits: AtomicBool::new(false),
            }),
            f_nanos: AtomicU64::new(0),
            feeder_wait_nanos: AtomicU64::new(0),
            feeder_done: AtomicBool::new(false),
            runners: Padded(AtomicUsize::new(0)),
            hungry: Padded(AtomicBool::new(false)),
            queue: Silent::new(queue),
            ring: Mutex::new(Ring {
                next_seq: 0,
                done: BTreeMap::new(),
                ready: VecDeque::new(),
                end: None,
                consumer_waits: false,
                feeder_waits: false,
                #[cfg(feature = "stream")]
                waker: None,
            }),
            consumer_cv: Condvar::default(),
            feeder_cv: Condvar::default(),
            #[cfg(lazy_par_map_loom)]
            loom_batch: 1,
        }
    }

    // ---- the feeder's side ------------------------------------------------------------

    /// Sets how many runners may run at once (the pool's thread count); the feeder calls it
    /// before its first dispatch.
    pub(crate) fn set_max_runners(&self, threads: usize) {
        self.max_runners.store(threads.max(1), Relaxed);
    }

    /// How many runners may run at once.
    pub(crate) fn max_runners(&self) -> usize {
        self.max_runners.load(Relaxed)
    }

    /// Whether the feeder should stop taking items.
    pub(crate) fn is_stopped(&self) -> bool {
        self.flags.0.cancelled.load(Relaxed) || self.flags.0.stop_at.load(Relaxed) != u64::MAX
    }

    /// Free slots, given the feeder's `taken` count.
    pub(crate) fn free_slots(&self, taken: u64) -> u64 {
        let in_flight = taken - self.yielded.0.load(SeqCst);
        self.cap - in_flight
    }

    /// Blocks the feeder until `want` slots are free, or at least one if the consumer does
    /// not free `want` within the feeder's patience (see the module doc). Returns the free
    /// slots, or `None` if the adapter was cancelled or stopped meanwhile.
    #[cfg_attr(lazy_par_map_loom, allow(clippy::reversed_empty_ranges))]
    pub(crate) fn wait_for_slots(&self, taken: u64, want: u64) -> Option<u64> {
        let started = Instant::now();
        let mut want = want.clamp(1, self.cap);
        // A refill's worth of slots is usually a few microseconds away: yield before
        // sleeping. (One slot at a time means a slow `f` or source: sleep at once.)
        let target = (taken + want).saturating_sub(self.cap);
        let spins = if want > 1 { FEEDER_SPIN } else { 0 };
        for _ in 0..spins {
            if self.yielded.0.load(Relaxed) >= target || self.is_stopped() {
                break;
            }
            std::thread::yield_now();
        }
        let mut patience = HYSTERESIS;
        let mut ring = self.ring.lock();
        let free = loop {
            if self.is_stopped() {
                break None;
            }
            let target = (taken + want).saturating_sub(self.cap);
            self.wake_feeder_at.0.store(target, SeqCst);
            let yielded = self.yielded.0.load(SeqCst);
            if yielded >= target {
                break Some(self.cap - (taken - yielded));
            }
            ring.feeder_waits = true;
            if self.feeder_cv.wait_for(&mut ring, patience) {
                // The consumer is slow or paused: refill what it freed, then follow it
                // slot by slot.
                want = 1;
                patience = (patience * 2).min(MAX_PATIENCE);
            }
        };
        ring.feeder_waits = false;
        self.wake_feeder_at.0.store(u64::MAX, SeqCst);
        drop(ring);
        let waited = started.elapsed().as_nanos() as u64;
        self.feeder_wait_nanos.fetch_add(waited, Relaxed);
        free
    }

    /// After the feeder pushed an item: makes sure someone will run it. Returns `true` if
    /// the caller must start a runner. No lock, unless a consumer on a worker waits.
    #[inline]
    pub(crate) fn after_push(&self, seq: u64) -> bool {
        // Pairs with the fence in `run_jobs`: either that runner sees this item, or we see
        // that it has left and start another. Likewise with a consumer that waits on a
        // worker of the pool (`helper_waits`): it sees the item, or we wake it to run it.
        fence(SeqCst);
        if self.flags.0.helper_waits.load(Relaxed) {
            self.wake_consumer(self.ring.lock());
        }
        let running = self.runners.0.load(SeqCst);
        if running > 0 && !self.worth_another_runner(seq) {
            // A runner is draining the queue and will see this item: one more would cost
            // a spawn and a wake-up for less work than that.
            return false;
        }
        self.claim_runner()
    }

    /// Whether the queued work pays for starting one more runner: always while `f`'s cost is
    /// unknown or one item is worth it, else once the queue holds [`SPAWN_WORTH_NANOS`] of
    /// work. For a cheap `f` the queue is measured every 16th item only (`seq`): its length
    /// is a line the runners write.
    fn worth_another_runner(&self, seq: u64) -> bool {
        // Timing must not steer a loom model: there every runner allowed is started.
        if cfg!(lazy_par_map_loom) {
            return true;
        }
        let f_nanos = self.f_nanos.load(Relaxed);
        f_nanos == 0
            || f_nanos >= SPAWN_WORTH_NANOS
            || (seq % 16 == 0 && self.queue.get().len() as u64 * f_nanos >= SPAWN_WORTH_NANOS)
    }

    /// The feeder's hand-off when there is no pool hop (`readahead`): `result` joins the
    /// batch the consumer has not taken yet, or starts a new one. A lock per item, and a
    /// wake-up only when the consumer waits.
    pub(crate) fn deliver_inline(&self, seq: u64, result: R) {
        let mut ring = self.ring.lock();
        if self.flags.0.cancelled.load(Relaxed) {
            drop(ring);
            drop_silently(result);
            return;
        }
        match ring.ready.back_mut() {
            Some(batch) if batch.seq + batch.covered == seq && batch.panic.is_none() => {
                batch.results.push(result);
                batch.covered += 1;
            }
            _ => ring.ready.push_back(Batch {
                seq,
                covered: 1,
                results: vec![result],
                panic: None,
            }),
        }
        self.wake_consumer(ring);
    }

    /// Records how the source ended, after `items` items; the feeder dispatches nothing
    /// more.
    pub(crate) fn finish(&self, end: End, items: u64) {
        self.feeder_done.store(true, Relaxed);
        let mut ring = self.ring.lock();
        ring.end = Some((end, items));
        self.wake_consumer(ring);
    }

    fn claim_runner(&self) -> bool {
        let max = self.max_runners();
        let mut running = self.runners.0.load(SeqCst);
        loop {
            if running >= max {
                return false;
            }
            match self
                .runners
                .0
                .compare_exchange(running, running + 1, SeqCst, SeqCst)
            {
                Ok(_) => return true,
                Err(now) => running = now,
            }
        }
    }
}

// ---- the runners' side: the only code that calls `f` ----------------------------------
impl<T, R, F> Shared<T, R, F>
where
    F: MapFn<T, Output = R>,
{
    /// A runner's body, spawned on the pool: run items until the queue is empty. It never
    /// unwinds (a panic escaping a rayon `spawn` aborts the process).
    pub(crate) fn run_jobs(&self) {
        let local = Local::new();
        let mut held = None;
        let f = self.f.get();
        let mut scratch = f.open();
        loop {
            while let Some(first) = self.next_item(&local, &mut held) {
                self.run_batch(first, Some(&local), &mut held, &mut scratch);
            }
            self.deliver(&mut held);
            self.runners.0.fetch_sub(1, SeqCst);
            fence(SeqCst);
            if self.queue.get().is_empty() || !self.claim_runner() {
                f.close(scratch);
                return;
            }
        }
    }

    /// How many results a runner gathers into one batch: one while `f`'s cost is unknown,
    /// about [`TARGET_BATCH_NANOS`] of work once it is known, and never so many that fewer
    /// than two batches per thread fit in the ring.
    fn batch_limit(&self) -> usize {
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
    /// rayon `spawn` and a wake-up per batch. Results it `held` go to the consumer at the
    /// first empty look if the consumer waits, else when the runner gives up.
    #[cfg_attr(lazy_par_map_loom, allow(clippy::reversed_empty_ranges))]
    fn next_item(&self, local: &Local<Item<T>>, held: &mut Option<Batch<R>>) -> Option<Item<T>> {
        let queue = self.queue.get();
        for _ in 0..RUNNER_LINGER {
            if let Some(item) = queue.steal_batch(local, self.batch_limit()) {
                return Some(item);
            }
            if held.is_some() && self.hungry.0.load(Relaxed) {
                self.deliver(held);
            }
            if self.is_stopped() || self.feeder_done.load(Relaxed) {
                return None;
            }
            std::thread::yield_now();
        }
        queue.steal_batch(local, self.batch_limit())
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

    /// Runs one queued item on the calling thread (a consumer that helps), if there is one.
    pub(crate) fn run_one(&self) -> bool {
        match self.queue.get().steal() {
            Some(item) => {
                let (mut held, f) = (None, self.f.get());
                let mut scratch = f.open();
                self.run_batch(item, None, &mut held, &mut scratch);
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
        rest: Option<&Local<Item<T>>>,
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
        let batch = held.get_or_insert_with(|| Batch {
            seq: first.0,
            covered: 0,
            results: Vec::with_capacity(limit),
            panic: None,
        });
        let seq = first.0;
        let before = batch.results.len();
        // Timing every run would cost two clock reads per item or two: time the first runs,
        // and runs of several items.
        let timed = rest.is_some_and(|rest| rest.len() >= 7) || self.f_nanos.load(Relaxed) == 0;
        let started = timed.then(Instant::now);
        let mut covered = 0u64;
        let mut first = Some(first);
        let mut next = || first.take().or_else(|| rest.and_then(Local::pop));
        let f = self.f.get();
        let flags = &self.flags.0;
        let results = &mut batch.results;
        let caught = catch_unwind(AssertUnwindSafe(|| {
            while let Some((at, item)) = next() {
                covered += 1;
                if flags.cancelled.load(Relaxed) || at > flags.stop_at.load(Relaxed) {
                    drop_silently(item);
                    continue;
                }
                let result = f.call(scratch, item);
                if self.stop_when.is_some_and(|stop| stop(&result)) {
                    flags.stop_at.fetch_min(at, SeqCst);
                }
                results.push(result);
            }
        }));
        if let Err(payload) = caught {
            // Items after the panicking one are not wanted; those still in hand are
            // dropped here, where their panics can be caught.
            flags.stop_at.fetch_min(seq + covered - 1, SeqCst);
            while let Some((_, item)) = next() {
                covered += 1;
                drop_silently(item);
            }
            batch.panic = Some(payload);
        }
        batch.covered += covered;
        let ran = batch.results.len() - before;
        let mut first_measure = false;
        if let (Some(started), true) = (started, ran > 0) {
            let per_item = started.elapsed().as_nanos() as u64 / ran as u64;
            let old = self.f_nanos.load(Relaxed);
            let new = if old == 0 {
                per_item
            } else {
                (old * 3 + per_item) / 4
            };
            self.f_nanos.store(new.max(1), Relaxed);
            first_measure = old == 0;
        }
        if batch.panic.is_some() || batch.results.len() >= limit {
            self.deliver(held);
        }
        if first_measure {
            // The feeder may be sizing its refills by this first measure; the consumer,
            // woken by `deliver`, goes first.
            self.wake_feeder();
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
    fn wake_consumer(&self, mut ring: crate::sync::Guard<'_, Ring<R>>) {
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

    // ---- the consumer's side ----------------------------------------------------------

    /// Publishes that the consumer has returned `yielded` items, waking the feeder if it
    /// waits for them. A plain store and a load; no lock unless the feeder sleeps.
    #[inline]
    pub(crate) fn publish_yielded(&self, yielded: u64) {
        self.yielded.0.store(yielded, Release);
        if yielded >= self.wake_feeder_at.0.load(Relaxed) {
            self.wake_feeder();
        }
    }

    /// Called with the lock held before the consumer sleeps: if the feeder sleeps on slots
    /// the consumer has freed (the store-load race in the module doc), wake it now, so the
    /// two never sleep on each other.
    fn nudge_feeder(&self, ring: &mut Ring<R>) {
        if ring.feeder_waits && self.yielded.0.load(Relaxed) >= self.wake_feeder_at.0.load(SeqCst) {
            ring.feeder_waits = false;
            self.wake_feeder_at.0.store(u64::MAX, SeqCst);
            self.feeder_cv.notify_one();
        }
    }

    #[cold]
    fn wake_feeder(&self) {
        let mut ring = self.ring.lock();
        self.wake_feeder_at.0.store(u64::MAX, SeqCst);
        if ring.feeder_waits {
            ring.feeder_waits = false;
            self.feeder_cv.notify_one();
        }
    }

    /// Takes the next finished batch without waiting (the consumer's only way to look).
    fn try_take(&self, ring: &mut Ring<R>) -> Option<Next<R>> {
        let batch = if self.ordered {
            match ring.done.first_entry() {
                Some(entry) if *entry.key() == ring.next_seq => Some(entry.remove()),
                _ => None,
            }
        } else {
            ring.ready.pop_front()
        };
        self.hungry.0.store(batch.is_none(), Relaxed);
        if let Some(batch) = batch {
            ring.next_seq += batch.covered;
            return Some(Next::Batch(batch));
        }
        match ring.end {
            Some((_, items)) if ring.next_seq == items => {
                ring.end.take().map(|(end, _)| Next::End(end))
            }
            _ => None,
        }
    }

    /// The consumer's wait for the next batch, until `deadline` (`None`: no limit). On a
    /// worker of the adapter's own pool it runs the adapter's queued items itself, and on
    /// any rayon worker the pool's other work (`rayon::yield_now`); it sleeps only in short
    /// spells there, so that a pool of one thread, or a nested adapter, still progresses.
    #[cfg_attr(lazy_par_map_loom, allow(clippy::absurd_extreme_comparisons))]
    pub(crate) fn next_batch(&self, place: Place, deadline: Option<Instant>) -> Next<R>
    where
        F: MapFn<T, Output = R>,
    {
        let on_worker = place != Place::Outside;
        let mut spins = 0;
        loop {
            let mut ring = self.ring.lock();
            if let Some(next) = self.try_take(&mut ring) {
                return next;
            }
            if !on_worker && spins < CONSUMER_SPIN && deadline.is_none() {
                // A batch is usually a few microseconds from done: yield rather than sleep.
                spins += 1;
                self.nudge_feeder(&mut ring);
                drop(ring);
                std::thread::yield_now();
                continue;
            }
            // Waits with a deadline (`try_next`, `next_timeout`) never run a job: a job could
            // overrun the deadline by any amount.
            if on_worker && deadline.is_none() {
                drop(ring);
                match self.help(place) {
                    Help::Progressed => continue,
                    Help::Ready(next) => return next,
                    Help::Idle(guard) => ring = guard,
                }
            }
            let timeout = match deadline {
                Some(deadline) => match deadline.checked_duration_since(Instant::now()) {
                    Some(left) if !left.is_zero() => Some(left),
                    _ => return Next::NotReady,
                },
                None => None,
            };
            let timeout = match (timeout, on_worker) {
                (Some(left), true) => Some(left.min(HELP_POLL)),
                (None, true) => Some(HELP_POLL),
                (timeout, false) => timeout,
            };
            self.nudge_feeder(&mut ring);
            ring.consumer_waits = true;
            match timeout {
                Some(timeout) => {
                    self.consumer_cv.wait_for(&mut ring, timeout);
                }
                None => self.consumer_cv.wait(&mut ring),
            }
            ring.consumer_waits = false;
            self.stop_helping();
        }
    }

    /// One round of help by a consumer on a rayon worker: run a queued item of this adapter
    /// (its own pool only), else one job of the thread's pool. When there was nothing to
    /// do, returns the lock, with `helper_waits` announced on the own pool.
    fn help(&self, place: Place) -> Help<'_, R>
    where
        F: MapFn<T, Output = R>,
    {
        let own = place == Place::OwnPool;
        if (own && self.run_one()) || crate::pool::yield_now() {
            return Help::Progressed;
        }
        let mut ring = self.ring.lock();
        if let Some(next) = self.try_take(&mut ring) {
            return Help::Ready(next);
        }
        if own && !self.announce_helper() {
            return Help::Progressed;
        }
        Help::Idle(ring)
    }

    /// The consumer has stopped waiting: no more wake-ups per item. Written only if it was
    /// set, so that a consumer off the pool never touches the feeder's line.
    fn stop_helping(&self) {
        if self.flags.0.helper_waits.load(Relaxed) {
            self.flags.0.helper_waits.store(false, Relaxed);
        }
    }

    /// A consumer on a worker of the adapter's pool is about to wait: from now on the feeder
    /// wakes it for every new item, which it can run itself. Returns `false` if an item
    /// came in meanwhile.
    fn announce_helper(&self) -> bool {
        self.flags.0.helper_waits.store(true, SeqCst);
        if self.queue.get().is_empty() {
            true
        } else {
            self.stop_helping();
            false
        }
    }

    /// The take of an async consumer: on `None`, `waker` will be woken when the next batch
    /// may be ready. On a rayon worker (a blocking executor there, such as `block_on`) it
    /// helps and waits as `next()` does, for one [`HELP_POLL`] at most, then asks to be
    /// polled again at once: that thread blocks anyway, and it keeps the pool's other
    /// work (another adapter feeding this one, say) going.
    #[cfg(feature = "stream")]
    pub(crate) fn poll_batch(&self, waker: &std::task::Waker, place: Place) -> Option<Next<R>>
    where
        F: MapFn<T, Output = R>,
    {
        if place != Place::Outside {
            return match self.next_batch_within(place, HELP_POLL) {
                Some(next) => Some(next),
                None => {
                    waker.wake_by_ref();
                    None
                }
            };
        }
        let mut ring = self.ring.lock();
        if let Some(next) = self.try_take(&mut ring) {
            return Some(next);
        }
        // Register the waker. Its clone and drop are user code: never under our lock.
        let same = matches!(&ring.waker, Some(w) if w.will_wake(waker));
        let mut fresh = None;
        if !same {
            drop(ring);
            fresh = Some(waker.clone());
            ring = self.ring.lock();
            if let Some(next) = self.try_take(&mut ring) {
                drop(ring);
                drop(fresh);
                return Some(next);
            }
        }
        self.nudge_feeder(&mut ring);
        ring.consumer_waits = true;
        let old = match fresh {
            Some(fresh) => ring.waker.replace(fresh),
            None => None,
        };
        drop(ring);
        drop(old);
        None
    }

    /// [`Shared::next_batch`] on a worker for at most about `patience`: `None` if nothing
    /// came.
    #[cfg(feature = "stream")]
    fn next_batch_within(&self, place: Place, patience: Duration) -> Option<Next<R>>
    where
        F: MapFn<T, Output = R>,
    {
        let deadline = Instant::now() + patience;
        loop {
            let mut ring = self.ring.lock();
            if let Some(next) = self.try_take(&mut ring) {
                return Some(next);
            }
            drop(ring);
            ring = match self.help(place) {
                Help::Progressed => continue,
                Help::Ready(next) => return Some(next),
                Help::Idle(ring) => ring,
            };
            let left = deadline.checked_duration_since(Instant::now())?;
            ring.consumer_waits = true;
            self.nudge_feeder(&mut ring);
            self.consumer_cv.wait_for(&mut ring, left);
            ring.consumer_waits = false;
            self.stop_helping();
            if let Some(next) = self.try_take(&mut ring) {
                return Some(next);
            }
            if Instant::now() >= deadline {
                return None;
            }
        }
    }

    /// Stops everything: the feeder takes no more items, runners skip work not started, and
    /// finished results are dropped (here, outside the lock, silently). Idempotent.
    pub(crate) fn cancel(&self) {
        self.flags.0.cancelled.store(true, SeqCst);
        let (done, ready, waker) = {
            let mut ring = self.ring.lock();
            if ring.feeder_waits {
                ring.feeder_waits = false;
                self.feeder_cv.notify_one();
            }
            #[cfg(feature = "stream")]
            let waker = ring.waker.take();
            #[cfg(not(feature = "stream"))]
            let waker = ();
            (
                std::mem::take(&mut ring.done),
                std::mem::take(&mut ring.ready),
                waker,
            )
        };
        done.into_values()
            .chain(ready)
            .for_each(Batch::drop_silently);
        drop_silently(waker);
    }
}

/// What one round of [`Shared::help`] did.
enum Help<'a, R> {
    /// It ran something: look again.
    Progressed,
    /// The next batch was there.
    Ready(Next<R>),
    /// Nothing to do: the lock, to wait with.
    Idle(crate::sync::Guard<'a, Ring<R>>),
}

use crate::pool::Place;
