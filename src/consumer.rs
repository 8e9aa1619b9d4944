//! The consumer's side: the results of the current job, the counter it publishes after every
//! item, and how a failure reaches the caller (re-raised panic, then fused).

use crate::mapper::MapFn;
use crate::pool::Pool;
use crate::ring::{Batch, End, Next, Payload, Shared};
use crate::silent::{drop_each_silently, drop_silently};
use crate::sync::Arc;
use std::panic::resume_unwind;
use std::time::{Duration, Instant};

/// What one attempt to get an item gave.
pub(crate) enum Got<R> {
    /// The next item.
    Item(R),
    /// Nothing ready before the deadline.
    NotReady,
    /// The adapter has ended (exhausted, stopped, or failed earlier).
    Finished,
}

/// The iterator's engine: owns the consumer's end of the shared state.
pub(crate) struct Consumer<T, R, F> {
    pub(crate) shared: Arc<Shared<T, R, F>>,
    /// Where `f` runs: whether a consumer on a rayon worker may run items itself.
    pool: Pool,
    /// Results of the current job not yet returned; each one still holds its slot.
    local: std::vec::IntoIter<R>,
    /// The panic to re-raise once `local` is empty.
    panic: Option<Payload>,
    /// Items returned so far (mirrors the shared counter).
    pub(crate) yielded: u64,
    /// Ended: every later call returns `Finished`.
    pub(crate) done: bool,
    /// Time spent waiting for results (for `stats`).
    pub(crate) waited: Duration,
}

impl<T, R, F> Consumer<T, R, F>
where
    F: MapFn<T, Output = R>,
{
    pub(crate) fn new(shared: Arc<Shared<T, R, F>>, pool: Pool) -> Self {
        Consumer {
            shared,
            pool,
            local: Vec::new().into_iter(),
            panic: None,
            yielded: 0,
            done: false,
            waited: Duration::ZERO,
        }
    }

    /// The next item, waiting until `deadline` (`None`: as long as it takes).
    #[inline]
    pub(crate) fn next_until(&mut self, deadline: Option<Instant>) -> Got<R> {
        if let Some(item) = self.local.next() {
            return Got::Item(self.release(item));
        }
        self.next_batch(deadline)
    }

    /// Frees `item`'s slot: the feeder may now take one more from the source.
    #[inline]
    fn release(&mut self, item: R) -> R {
        self.yielded += 1;
        self.shared.publish_yielded(self.yielded);
        item
    }

    #[cold]
    fn next_batch(&mut self, deadline: Option<Instant>) -> Got<R> {
        loop {
            if let Some(payload) = self.panic.take() {
                self.finish();
                resume_unwind(payload);
            }
            if self.done {
                return Got::Finished;
            }
            let started = Instant::now();
            let next = self.shared.next_batch(self.pool.place(), deadline);
            self.waited += started.elapsed();
            if let Some(got) = self.accept(next) {
                return got;
            }
        }
    }

    /// Takes what the ring gave; `None` means "look again" (an empty job).
    fn accept(&mut self, next: Next<R>) -> Option<Got<R>> {
        match next {
            Next::Batch(batch) => {
                self.take_batch(batch);
                self.local.next().map(|item| Got::Item(self.release(item)))
            }
            Next::End(End::Exhausted) => {
                self.finish();
                Some(Got::Finished)
            }
            Next::End(End::Panicked(payload)) => {
                self.finish();
                resume_unwind(payload)
            }
            Next::NotReady => Some(Got::NotReady),
        }
    }

    fn take_batch(&mut self, batch: Batch<R>) {
        self.local = batch.results.into_iter();
        self.panic = batch.panic;
    }

    /// The async form of [`Consumer::next_until`]: `None` means "pending, `waker` registered".
    #[cfg(feature = "stream")]
    pub(crate) fn poll_next(&mut self, waker: &std::task::Waker) -> Option<Option<R>> {
        if let Some(item) = self.local.next() {
            return Some(Some(self.release(item)));
        }
        loop {
            if let Some(payload) = self.panic.take() {
                self.finish();
                resume_unwind(payload);
            }
            if self.done {
                return Some(None);
            }
            let next = self.shared.poll_batch(waker, self.pool.place())?;
            match self.accept(next) {
                Some(Got::Item(item)) => return Some(Some(item)),
                Some(Got::Finished) => return Some(None),
                Some(Got::NotReady) => return None,
                None => {}
            }
        }
    }

    /// Ends the adapter: stops the feeder and drops what is in flight, silently (the
    /// caller may be about to re-raise a panic, or return an `Err`, that must not be
    /// replaced by the panic of a result's `Drop`). Idempotent.
    pub(crate) fn finish(&mut self) {
        self.done = true;
        drop_silently(self.panic.take());
        drop_each_silently(std::mem::replace(&mut self.local, Vec::new().into_iter()));
        self.shared.cancel();
    }
}

impl<T, R, F> Consumer<T, R, F> {
    /// Results of the current job held here and not yet returned.
    pub(crate) fn held(&self) -> usize {
        self.local.len()
    }
}

impl<T, R, F> Drop for Consumer<T, R, F> {
    /// Cancels the adapter and drops the results not returned, silently: the consumer may be
    /// unwinding, where a panic of a result's `Drop` would abort the process.
    fn drop(&mut self) {
        drop_each_silently(std::mem::replace(&mut self.local, Vec::new().into_iter()));
        drop_silently(self.panic.take());
        self.shared.cancel();
    }
}
