//! The slot ring: sequence-numbered slots, the lock, the two condition variables,
//! backpressure and cancellation. This module is the whole protocol: this file holds the
//! shared state and the feeder's side, `runners.rs` the runners' side (the only code that
//! calls `f`), `waits.rs` the consumer's side.
//!
//! # Counting
//! The ring has `cap` item slots (`buffer(cap)`). The feeder counts `taken` (items it has
//! claimed a slot for, a pull under way included); the consumer counts `yielded` (items
//! `next()` has returned) and publishes it in an atomic after every item. The feeder may
//! claim a slot only while `taken - yielded < cap`, so items taken and not yet returned
//! never number more than `cap`. Each item gets a sequence number (`seq`) and goes to the
//! pool *as soon as it is pulled*: the feeder pushes it, with plain stores, on the item
//! queue (`crate::queue`), whose other end the runners take runs from. An item never waits
//! for a later pull, so a source that blocks between two items (a quiet channel, a socket)
//! strands nothing. Batching happens on the taking side: a runner takes a run of
//! consecutive items (up to about `TARGET_BATCH_NANOS` of work, about half the queue at
//! most) and hands their results back as one [`Batch`], keyed by its first `seq`; the
//! feeder's final `end` says how many items there were, so dispatching takes no lock.
//!
//! # Who waits on what, who wakes whom
//! - The **consumer** waits on `consumer_cv` for the batch that starts at `next_seq` (or,
//!   when unordered, for any finished batch). The runner that finishes *that* batch wakes
//!   it; other completions wake nobody.
//! - The **feeder** runs in turns on the shared feeding threads ([`crate::feeding`]). When
//!   fewer than `want` slots are free (a whole refill: hysteresis, so a fast consumer resumes
//!   it once a refill, not once an item) it *parks*: under the lock it stores
//!   `wake_feeder_at`, the `yielded` count that frees them, fences (`SeqCst`) and re-reads
//!   `yielded`; if that is still short it leaves itself in `parked` and its thread goes
//!   back to the feeding queue. The consumer, after every item, stores `yielded`, fences
//!   and reads `wake_feeder_at`; if it has reached it, it takes the lock, takes the feeder
//!   out of `parked` and submits its turn. The two fences close the store-load race: either
//!   the feeder sees the count or the consumer sees the target, so a consumer that pauses
//!   always finds the ring refilled (loom: `a_paused_consumer_finds_the_ring_refilled`).
//!   The fence costs the consumer a few nanoseconds an item. A feeder waiting for more than
//!   one slot also sets a timer of [`HYSTERESIS`]: a consumer that pauses midway through a
//!   refill still gets what it freed refilled, after which the feeder follows it slot by
//!   slot. A parked feeder holds no thread and wakes nobody. The scoped form's feeder has a
//!   thread of its own (its source may borrow) and sleeps on `feeder_cv` instead.
//! - **Runners** are started by the feeder, never woken: after each push the feeder fences
//!   (`SeqCst`) and reads `runners`; a runner leaving decrements `runners`, fences, and looks
//!   at the queue once more. So either the leaving runner sees the item, or the feeder sees
//!   it gone and starts one (a second one only when the queued work pays for a spawn). A
//!   runner that finds the queue empty hands over the batch it holds at once if the
//!   consumer is `hungry` (found nothing to take), else when it leaves after a short linger.
//!   A consumer waiting on a worker of the pool sets `helper_waits`; the feeder then wakes
//!   it for each item, which it runs itself.
//! - **Cancel** (the adapter dropped, or a panic re-raised) sets `cancelled`, wakes the
//!   feeder, and takes every finished result out to drop it outside the lock.
//!
//! No lock of ours is held while user code runs: `f`, the source's `next()`, a `Drop` of an
//! item or a result, rayon's `spawn`, or a `Waker`'s clone, wake or drop. A `Drop` of ours
//! that panics is caught and discarded ([`crate::silent`]).

mod runners;
mod waits;

use crate::feeding::{Feeding, Timed, TimerKey, Turn};
use crate::queue::Queue;
use crate::silent::{drop_each_silently, drop_silently, Silent};
use crate::sync::{fence, Arc, AtomicBool, AtomicU64, AtomicUsize, Condvar, Mutex, Padded};
use std::any::Any;
use std::collections::{BTreeMap, VecDeque};
use std::sync::atomic::Ordering::{Relaxed, SeqCst};
use std::time::Duration;

