//! The slot ring: sequence-numbered slots, the lock, the two condition variables,
//! backpressure and cancellation. This file is the whole protocol.
//!
//! # Counting
//! The ring has `cap` item slots (`buffer(cap)`). The feeder counts `taken` (items it has
//! claimed a slot for, a pull under way included); the consumer counts `yielded` (items
//! `next()` has returned) and publishes it in an atomic after every item. The feeder may
//! claim a slot only while `taken - yielded < cap`, so items taken and not yet returned
//! never number more than `cap`. Items travel in *jobs*: a job is a run of consecutive
//! items the feeder pulled while it held free slots; `slots` holds one entry per job, in
//! order, and a job's results come back as one `Vec`. The feeder hands jobs over through a
//! lock-free injector; a completion grows `slots` up to its own index, and the feeder's
//! final `end` says how many jobs there were, so dispatching takes no lock.
//!
//! # Who waits on what, who wakes whom
//! - The **consumer** waits on `consumer_cv` for the job at the head of `slots` (or, when
//!   unordered, for any finished job). The runner that finishes *that* job wakes it; other
//!   completions wake nobody.
//! - The **feeder** waits on `feeder_cv` for `want` free slots (a whole job: hysteresis,
//!   so a fast consumer wakes it once a job, not once an item). Under the lock it stores
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
//! item or a result, rayon's `spawn`, or a `Waker`.

use crate::sync::{fence, AtomicBool, AtomicU64, AtomicUsize, Condvar, Injector, Mutex};
use std::any::Any;
use std::collections::VecDeque;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::Ordering::{Relaxed, Release, SeqCst};
use std::time::{Duration, Instant};

/// A panic payload, carried from the thread that caught it to the consumer.
pub(crate) type Payload = Box<dyn Any + Send + 'static>;

/// How long the feeder waits for a whole job's worth of free slots before it refills
/// whatever is free.
pub(crate) const HYSTERESIS: Duration = Duration::from_millis(1);

/// The longest timed sleep of a feeder waiting for a free slot.
const MAX_PATIENCE: Duration = Duration::from_millis(256);

/// How many times a runner with an empty queue yields its thread before it exits. Measured
/// on 2 cores (20 M items of a 2 ns `f`, buffer 16384, with [`CONSUMER_SPIN`] 8): 8 gave
/// 22 ns an item, 16 gave 4.7 ns, 32 and 64 no better. When the stream has really ended it
/// costs a few microseconds of yielding.
#[cfg(not(lazy_par_map_loom))]
const RUNNER_LINGER: u32 = 16;
/// Under loom the linger is a bounded spin that only multiplies the interleavings.
#[cfg(lazy_par_map_loom)]
const RUNNER_LINGER: u32 = 0;

/// How many times a consumer yields its thread, waiting for the next job, before it sleeps
/// (same measure, with [`RUNNER_LINGER`] 16: 8 gave 4.7 ns an item, 16 gave 5.6 ns).
#[cfg(not(lazy_par_map_loom))]
const CONSUMER_SPIN: u32 = 8;

/// How many times the feeder yields its thread, waiting for a whole job of free slots,
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
const HELP_POLL: Duration = Duration::from_millis(1);

/// A run of consecutive items, handed from the feeder to the pool through the injector.
pub(crate) struct Job<T> {
    /// The job's index: its slot is `slots[index - first]`.
    pub(crate) index: u64,
    /// The sequence number of `items[0]`.
    pub(crate) seq: u64,
    /// The items, in source order.
    pub(crate) items: Vec<T>,
}

/// The state of one job's slot.
enum Slot<R> {
    /// Dispatched; its results are not back yet.
    Pending,
    /// Finished: the results, and the panic that stopped the job, if `f` panicked.
    Done(Batch<R>),
}

/// Results of one job: the values, then the panic of the item after the last value, if any.
pub(crate) type Batch<R> = (Vec<R>, Option<Payload>);

/// How the source ended, recorded by the feeder after its last job.
pub(crate) enum End {
    /// The source returned `None`, or the adapter stopped taking items.
    Exhausted,
    /// The source's `next()` panicked with this payload.
    Panicked(Payload),
}

/// What the consumer gets from [`Shared::next_batch`].
pub(crate) enum Next<R> {
    /// The next job's results (ordered), or any finished job's (unordered).
    Batch(Batch<R>),
    /// No job is left and the feeder has ended.
    End(End),
    /// Nothing is ready and the deadline passed.
    NotReady,
}

