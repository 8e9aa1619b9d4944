//! The feeding threads: a set of OS threads, shared by every adapter of the process, that
//! run feeding turns. No adapter owns a thread.
//!
//! A *turn* is one adapter's feeder pulling from its source until the ring is full (or
//! the source ends); then the feeder *parks*: it leaves itself in its ring and the thread
//! goes back to the queue. Whoever frees the slots it waits for (the consumer, a timer, a
//! cancel) takes it out and [`submit`](Feeding::submit)s it again. A paused, full or idle
//! adapter therefore holds no thread; a source blocked in `next()` holds the one thread
//! running its turn.
//!
//! The set is modelled on tokio's blocking pool: a FIFO of turns; a thread is spawned
//! when a turn is submitted and no thread is idle, coming back from a turn or already being
//! spawned (so a turn never waits behind a source that blocks; beyond [`FREE_THREADS`],
//! only once the queue stalls); an idle thread exits after [`KEEP_ALIVE`]. The threads are
//! named `lazy-par-map-feeder`. A thread that runs out of turns sleeps at once: yielding a
//! few times first, as a rayon worker does, cost 4x on 20,000 short adapters in a row on 2
//! cores (50 µs an adapter against 12.5 µs: the yielding thread takes the core the
//! consumer and the runners need), and the feeder already yields for its next refill
//! before it parks (`FEEDER_SPIN` in `feeder.rs`).
//!
//! The set also keeps the feeders' timers: a feeder that waits for a whole refill's worth of
//! free slots (hysteresis) asks to be resumed after [`HYSTERESIS`](crate::ring::HYSTERESIS)
//! anyway, so that a consumer that pauses midway still finds its ring refilled. An idle
//! thread sleeps until the next timer is due; a thread is spawned for a timer if none is
//! idle.

use crate::sync::{Condvar, Mutex};
// The set itself is shared through std's `Arc` even under loom (loom's cannot be a `self`
// type); its lock and condition variable are loom's there.
use std::collections::{BTreeMap, VecDeque};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// How long a feeding thread with nothing to do waits before it exits. A program that
/// starts an adapter less often than this pays one thread spawn (~70 µs on a small VM)
/// per adapter; one that starts them more often reuses the threads.
const KEEP_ALIVE: Duration = Duration::from_millis(500);

/// Feeding threads spawned as soon as a turn finds every thread busy. Beyond this many, the
/// last free thread holds back for up to [`STALL`] before it takes a turn while all others
/// are busy: quick turns of many live adapters then share a few threads instead of
/// spawning one each, and sources blocked in `next()` still get a thread per source, each
/// after at most `STALL`. So two turns run at once without delay, and the third thread is
/// the last free one. Three, not four: on 2 cores the fourth only took turns from the others
/// (`live`, 2,000 adapters of 100 items, child processes of `benches/fixed.rs` interleaved
/// 31 times: median 285 against 337 ms, 6 against 7 threads). Not two: the second of two
/// turns at once would wait for the stall, and its thread spawns a third anyway
/// (`tests/faults.rs` then finds three feeding threads after a round that needs two).
const FREE_THREADS: usize = 3;

/// How long the queue may go without a turn taken, with [`FREE_THREADS`] or more busy,
/// before the last free thread takes one and another thread is spawned.
const STALL: Duration = Duration::from_micros(250);

/// A parked feeder: resumed by running it on a feeding thread.
pub(crate) trait Turn: Send {
    /// Runs the feeder until it parks again or ends. `timed_out`: it was resumed by its
    /// timer, not because the slots it waited for are free. Returns `true` if it parked
    /// after [`Feeding::will_return`], which the thread then balances.
    fn resume(self: Box<Self>, timed_out: bool) -> bool;
}

/// What a timer resumes: an adapter whose feeder may be parked.
pub(crate) trait Timed: Send + Sync {
    /// Resumes the feeder if it is still parked in the wait numbered `wait` (or, for the
    /// adapter's other timer, lets go of a runner held back: `ring::LIFT_WAIT`).
    fn time_out(self: Arc<Self>, wait: u64);
}