/// A panic payload, carried from the thread that caught it to the consumer.
pub(crate) type Payload = Box<dyn Any + Send + 'static>;

/// How long the feeder waits for a whole refill's worth of free slots before it refills
/// whatever is free.
pub(crate) const HYSTERESIS: Duration = Duration::from_millis(1);

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
/// (same measure, with [`RUNNER_LINGER`] 16: 8 gave 4.7 ns an item, 16 gave 5.6 ns). Only
/// while batches are quick: see [`CONSUMER_YIELD_NANOS`].
#[cfg(not(lazy_par_map_loom))]
const CONSUMER_SPIN: u32 = 8;

#[cfg(lazy_par_map_loom)]
const CONSUMER_SPIN: u32 = 0;

/// The consumer yields before it sleeps only while a runner's batch takes under this (or,
/// while its `f` is untimed, an item of the process's latest adapter's `f` did). Waiting
/// for quick batches the yields pay: sleeping instead, it is woken once a batch on a busy
/// core (6 to 14% of throughput with items of 0.5 to 150 µs). For long ones they cost: each
/// yield may hand the core to a runner busy in `f`, on Linux's EEVDF scheduler for its
/// whole time slice (3 ms). With a 1 ms busy `f` a fresh process got its first result
/// after 3.4 ms (median of 6), 1.5 ms once the consumer slept instead; 500 such items took
/// 269 ms (median of 10, ideal 250), 253.7 ms with no yields. The same line decides
/// whether an untimed adapter holds a runner back ([`Shared::first_runners`]): after an
/// `f` this slow, a first result is worth a core left free.
const CONSUMER_YIELD_NANOS: u64 = 500_000;

/// Otherwise, while `f` is untimed, the consumer spins in place, without yielding, this long
/// before it sleeps: a first result of a cheap `f` is often that close, and a sleep costs a
/// wake-up (20,000 adapters of 8 items: 26 µs an adapter without the pause, 10 to 14 µs
/// with 5 to 20 µs). Not once `f` is timed and its batches are slow: the next result is
/// then a fraction of a batch away, and on a machine whose cores all run `f` each pause
/// takes one from a runner (`spin1ms` of `cargo bench --bench throughput`, 500 items of a
/// 1 ms busy `f` on 2 cores: 1.015× `par_bridge`'s time with the pause, 1.012× without).
#[cfg(not(lazy_par_map_loom))]
const CONSUMER_PAUSE: Duration = Duration::from_micros(10);
#[cfg(lazy_par_map_loom)]
const CONSUMER_PAUSE: Duration = Duration::ZERO;

/// How long a consumer on a rayon worker blocks before it looks for pool work again.
pub(crate) const HELP_POLL: Duration = Duration::from_millis(1);

/// Starts a runner for an adapter ([`Shared::lift`]).
pub(crate) type Spawner<T, R, F> = Box<dyn Fn(Arc<Shared<T, R, F>>) + Send + Sync>;

/// How long a runner may be held back while `f` is untimed ([`Shared::first_runners`]).
pub(crate) const LIFT_AFTER: Duration = Duration::from_millis(2);

/// The timer number that lets go of a held-back runner (a feeder's waits count from 0).
pub(crate) const LIFT_WAIT: u64 = u64::MAX;

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

/// When the feeder looks whether one more runner is worth starting
/// ([`Shared::spawn_check`]).
#[derive(Clone, Copy)]
pub(crate) enum SpawnCheck {
    /// After every item: `f`'s cost is unknown, or one item pays for a runner.
    Always,
    /// After items whose number has these bits clear, by the queue's length.
    Every {
        /// The bits.
        mask: u64,
        /// `f`'s cost per item, in nanoseconds.
        f_nanos: u64,
    },
}

/// A parked feeder.
pub(crate) enum Parked {
    /// A turn of the feeding threads, to submit to them when resumed, and its timer.
    Turn(Box<dyn Turn>, std::sync::Arc<Feeding>, Option<TimerKey>),
    /// A feeder on a thread of its own, asleep on `feeder_cv`.
    Thread,
}