/// Everything behind the lock.
struct Ring<R> {
    /// Jobs handed to the consumer so far; in ordered mode, the index of `slots[0]`.
    first: u64,
    /// Jobs from `first` on, in order, up to the last one finished (ordered mode only).
    /// A completion grows it with `Pending` entries, so dispatching takes no lock.
    slots: VecDeque<Slot<R>>,
    /// Finished jobs in completion order (unordered mode only).
    ready: VecDeque<Batch<R>>,
    /// Set by the feeder once it will dispatch no more jobs: how the source ended, and
    /// how many jobs there were.
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
}

/// The state shared by the adapter (consumer), the feeder thread and the pool's runners.
pub(crate) struct Shared<T, R, F> {
    /// The user's function.
    f: F,
    /// The number of item slots (`u64::MAX` when unbounded).
    pub(crate) cap: u64,
    /// Yield in input order (`true`) or in completion order.
    ordered: bool,
    /// A result that ends the stream after itself (the `Err` of the fallible form).
    stop_when: Option<fn(&R) -> bool>,
    /// Runners allowed at once: the pool's thread count.
    pub(crate) max_runners: usize,
    /// Items the consumer has returned; written by the consumer after every item.
    yielded: Padded<AtomicU64>,
    /// Items the feeder has taken (for `stats`); written by the feeder after every item.
    pub(crate) taken: Padded<AtomicU64>,
    /// The `yielded` count at which the waiting feeder wants a wake-up (`u64::MAX`: none).
    /// Read by the consumer after every item, written rarely: a line of its own.
    wake_feeder_at: Padded<AtomicU64>,
    /// Read by the feeder and the runners after every item, written once: a line of its own.
    flags: Padded<Flags>,
    /// Recent cost of `f` per item, in nanoseconds (0: not known yet); guides batching.
    pub(crate) f_nanos: AtomicU64,
    /// Time the feeder spent waiting for free slots, in nanoseconds (for `stats`).
    pub(crate) feeder_wait_nanos: AtomicU64,
    /// The feeder has ended: no job will come.
    feeder_done: AtomicBool,
    /// A consumer on a rayon worker waits and can run jobs: wake it for each new job.
    helper_waits: AtomicBool,
    /// Runners currently draining `queue`.
    runners: AtomicUsize,
    /// Jobs dispatched and not yet started.
    queue: Injector<Job<T>>,
    /// The slots, the end, and who waits.
    ring: Mutex<Ring<R>>,
    /// The consumer waits here for results.
    consumer_cv: Condvar,
    /// The feeder waits here for free slots.
    feeder_cv: Condvar,
}

impl<T, R, F> Shared<T, R, F> {
    pub(crate) fn new(
        f: F,
        cap: u64,
        ordered: bool,
        stop_when: Option<fn(&R) -> bool>,
        max_runners: usize,
    ) -> Self {
        Shared {
            f,
            cap,
            ordered,
            stop_when,
            max_runners: max_runners.max(1),
            yielded: Padded(AtomicU64::new(0)),
            taken: Padded(AtomicU64::new(0)),
            wake_feeder_at: Padded(AtomicU64::new(u64::MAX)),
            flags: Padded(Flags {
                cancelled: AtomicBool::new(false),
                stop_at: AtomicU64::new(u64::MAX),
            }),
            f_nanos: AtomicU64::new(0),
            feeder_wait_nanos: AtomicU64::new(0),
            feeder_done: AtomicBool::new(false),
            helper_waits: AtomicBool::new(false),
            runners: AtomicUsize::new(0),
            queue: Injector::new(),
            ring: Mutex::new(Ring {
                first: 0,
                slots: VecDeque::new(),
                ready: VecDeque::new(),
                end: None,
                consumer_waits: false,
                feeder_waits: false,
                #[cfg(feature = "stream")]
                waker: None,
            }),
            consumer_cv: Condvar::default(),
            feeder_cv: Condvar::default(),
        }
    }

    // ---- the feeder's side ------------------------------------------------------------

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
        // A batch's worth of slots is usually a few microseconds away: yield before sleeping.
        // (One slot at a time means a slow `f` or source: sleep at once.)
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

    /// While `f`'s cost is unknown, the feeder sends one item per job; a ring of thousands
    /// of such jobs would cost the feeder (and the cores that run the first items) more
    /// than the items themselves. So once every thread has work, the feeder waits for the
    /// first job's measure, at most [`HYSTERESIS`]; with a slow `f` it then goes on filling
    /// the ring one item per job, with a fast one in batches.
    pub(crate) fn await_first_cost(&self) {
        let mut ring = self.ring.lock();
        if self.f_nanos.load(Relaxed) == 0 && !self.is_stopped() {
            ring.feeder_waits = true;
            self.feeder_cv.wait_for(&mut ring, HYSTERESIS);
            ring.feeder_waits = false;
        }
    }