/// A timer: an adapter and the number of the wait it belongs to.
type Timer = (std::sync::Weak<dyn Timed>, u64);

/// A timer's place among the timers, to cancel it by.
pub(crate) type TimerKey = (Instant, u64);

/// The set of feeding threads.
pub(crate) struct Feeding {
    state: Mutex<State>,
    /// Idle threads sleep here.
    work: Condvar,
    /// The threads a loom model has started, to join at its end.
    #[cfg(lazy_par_map_loom)]
    handles: loom::sync::Mutex<Vec<loom::thread::JoinHandle<()>>>,
}

/// A turn waiting for a thread, and whether its timer resumed it.
type Queued = (Box<dyn Turn>, bool);

struct State {
    /// Turns waiting for a thread, oldest first.
    queue: VecDeque<Queued>,
    /// Due times of the feeders' timers, with a tie-breaking number.
    timers: BTreeMap<(Instant, u64), Timer>,
    /// The next timer's tie-breaking number.
    timer_id: u64,
    /// When a thread last took a turn from the queue.
    last_taken: Instant,
    /// Threads alive.
    threads: usize,
    /// Threads asleep on `work`.
    idle: usize,
    /// Threads whose turn has parked its feeder and that are coming back to the queue
    /// without running user code ([`Feeding::will_return`]).
    returning: usize,
    /// Idle threads notified and not yet awake: each will take one queued turn.
    woken: usize,
    /// A thread is being spawned and has not yet taken the lock (one at a time).
    spawning: bool,
    /// Set by a loom model to let its threads exit once their work is done.
    #[cfg(lazy_par_map_loom)]
    shutdown: bool,
}

impl Feeding {
    pub(crate) fn new() -> Self {
        Feeding {
            state: Mutex::new(State {
                queue: VecDeque::new(),
                timers: BTreeMap::new(),
                timer_id: 0,
                last_taken: Instant::now(),
                threads: 0,
                idle: 0,
                returning: 0,
                woken: 0,
                spawning: false,
                #[cfg(lazy_par_map_loom)]
                shutdown: false,
            }),
            work: Condvar::default(),
            #[cfg(lazy_par_map_loom)]
            handles: loom::sync::Mutex::new(Vec::new()),
        }
    }