/// What to do, once the lock is released, to resume a feeder taken out of the ring.
#[must_use]
pub(crate) enum Resume {
    /// Nothing was parked, or a thread was notified.
    Nothing,
    /// Submit this turn (cancelling its timer).
    Turn(Box<dyn Turn>, std::sync::Arc<Feeding>, Option<TimerKey>),
}

impl Resume {
    /// Submits the turn, if any (with no lock of ours held).
    pub(crate) fn run(self, timed_out: bool) {
        if let Resume::Turn(turn, feeding, timer) = self {
            feeding.submit(turn, timed_out, timer);
        }
    }
}

impl<T, R, F> Timed for Shared<T, R, F>
where
    T: Send,
    R: Send,
    F: Send + Sync,
{
    fn time_out(self: std::sync::Arc<Self>, wait: u64) {
        #[cfg(not(lazy_par_map_loom))]
        if wait == LIFT_WAIT {
            Shared::lift(&self);
            return;
        }
        let mut ring = self.ring.lock();
        if ring.wait_id != wait || !matches!(ring.parked, Some(Parked::Turn(..))) {
            return;
        }
        let resume = self.unpark(&mut ring);
        drop(ring);
        resume.run(true);
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
    /// The feeder, parked until `wake_feeder_at` (or its timer, or a cancel).
    parked: Option<Parked>,
    /// Numbers the feeder's waits, so that a timer acts only on the wait it was set for.
    wait_id: u64,
    /// The async consumer's waker, when it waits (`stream` feature).
    #[cfg(feature = "stream")]
    waker: Option<std::task::Waker>,
}

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

/// The state shared by the adapter (consumer), the feeder and the pool's runners.
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
    /// Starts one more runner on the adapter's pool: set by the map forms, for
    /// [`Shared::lift`]. Without it (the scoped form, loom models) no runner is held back.
    spawner: Option<Spawner<T, R, F>>,
    /// The runner held back while `f` was untimed has been let go ([`Shared::lift`]).
    lifted: AtomicBool,
    /// A timer lets go of it ([`Shared::arm_lift`]).
    lift_armed: AtomicBool,
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
    queue: Silent<Queue<T>>,
    /// The finished batches, the end, and who waits.
    ring: Mutex<Ring<R>>,
    /// The consumer waits here for results.
    consumer_cv: Condvar,
    /// A feeder on its own thread (the scoped form) sleeps here while parked.
    feeder_cv: Condvar,
    /// Items a runner takes at once under loom, where timing must not steer the model.
    #[cfg(lazy_par_map_loom)]
    pub(crate) loom_batch: usize,
}

