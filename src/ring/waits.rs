//! The consumer's side of the ring: publishing its count, taking batches, waiting (and
//! helping, on a rayon worker), the async take, and cancel.

use super::{
    Batch, Next, Resume, Ring, Shared, CONSUMER_PAUSE, CONSUMER_SPIN, CONSUMER_YIELD_NANOS,
    HELP_POLL,
};
use crate::mapper::MapFn;
use crate::pool::Place;
use crate::silent::drop_silently;
use crate::sync::fence;
use std::sync::atomic::Ordering::{Relaxed, Release, SeqCst};
#[cfg(feature = "stream")]
use std::time::Duration;
use std::time::Instant;

impl<T, R, F> Shared<T, R, F> {
    /// Publishes that the consumer has returned `yielded` items, resuming the feeder if it
    /// is parked until then. A store, a fence and a load; no lock unless the feeder waits.
    /// The fence pairs with the feeder's in `ready_to_feed`: a feeder that parks just as
    /// the consumer passes its target is always seen by one side (module doc).
    #[inline]
    pub(crate) fn publish_yielded(&self, yielded: u64) {
        self.yielded.0.store(yielded, Release);
        fence(SeqCst);
        if yielded >= self.wake_feeder_at.0.load(Relaxed) {
            self.wake_feeder();
        }
    }

    /// Called with the lock held before the consumer waits: if the feeder is parked on
    /// slots the consumer has freed, resume it once the lock is released.
    fn nudge_feeder(&self, ring: &mut Ring<R>) -> Resume {
        if ring.parked.is_some()
            && self.yielded.0.load(Relaxed) >= self.wake_feeder_at.0.load(Relaxed)
        {
            self.unpark(ring)
        } else {
            Resume::Nothing
        }
    }

    #[cold]
    pub(super) fn wake_feeder(&self) {
        let mut ring = self.ring.lock();
        let resume = self.unpark(&mut ring);
        drop(ring);
        resume.run(false);
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
        let mut pausing_since = None;
        loop {
            let mut ring = self.ring.lock();
            if let Some(next) = self.try_take(&mut ring) {
                return next;
            }
            if !on_worker && deadline.is_none() {
                if spins < CONSUMER_SPIN && self.may_yield() {
                    // A batch is a few microseconds from done: yield rather than sleep.
                    spins += 1;
                    let resume = self.nudge_feeder(&mut ring);
                    drop(ring);
                    resume.run(false);
                    std::thread::yield_now();
                    continue;
                }
                // Otherwise, while `f` is untimed, a short pause in place: a first result
                // is often microseconds away, and a sleep costs a wake-up. Not after the
                // yields (their batches are quick, and a pause would only delay the sleep),
                // not once `f` is timed slow (the next result is a fraction of a slow batch
                // away, and the pause takes a core from a runner: `CONSUMER_PAUSE`), nor on a
                // single core, where it would hold the core the runner needs.
                if spins == 0
                    && self.f_nanos.load(Relaxed) == 0
                    && crate::pool::cores_if_known() != Some(1)
                    && pausing_since
                        .get_or_insert_with(Instant::now)
                        .elapsed()
                        .lt(&CONSUMER_PAUSE)
                {
                    drop(ring);
                    for _ in 0..64 {
                        std::hint::spin_loop();
                    }
                    continue;
                }
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
            if let resume @ Resume::Turn(..) = self.nudge_feeder(&mut ring) {
                drop(ring);
                resume.run(false);
                continue;
            }
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

    /// Whether the consumer may yield its thread while it waits: once `f` is timed, while a
    /// runner's batch takes under [`CONSUMER_YIELD_NANOS`]. While `f` is untimed, only if
    /// the process's latest adapter found an item of its `f` that quick (many short adapters
    /// of a cheap `f`: the feeder and the runners are starting, and a yield lets them use
    /// this core at once); not in a process's first adapter, nor after a slow one: the first
    /// `f` may be a long busy loop, and a yield would hand it this core for a time slice.
    fn may_yield(&self) -> bool
    where
        F: MapFn<T, Output = R>,
    {
        match self.f_nanos.load(Relaxed) {
            0 => {
                let recent = super::runners::RECENT_F_NANOS.load(Relaxed);
                recent != 0 && recent < CONSUMER_YIELD_NANOS
            }
            f_nanos => f_nanos.saturating_mul(self.batch_limit() as u64) < CONSUMER_YIELD_NANOS,
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
        if (own && self.run_some()) || crate::pool::yield_now() {
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
        if let resume @ Resume::Turn(..) = self.nudge_feeder(&mut ring) {
            // Resume it with no lock held, then look again.
            drop(ring);
            drop(fresh);
            resume.run(false);
            return self.poll_batch(waker, place);
        }
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
            if let resume @ Resume::Turn(..) = self.nudge_feeder(&mut ring) {
                drop(ring);
                resume.run(false);
                continue;
            }
            ring.consumer_waits = true;
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
        let (done, ready, waker, resume) = {
            let mut ring = self.ring.lock();
            // A parked feeder is resumed to end: it drops the source on its own thread.
            let resume = self.unpark(&mut ring);
            #[cfg(feature = "stream")]
            let waker = ring.waker.take();
            #[cfg(not(feature = "stream"))]
            let waker = ();
            (
                std::mem::take(&mut ring.done),
                std::mem::take(&mut ring.ready),
                waker,
                resume,
            )
        };
        resume.run(false);
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