    /// The process's feeding threads.
    #[cfg(not(lazy_par_map_loom))]
    pub(crate) fn global() -> &'static Arc<Feeding> {
        static GLOBAL: std::sync::OnceLock<Arc<Feeding>> = std::sync::OnceLock::new();
        GLOBAL.get_or_init(|| Arc::new(Feeding::new()))
    }

    /// Under loom every model has a set of its own (`loom_model::start`).
    #[cfg(lazy_par_map_loom)]
    pub(crate) fn global() -> &'static Arc<Feeding> {
        unreachable!("loom models start adapters through `loom_model::start`")
    }

    /// Queues `turn` for a feeding thread: one coming back from a turn or an idle one takes
    /// it, else a new thread is spawned for it (see [`Need::of`]). `cancel` is the feeder's
    /// refill timer, no longer needed.
    ///
    /// # Panics
    /// If no thread runs and none can be spawned.
    pub(crate) fn submit(
        self: &Arc<Self>,
        turn: Box<dyn Turn>,
        timed_out: bool,
        cancel: Option<TimerKey>,
    ) {
        let mut state = self.state.lock();
        if let Some(key) = cancel {
            // The feeder is resumed before its timer: the timer would only wake a thread.
            state.timers.remove(&key);
        }
        state.queue.push_back((turn, timed_out));
        let need = Need::of(&mut state);
        drop(state);
        self.provide(need);
    }

    /// Called by a turn about to park its feeder: this thread will come back to the queue
    /// without running user code, so a turn submitted meanwhile (the same feeder, resumed at
    /// once) waits for it rather than for a new thread. Undone by [`Feeding::wont_return`]
    /// if the feeder did not park after all.
    pub(crate) fn will_return(&self) {
        self.state.lock().returning += 1;
    }

    /// The feeder did not park after [`Feeding::will_return`]: it runs on.
    pub(crate) fn wont_return(self: &Arc<Self>) {
        let mut state = self.state.lock();
        state.returning -= 1;
        let need = Need::of(&mut state);
        drop(state);
        self.provide(need);
    }

    /// Asks for `adapter` to be timed out of its wait numbered `wait` at `due`; returns the
    /// key that cancels it ([`Feeding::submit`]).
    #[cfg(not(lazy_par_map_loom))]
    pub(crate) fn add_timer(self: &Arc<Self>, due: Instant, adapter: Timer) -> TimerKey {
        let mut state = self.state.lock();
        let id = state.timer_id;
        state.timer_id += 1;
        let earliest = state.timers.keys().next().is_none_or(|&(t, _)| due < t);
        state.timers.insert((due, id), adapter);
        let key = (due, id);
        // A sleeping thread sleeps until the earliest timer: this one is earlier.
        // (A thread coming back from a turn, usually the one calling, will see it.)
        // A timer set from a turn (a runner held back, `Shared::arm_lift`) spawns no thread
        // for itself: the calling thread sees it when its turn ends.
        let free = state.returning + usize::from(state.spawning) + usize::from(on_feeding_thread());
        let need = match earliest && free == 0 {
            true if state.idle > 0 => Need::Wake,
            true => Need::spawn(&mut state),
            false => Need::Nothing,
        };
        drop(state);
        self.provide(need);
        key
    }

    /// Wakes or spawns a thread, as [`Need::of`] decided.
    fn provide(self: &Arc<Self>, need: Need) {
        match need {
            Need::Nothing => {}
            Need::Wake => self.work.notify_one(),
            Need::Spawn => {
                let feeding = Arc::clone(self);
                if let Err(error) = spawn(self, move || feeding.work()) {
                    let mut state = self.state.lock();
                    state.spawning = false;
                    state.threads -= 1;
                    let none = state.threads == 0;
                    drop(state);
                    // With a thread alive, the turn waits for it; with none, forever.
                    assert!(
                        !none,
                        "lazy_par_map: could not spawn a feeding thread: {error}"
                    );
                }
            }
        }
    }

    /// A feeding thread's body: run turns and due timers; sleep when there are none; exit
    /// after [`KEEP_ALIVE`] with nothing to do.
    fn work(self: Arc<Self>) {
        ON_FEEDING_THREAD.with(|on| on.set(true));
        let mut state = self.state.lock();
        state.spawning = false;
        let mut idle_since = Instant::now();
        loop {
            if !state.queue.is_empty() {
                // The last free thread of many holds back while the others take turns, so
                // that a burst of quick turns does not spawn a thread per turn; once no turn
                // has been taken for `STALL` (the others are blocked in sources), it takes
                // one, and a new thread is spawned to be the last free one.
                let others_free = state.idle + state.returning + state.woken > 0;
                let last_of_many = !others_free && state.threads >= FREE_THREADS;
                let stall_at = state.last_taken + STALL;
                let now = Instant::now();
                if last_of_many && now < stall_at && !cfg!(lazy_par_map_loom) {
                    state.idle += 1;
                    self.work.wait_for(&mut state, stall_at - now);
                    state.idle -= 1;
                    state.woken = state.woken.saturating_sub(1);
                    continue;
                }
                let (turn, timed_out) = state.queue.pop_front().expect("a queued turn");
                state.last_taken = now;
                let need = if last_of_many {
                    Need::spawn(&mut state)
                } else {
                    // More turns queued: find them threads too, in case this one blocks.
                    Need::of(&mut state)
                };
                drop(state);
                self.provide(need);
                let announced = turn.resume(timed_out);
                state = self.state.lock();
                state.returning -= usize::from(announced);
                idle_since = Instant::now();
                continue;
            }
            let now = Instant::now();
            #[cfg(not(lazy_par_map_loom))]
            if let Some(entry) = state.timers.first_entry() {
                if entry.key().0 <= now {
                    let (adapter, wait) = entry.remove();
                    drop(state);
                    if let Some(adapter) = adapter.upgrade() {
                        Arc::clone(&adapter).time_out(wait);
                        // The last handle on the adapter may go here: its drop is silent.
                        crate::silent::drop_silently(adapter);
                    }
                    state = self.state.lock();
                    continue;
                }
            }
            #[cfg(lazy_par_map_loom)]
            if state.shutdown {
                state.threads -= 1;
                return;
            }
            let next_timer = state.timers.keys().next().map(|&(due, _)| due);
            let retire_at = idle_since + KEEP_ALIVE;
            if next_timer.is_none() && now >= retire_at {
                state.threads -= 1;
                return;
            }
            let wake_at = next_timer.map_or(retire_at, |due| due.min(retire_at));
            state.idle += 1;
            self.work
                .wait_for(&mut state, wake_at.saturating_duration_since(now));
            state.idle -= 1;
            // Whatever woke it (a notify, its timeout, or both at once), it looks at the
            // queue now: it counts as a woken thread. Miscounting the other way, a notified
            // thread never counted, would leave a turn in the queue with every thread asleep.
            state.woken = state.woken.saturating_sub(1);
        }
    }

    /// Lets the model's threads exit once the queue is empty, wakes them, and joins them.
    #[cfg(lazy_par_map_loom)]
    pub(crate) fn shut_down(&self) {
        self.state.lock().shutdown = true;
        self.work.notify_all();
        loop {
            let Some(handle) = self.handles.lock().unwrap().pop() else {
                return;
            };
            handle.join().unwrap();
        }
    }
}