    /// Gives a job to the pool, through the injector; no lock. Returns `true` if the caller
    /// must start a runner.
    pub(crate) fn dispatch(&self, job: Job<T>) -> bool {
        self.queue.push(job);
        // Pairs with the fence in `run_jobs`: either that runner sees this job, or we see
        // that it has left and start another. Likewise with a consumer that waits on a
        // rayon worker (`helper_waits`): it sees the job, or we wake it to run the job.
        fence(SeqCst);
        if self.helper_waits.load(SeqCst) {
            self.wake_consumer(self.ring.lock());
        }
        self.claim_runner()
    }

    /// Records how the source ended, after `jobs` jobs; the feeder dispatches nothing more.
    pub(crate) fn finish(&self, end: End, jobs: u64) {
        self.feeder_done.store(true, Relaxed);
        let mut ring = self.ring.lock();
        ring.end = Some((end, jobs));
        self.wake_consumer(ring);
    }

    fn claim_runner(&self) -> bool {
        let mut running = self.runners.load(SeqCst);
        loop {
            if running >= self.max_runners {
                return false;
            }
            match self
                .runners
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
    F: Fn(T) -> R,
{
    /// A runner's body, spawned on the pool: run jobs until the injector is empty. It never
    /// unwinds (a panic escaping a rayon `spawn` aborts the process).
    pub(crate) fn run_jobs(&self) {
        loop {
            while let Some(job) = self.next_job() {
                self.run_job(job);
            }
            self.runners.fetch_sub(1, SeqCst);
            fence(SeqCst);
            if self.queue.is_empty() || !self.claim_runner() {
                return;
            }
        }
    }

    /// The next job for a runner. When the queue is empty the runner lingers a little
    /// (yielding its thread to whoever is runnable) before it gives up, because a stream
    /// of cheap jobs would otherwise cost a rayon `spawn` and a wake-up per job.
    #[cfg_attr(lazy_par_map_loom, allow(clippy::reversed_empty_ranges))]
    fn next_job(&self) -> Option<Job<T>> {
        for _ in 0..RUNNER_LINGER {
            if let Some(job) = self.queue.steal() {
                return Some(job);
            }
            if self.is_stopped() || self.feeder_done.load(Relaxed) {
                return None;
            }
            std::thread::yield_now();
        }
        self.queue.steal()
    }

    /// Runs one job from the injector on the calling thread, if there is one.
    pub(crate) fn run_one(&self) -> bool {
        match self.queue.steal() {
            Some(job) => {
                self.run_job(job);
                true
            }
            None => false,
        }
    }

    fn run_job(&self, job: Job<T>) {
        let Job { index, seq, items } = job;
        let count = items.len() as u64;
        let started = Instant::now();
        let mut out = Vec::with_capacity(items.len());
        // Everything the user's code does, including dropping inputs, stays inside.
        let caught = catch_unwind(AssertUnwindSafe(|| {
            for (seq, item) in (seq..).zip(items) {
                let flags = &self.flags.0;
                if flags.cancelled.load(Relaxed) || seq > flags.stop_at.load(Relaxed) {
                    break;
                }
                let result = (self.f)(item);
                if self.stop_when.is_some_and(|stop| stop(&result)) {
                    flags.stop_at.fetch_min(seq, SeqCst);
                }
                out.push(result);
            }
        }));
        let panic = match caught {
            Ok(()) => None,
            Err(payload) => {
                // Items after the panicking one are not wanted.
                self.flags
                    .0
                    .stop_at
                    .fetch_min(seq + out.len() as u64, SeqCst);
                Some(payload)
            }
        };
        let mut first_measure = false;
        if count > 0 && !out.is_empty() {
            let per_item = started.elapsed().as_nanos() as u64 / out.len() as u64;
            let old = self.f_nanos.load(Relaxed);
            let new = if old == 0 {
                per_item
            } else {
                (old * 3 + per_item) / 4
            };
            self.f_nanos.store(new.max(1), Relaxed);
            first_measure = old == 0;
        }
        if let Some(unwanted) = self.complete(index, (out, panic)) {
            // Cancelled: drop the results here, outside the lock; a panicking `Drop` must
            // not unwind into rayon.
            let _ = catch_unwind(AssertUnwindSafe(move || drop(unwanted)));
        }
        if first_measure {
            // The feeder may be waiting for this first measure (`await_first_cost`); the
            // consumer, woken by `complete`, goes first.
            self.wake_feeder();
        }
    }
}

impl<T, R, F> Shared<T, R, F> {
    /// Stores a job's results; hands them back if the adapter was cancelled.
    fn complete(&self, index: u64, batch: Batch<R>) -> Option<Batch<R>> {
        let mut ring = self.ring.lock();
        if self.flags.0.cancelled.load(Relaxed) {
            return Some(batch);
        }
        if self.ordered {
            let at = (index - ring.first) as usize;
            if at >= ring.slots.len() {
                ring.slots.resize_with(at + 1, || Slot::Pending);
            }
            ring.slots[at] = Slot::Done(batch);
            if at == 0 {
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

    /// Takes the next finished job without waiting.
    fn try_take(&self, ring: &mut Ring<R>) -> Option<Next<R>> {
        let batch = if self.ordered {
            match ring.slots.front() {
                Some(Slot::Done(_)) => match ring.slots.pop_front() {
                    Some(Slot::Done(batch)) => Some(batch),
                    _ => unreachable!("the front slot was just seen done"),
                },
                _ => None,
            }
        } else {
            ring.ready.pop_front()
        };
        if let Some(batch) = batch {
            ring.first += 1;
            return Some(Next::Batch(batch));
        }
        match ring.end {
            Some((_, jobs)) if ring.first == jobs => ring.end.take().map(|(end, _)| Next::End(end)),
            _ => None,
        }
    }

    /// The consumer's wait for the next batch, until `deadline` (`None`: no limit). On a
    /// rayon worker thread (`on_worker`), it runs this adapter's queued jobs itself and
    /// then the pool's other work (`rayon::yield_now`), and sleeps only in short spells,
    /// so that a pool of one thread, or a nested adapter, still makes progress.
    #[cfg_attr(lazy_par_map_loom, allow(clippy::absurd_extreme_comparisons))]
    pub(crate) fn next_batch(&self, on_worker: bool, deadline: Option<Instant>) -> Next<R>
    where
        F: Fn(T) -> R,
    {
        let mut spins = 0;
        loop {
            let mut ring = self.ring.lock();
            if let Some(next) = self.try_take(&mut ring) {
                return next;
            }
            if !on_worker && spins < CONSUMER_SPIN && deadline.is_none() {
                // A job is usually a few microseconds from done: yield rather than sleep.
                spins += 1;
                self.nudge_feeder(&mut ring);
                drop(ring);
                std::thread::yield_now();
                continue;
            }
            // Waits with a deadline (`try_next`, `next_timeout`) never run a job: a job could
            // overrun the deadline by any amount.
            let helps = on_worker && deadline.is_none();
            if helps {
                drop(ring);
                if self.run_one() || crate::pool::yield_now() {
                    continue;
                }
                ring = self.ring.lock();
                if let Some(next) = self.try_take(&mut ring) {
                    return next;
                }
                if !self.announce_helper() {
                    continue;
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
            self.helper_waits.store(false, Relaxed);
        }
    }

    /// A consumer on a rayon worker is about to wait: from now on the feeder wakes it for
    /// every new job, which it can run itself. Returns `false` if a job came in meanwhile.
    fn announce_helper(&self) -> bool {
        self.helper_waits.store(true, SeqCst);
        if self.queue.is_empty() {
            true
        } else {
            self.helper_waits.store(false, Relaxed);
            false
        }
    }

    /// The take of an async consumer: on `None`, `waker` is woken when the next batch may
    /// be ready. On a rayon worker (a blocking executor there) it first runs this adapter's
    /// queued jobs, as `next()` does, so a pool of one thread still makes progress.
    #[cfg(feature = "stream")]
    pub(crate) fn poll_batch(&self, waker: &std::task::Waker, on_worker: bool) -> Option<Next<R>>
    where
        F: Fn(T) -> R,
    {
        let mut ring = self.ring.lock();
        loop {
            if let Some(next) = self.try_take(&mut ring) {
                return Some(next);
            }
            if !on_worker {
                break;
            }
            drop(ring);
            self.helper_waits.store(false, Relaxed);
            let ran = self.run_one();
            ring = self.ring.lock();
            if !ran {
                if let Some(next) = self.try_take(&mut ring) {
                    return Some(next);
                }
                if self.announce_helper() {
                    break;
                }
            }
        }
        self.nudge_feeder(&mut ring);
        ring.consumer_waits = true;
        match &mut ring.waker {
            Some(w) if w.will_wake(waker) => {}
            slot => *slot = Some(waker.clone()),
        }
        None
    }

    /// Stops everything: the feeder takes no more items, runners skip work not started, and
    /// finished results are dropped (here, outside the lock). Idempotent.
    pub(crate) fn cancel(&self) {
        self.flags.0.cancelled.store(true, SeqCst);
        let (slots, ready) = {
            let mut ring = self.ring.lock();
            if ring.feeder_waits {
                ring.feeder_waits = false;
                self.feeder_cv.notify_one();
            }
            #[cfg(feature = "stream")]
            ring.waker.take();
            let first = ring.first + ring.slots.len() as u64;
            ring.first = first;
            (
                std::mem::take(&mut ring.slots),
                std::mem::take(&mut ring.ready),
            )
        };
        drop(slots);
        drop(ready);
    }
}