impl<T, R, F> Shared<T, R, F> {
    pub(crate) fn new(
        f: F,
        queue: Queue<T>,
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
            spawner: None,
            lifted: AtomicBool::new(false),
            lift_armed: AtomicBool::new(false),
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
                parked: None,
                wait_id: 0,
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

    /// The same state, able to start runners itself ([`Shared::lift`]).
    pub(crate) fn with_spawner(mut self, spawner: Spawner<T, R, F>) -> Self {
        self.spawner = Some(spawner);
        self
    }

    /// How many runners may run at once while `f` is untimed. One is held back when the
    /// pool has a thread per core (rayon's default), the adapter is ordered and the
    /// process's latest adapter found its `f` slow (500 µs an item or more): with every
    /// core running a long busy `f`, the consumer woken for its first result would wait
    /// for a core until a runner's time slice ends (Linux's EEVDF: 3 ms; a warm process
    /// got its first result of a 1 ms busy `f` after 1.1 or 4.9 ms). The held-back runner
    /// starts once `f` is timed (the runner that timed it starts it), or [`LIFT_AFTER`]
    /// after the feeder's first turn (a timer), so an `f` that waits for another item's
    /// `f` is delayed, never stuck. Unordered adapters, pools of another size (more
    /// threads than cores are for a blocking `f`), the scoped form, and a process's first
    /// adapter (its cores are not read yet) start every runner at once.
    fn first_runners(&self) -> usize {
        let threads = self.max_runners();
        let hold_back = self.ordered
            && threads > 1
            && self.spawner.is_some()
            && !self.lifted.load(Relaxed)
            && runners::RECENT_F_NANOS.load(Relaxed) >= CONSUMER_YIELD_NANOS
            && Some(threads) == crate::pool::cores_if_known();
        threads - usize::from(hold_back)
    }

    /// Whether a runner is held back ([`Shared::first_runners`]).
    pub(crate) fn lift_pending(&self) -> bool {
        self.f_nanos.load(Relaxed) == 0 && self.first_runners() < self.max_runners()
    }

    /// Lets go of the runner held back while `f` was untimed, and starts it if items wait
    /// and are worth a spawn.
    pub(crate) fn lift(this: &Arc<Self>) {
        if this.lifted.swap(true, SeqCst) {
            return;
        }
        if let Some(spawn) = &this.spawner {
            fence(SeqCst);
            let queued = this.queue.get().len() as u64;
            let f_nanos = this.f_nanos.load(Relaxed);
            let worth = f_nanos == 0 || queued.saturating_mul(f_nanos) >= SPAWN_WORTH_NANOS;
            if queued > 0 && worth && this.claim_runner() {
                spawn(Arc::clone(this));
            }
        }
    }

    /// Sets the timer that lets go of a held-back runner [`LIFT_AFTER`] from now, once.
    #[cfg(not(lazy_par_map_loom))]
    pub(crate) fn arm_lift(this: &Arc<Self>, feeding: &std::sync::Arc<Feeding>)
    where
        Self: Timed + 'static,
    {
        if this.lift_pending() && !this.lift_armed.swap(true, Relaxed) {
            let me: std::sync::Weak<dyn Timed> = Arc::downgrade(this) as _;
            feeding.add_timer(std::time::Instant::now() + LIFT_AFTER, (me, LIFT_WAIT));
        }
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

    /// Parks `turn`, the feeder, in the ring until `want` slots are free (the consumer
    /// resumes it), or until its timer (after [`HYSTERESIS`], only if `want > 1`: a consumer
    /// that pauses midway still gets what it freed refilled). Gives `turn` back if the slots
    /// are free already or the adapter has stopped: the feeder runs on.
    pub(crate) fn park<P>(
        this: &Arc<Self>,
        taken: u64,
        want: u64,
        turn: Box<P>,
        feeding: &std::sync::Arc<Feeding>,
    ) -> Result<(), Box<P>>
    where
        P: Turn + 'static,
        Self: Timed + 'static,
    {
        let mut ring = this.ring.lock();
        if this.ready_to_feed(taken, want) {
            return Err(turn);
        }
        ring.wait_id += 1;
        // The timer is set under our lock (the feeding threads' lock is only ever taken
        // inside ours, never the other way), so that whoever resumes the feeder finds it
        // and cancels it.
        #[cfg(not(lazy_par_map_loom))]
        let timer = (want > 1).then(|| {
            let me: std::sync::Weak<dyn Timed> = Arc::downgrade(this) as _;
            let due = std::time::Instant::now() + HYSTERESIS;
            feeding.add_timer(due, (me, ring.wait_id))
        });
        #[cfg(lazy_par_map_loom)]
        let timer = None;
        ring.parked = Some(Parked::Turn(turn, std::sync::Arc::clone(feeding), timer));
        drop(ring);
        Ok(())
    }

    /// [`Shared::park`] for a feeder on a thread of its own (the scoped form): sleeps on
    /// `feeder_cv` until resumed, or [`HYSTERESIS`] if `want > 1`. Returns `true` if it
    /// timed out.
    pub(crate) fn park_thread(&self, taken: u64, want: u64) -> bool {
        let mut ring = self.ring.lock();
        if self.ready_to_feed(taken, want) {
            return false;
        }
        ring.parked = Some(Parked::Thread);
        let mut timed_out = false;
        while ring.parked.is_some() {
            if want > 1 {
                timed_out = self.feeder_cv.wait_for(&mut ring, HYSTERESIS);
                if timed_out {
                    ring.parked = None;
                    self.wake_feeder_at.0.store(u64::MAX, Relaxed);
                }
            } else {
                self.feeder_cv.wait(&mut ring);
            }
        }
        timed_out
    }

    /// With the lock held, before the feeder parks: whether it should rather run on (the
    /// `want` slots are free, or the adapter stopped). If not, `wake_feeder_at` is set:
    /// the consumer's fence and this one make sure that either this load sees its count or
    /// its load sees the target (the store-load race of the module doc, closed).
    fn ready_to_feed(&self, taken: u64, want: u64) -> bool {
        if self.is_stopped() {
            return true;
        }
        let target = (taken + want.clamp(1, self.cap)).saturating_sub(self.cap);
        self.wake_feeder_at.0.store(target, Relaxed);
        fence(SeqCst);
        let ready = self.yielded.0.load(Relaxed) >= target || self.is_stopped();
        if ready {
            self.wake_feeder_at.0.store(u64::MAX, Relaxed);
        }
        ready
    }

    /// Whether the feeder waits for the consumer to free slots (parked in its turn, or
    /// asleep on its own thread): no item comes until the consumer takes some. A hint,
    /// read without the lock.
    pub(crate) fn feeder_parked(&self) -> bool {
        self.wake_feeder_at.0.load(Relaxed) != u64::MAX
    }

    /// With the lock held: takes the parked feeder out, to resume once the lock is
    /// released ([`Resume::run`]).
    fn unpark(&self, ring: &mut Ring<R>) -> Resume {
        self.wake_feeder_at.0.store(u64::MAX, Relaxed);
        match ring.parked.take() {
            Some(Parked::Turn(turn, feeding, timer)) => Resume::Turn(turn, feeding, timer),
            Some(Parked::Thread) => {
                self.feeder_cv.notify_one();
                Resume::Nothing
            }
            None => Resume::Nothing,
        }
    }

    /// After the feeder pushed an item: makes sure someone will run it. Returns `true` if
    /// the caller must start a runner. No lock, unless a consumer on a worker waits.
    #[inline]
    pub(crate) fn after_push(&self, seq: u64, spawn_check: SpawnCheck) -> bool {
        // Pairs with the fence in `run_jobs`: either that runner sees this item, or we see
        // that it has left and start another. Likewise with a consumer that waits on a
        // worker of the pool (`helper_waits`): it sees the item, or we wake it to run it.
        fence(SeqCst);
        if self.flags.0.helper_waits.load(Relaxed) {
            self.wake_consumer(self.ring.lock());
        }
        let running = self.runners.0.load(SeqCst);
        if running > 0 && !self.worth_another_runner(seq, spawn_check) {
            // A runner is draining the queue and will see this item: one more would cost
            // a spawn and a wake-up for less work than that.
            return false;
        }
        self.claim_runner()
    }

    /// How the feeder decides, while a runner drains the queue, whether the queued work
    /// pays for one more ([`Shared::worth_another_runner`]): chosen once per refill from
    /// `f`'s cost, so that an item costs no more than a mask test.
    pub(crate) fn spawn_check(&self) -> SpawnCheck {
        let f_nanos = self.f_nanos.load(Relaxed);
        // Timing must not steer a loom model: there every runner allowed is started.
        if cfg!(lazy_par_map_loom) || f_nanos == 0 || f_nanos >= SPAWN_WORTH_NANOS {
            return SpawnCheck::Always;
        }
        // Measure about once per SPAWN_WORTH_NANOS of work pushed: every item or two for a
        // costly `f`, every 256th for a cheap one.
        let shift = (SPAWN_WORTH_NANOS.ilog2() - f_nanos.ilog2()).min(8);
        SpawnCheck::Every {
            mask: (1 << shift) - 1,
            f_nanos,
        }
    }

    /// Whether the queued work pays for starting one more runner: always while `f`'s cost is
    /// unknown or one item is worth it, else once the queue holds [`SPAWN_WORTH_NANOS`] of
    /// work. The queue's length is a line the runners write, and reading it costs a fence:
    /// it is measured about once per [`SPAWN_WORTH_NANOS`] of work pushed (`seq`), at most
    /// every 256th item.
    fn worth_another_runner(&self, seq: u64, spawn_check: SpawnCheck) -> bool {
        match spawn_check {
            SpawnCheck::Always => true,
            SpawnCheck::Every { mask, f_nanos } => {
                seq & mask == 0 && self.queue.get().len() as u64 * f_nanos >= SPAWN_WORTH_NANOS
            }
        }
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
        let max = if self.f_nanos.load(Relaxed) == 0 {
            self.first_runners()
        } else {
            self.max_runners()
        };
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