/// What the queue needs so that every queued turn has a thread that will take it.
enum Need {
    Nothing,
    Wake,
    Spawn,
}

impl Need {
    /// Counts the threads that will look at the queue (coming back from a turn, woken,
    /// being spawned); if they are fewer than the queued turns, wakes an idle
    /// thread, else spawns one while there are at most [`FREE_THREADS`] (beyond that the
    /// last free thread spawns, when the queue stalls: see `work`). One thread at a time is
    /// spawned; the new thread repeats this when it takes its turn.
    fn of(state: &mut State) -> Need {
        let lookers = state.returning + state.woken + usize::from(state.spawning);
        if lookers >= state.queue.len() {
            Need::Nothing
        } else if state.idle > state.woken {
            state.woken += 1;
            Need::Wake
        } else if state.threads < FREE_THREADS {
            Need::spawn(state)
        } else {
            Need::Nothing
        }
    }

    /// Spawns a thread, unless one is being spawned.
    fn spawn(state: &mut State) -> Need {
        if state.spawning {
            return Need::Nothing;
        }
        state.spawning = true;
        state.threads += 1;
        Need::Spawn
    }
}

/// Spawns a named feeding thread running `body`.
#[cfg(not(lazy_par_map_loom))]
fn spawn(_: &Feeding, body: impl FnOnce() + Send + 'static) -> std::io::Result<()> {
    std::thread::Builder::new()
        .name("lazy-par-map-feeder".into())
        .spawn(body)
        .map(drop)
}

/// Under loom, a loom thread, kept so that the model can join it.
#[cfg(lazy_par_map_loom)]
fn spawn(feeding: &Feeding, body: impl FnOnce() + Send + 'static) -> std::io::Result<()> {
    let handle = loom::thread::spawn(body);
    feeding.handles.lock().unwrap().push(handle);
    Ok(())
}

thread_local! {
    /// This thread is a feeding thread (it looks at the timers whenever a turn ends).
    static ON_FEEDING_THREAD: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// Whether the calling thread is a feeding thread.
fn on_feeding_thread() -> bool {
    ON_FEEDING_THREAD.with(std::cell::Cell::get)
}
