//! [`LazyParMap`]: configuration, the `Iterator` impl, and starting the feeder.

use crate::adapter::{Adapter, Config};
use crate::consumer::Consumer;
use crate::error::{NextTimeoutError, TryNextError};
use crate::feeder::{Feeder, Turns};
use crate::feeding::Feeding;
use crate::mapper::MapFn;
use crate::pool::Pool;
use crate::ring::{Shared, Spawner};
use crate::silent::drop_silently;
use crate::stats::Stats;
#[cfg(feature = "stream")]
use crate::stream::LazyParMapStream;
use crate::sync::Arc;
use std::fmt;
use std::iter::FusedIterator;
use std::time::Duration;

/// An ordered, lazy, bounded parallel map over an iterator; see
/// [`LazyParMapExt::lazy_par_map`](crate::LazyParMapExt::lazy_par_map).
///
/// Building it does no work. The first call to [`next`](Iterator::next) (or to
/// [`start`](LazyParMap::start)) starts the feeder, which reads the source on a feeding
/// thread shared by every adapter and hands items to the rayon pool; results come back in
/// input order.
#[must_use = "iterator adaptors are lazy and do nothing unless consumed"]
pub struct LazyParMap<I, F, R>
where
    I: Iterator,
{
    adapter: Adapter<I, F, R>,
}

impl<I, F, R> LazyParMap<I, F, R>
where
    I: Iterator + Send + 'static,
    I::Item: Send + 'static,
    F: MapFn<I::Item, Output = R> + Send + Sync + 'static,
    R: Send + 'static,
{
    pub(crate) fn new(source: I, f: F) -> Self {
        Self::with_stop(source, f, None)
    }

    /// An adapter that ends after the first result for which `stop_when` is true.
    pub(crate) fn with_stop(source: I, f: F, stop_when: Option<fn(&R) -> bool>) -> Self {
        LazyParMap {
            adapter: Adapter::new(source, f, stop_when),
        }
    }

    /// Sets the number of slots: at most `n` items are taken from the source and not yet
    /// returned by `next()`, at every moment. The default is [`DEFAULT_BUFFER`](crate::DEFAULT_BUFFER).
    ///
    /// A small buffer keeps the map lazy (little work ahead of the consumer, little memory);
    /// a large one keeps every thread busy when `f`'s cost varies, since one slow item holds
    /// back every finished item behind it. Choose at least a few times the pool's threads.
    ///
    /// # Panics
    /// If `n` is 0, or if the adapter has already started.
    ///
    /// # Examples
    /// ```
    /// use lazy_par_map::prelude::*;
    /// let squares: Vec<u64> = (0..100u64).lazy_par_map(|x| x * x).buffer(8).collect();
    /// assert_eq!(squares[9], 81);
    /// ```
    /// ```should_panic
    /// use lazy_par_map::prelude::*;
    /// let _ = (0..10).lazy_par_map(|x| x).buffer(0); // panics: `buffer` needs at least 1
    /// ```
    #[track_caller]
    pub fn buffer(mut self, n: usize) -> Self {
        self.adapter.set_buffer(n);
        self
    }

    /// Removes the bound: the feeder reads the source as fast as it can (the seed's
    /// `buffer_size=None`). Memory then grows with the source; use it only on finite input
    /// that fits.
    ///
    /// # Panics
    /// If the adapter has already started.
    ///
    /// # Examples
    /// ```
    /// use lazy_par_map::prelude::*;
    /// let total: u64 = (0..1000u64).lazy_par_map(|x| x + 1).unbounded().sum();
    /// assert_eq!(total, 500_500);
    /// ```
    #[track_caller]
    pub fn unbounded(mut self) -> Self {
        self.adapter.set_unbounded();
        self
    }

    /// Runs `f` on `pool` instead of rayon's global pool. The adapter keeps the pool alive
    /// until its last job has run. Without it, `f` runs on the global pool, even when the
    /// adapter starts inside another pool's `install`.
    ///
    /// # Panics
    /// If the adapter has already started.
    ///
    /// # Examples
    /// ```
    /// use lazy_par_map::prelude::*;
    /// let pool = rayon::ThreadPoolBuilder::new().num_threads(2).build().unwrap();
    /// let names: Vec<Option<usize>> = (0..4)
    ///     .lazy_par_map(|_| rayon::current_thread_index())
    ///     .pool(pool)
    ///     .collect();
    /// assert!(names.iter().all(|index| index.is_some()));
    /// ```
    #[track_caller]
    pub fn pool(mut self, pool: impl Into<std::sync::Arc<rayon::ThreadPool>>) -> Self {
        self.adapter.config("pool").pool = Pool::Custom(pool.into());
        self
    }

    /// Yields results as they complete instead of in input order, keeping the same bound
    /// on items taken ahead (like `futures`' `buffer_unordered`). Faster when `f`'s cost
    /// varies: a slow item no longer holds back the finished ones behind it. A panic in `f`
    /// is re-raised when its job's turn comes in completion order.
    ///
    /// # Panics
    /// If the adapter has already started.
    ///
    /// # Examples
    /// ```
    /// use lazy_par_map::prelude::*;
    /// let mut out: Vec<u32> = (0..100u32).lazy_par_map(|x| x * 2).unordered().collect();
    /// out.sort();
    /// assert_eq!(out, (0..100).map(|x| x * 2).collect::<Vec<_>>());
    /// ```
    #[track_caller]
    pub fn unordered(mut self) -> Self {
        self.adapter.set_unordered();
        self
    }

    /// Begins the work now, in the background, and returns the adapter: the feeder fills
    /// the buffer while the caller does something else. Calling it again, or calling
    /// `next()` later, is fine; configuring after it panics.
    ///
    /// # Examples
    /// ```
    /// use lazy_par_map::prelude::*;
    /// let mut pages = (0..10).lazy_par_map(|x| x * 10).buffer(4).start();
    /// // ... other work here overlaps with the first four items ...
    /// assert_eq!(pages.next(), Some(0));
    /// ```
    pub fn start(mut self) -> Self {
        self.adapter.running(launch);
        self
    }

    /// Returns the next result if it is ready, without waiting. Starts the adapter if it
    /// has not started.
    ///
    /// # Errors
    /// [`TryNextError::NotReady`] if the next result is not ready yet,
    /// [`TryNextError::Finished`] once every result has been returned.
    ///
    /// # Panics
    /// Like [`next`](Iterator::next): re-raises a panic of `f` or of the source in its place.
    ///
    /// # Examples
    /// ```
    /// use lazy_par_map::prelude::*;
    /// use lazy_par_map::TryNextError;
    /// let mut it = (0..3).lazy_par_map(|x| x + 1);
    /// let mut got = Vec::new();
    /// loop {
    ///     match it.try_next() {
    ///         Ok(x) => got.push(x),
    ///         Err(TryNextError::NotReady) => std::thread::yield_now(), // do other work
    ///         Err(TryNextError::Finished) => break,
    ///     }
    /// }
    /// assert_eq!(got, [1, 2, 3]);
    /// ```
    pub fn try_next(&mut self) -> Result<R, TryNextError> {
        self.adapter.try_next(launch)
    }

    /// Waits at most `timeout` for the next result (the seed's `Executor.map(timeout=)`,
    /// except that a timeout does not end the adapter: call again to keep waiting). Unlike
    /// `next()`, it never runs a job on the calling thread, even on a rayon worker, so it
    /// never overruns `timeout` (see the crate docs on rayon threads).
    ///
    /// # Errors
    /// [`NextTimeoutError::Timeout`] if no result came within `timeout`,
    /// [`NextTimeoutError::Finished`] once every result has been returned.
    ///
    /// # Panics
    /// Like [`next`](Iterator::next): re-raises a panic of `f` or of the source in its place.
    ///
    /// # Examples
    /// ```
    /// use lazy_par_map::prelude::*;
    /// use lazy_par_map::NextTimeoutError;
    /// use std::time::Duration;
    /// let mut it = (0..1).lazy_par_map(|x| {
    ///     std::thread::sleep(Duration::from_millis(300));
    ///     x
    /// });
    /// assert_eq!(it.next_timeout(Duration::from_millis(1)), Err(NextTimeoutError::Timeout));
    /// assert_eq!(it.next_timeout(Duration::from_secs(60)), Ok(0));
    /// assert_eq!(it.next_timeout(Duration::from_secs(60)), Err(NextTimeoutError::Finished));
    /// ```
    pub fn next_timeout(&mut self, timeout: Duration) -> Result<R, NextTimeoutError> {
        self.adapter.next_timeout(timeout, launch)
    }

    /// Counts for choosing `buffer`: items taken, returned and in flight, and how long the
    /// consumer and the feeder have waited. All zero before the adapter starts.
    ///
    /// # Examples
    /// ```
    /// use lazy_par_map::prelude::*;
    /// let mut it = (0..100).lazy_par_map(|x| x).buffer(10);
    /// it.next();
    /// let stats = it.stats();
    /// assert_eq!(stats.yielded, 1);
    /// assert!(stats.in_flight <= 10);
    /// ```
    pub fn stats(&self) -> Stats {
        self.adapter.stats()
    }

    /// This adapter as a `futures_core::Stream` that is not also an `Iterator`, so that with
    /// `futures::StreamExt` in scope `s.next().await` compiles (on the adapter itself,
    /// `Iterator::next` and `StreamExt::next` both apply: error E0034). The adapter is a
    /// `Stream` too; this only removes the ambiguity. Nothing starts until the first poll.
    ///
    /// # Examples
    /// ```
    /// use futures::StreamExt;
    /// use lazy_par_map::prelude::*;
    ///
    /// let mut lens = ["a", "bb", "ccc"].into_iter().lazy_par_map(str::len).into_stream();
    /// futures::executor::block_on(async {
    ///     assert_eq!(lens.next().await, Some(1)); // in input order
    ///     assert_eq!(lens.next().await, Some(2));
    ///     assert_eq!(lens.next().await, Some(3));
    ///     assert_eq!(lens.next().await, None);
    /// });
    /// ```
    #[cfg(feature = "stream")]
    #[cfg_attr(docsrs, doc(cfg(feature = "stream")))]
    pub fn into_stream(self) -> LazyParMapStream<Self> {
        LazyParMapStream::new(self)
    }

    /// Makes the feeder hand items to the consumer itself, with no pool hop
    /// (`readahead`, whose `f` is the identity).
    #[track_caller]
    pub(crate) fn inline(mut self) -> Self {
        self.adapter.config("inline").inline = true;
        self
    }

    /// Ends the adapter early: the feeder takes no more items, work not started is skipped,
    /// results in flight are dropped. Used by the fallible form after its first `Err`.
    pub(crate) fn finish(&mut self) {
        self.adapter.finish();
    }
}

/// Builds the shared state and submits the feeder's first turn to the feeding threads.
/// `f` runs on the adapter's pool: the one given to [`LazyParMap::pool`], else rayon's
/// global pool, even when the adapter starts inside another pool's `install` (the feeder
/// spawns runners from a feeding thread, which belongs to no pool).
fn launch<I, F, R>(source: I, f: F, config: Config<R>) -> Consumer<I::Item, R, F>
where
    I: Iterator + Send + 'static,
    I::Item: Send + 'static,
    F: MapFn<I::Item, Output = R> + Send + Sync + 'static,
    R: Send + 'static,
{
    let pool = config.pool.clone();
    let runners_pool = pool.clone();
    // Without a pool hop (`readahead`) no runner starts: leave rayon's pool untouched.
    let threads = if config.inline {
        Some(1)
    } else {
        pool.num_threads_here()
    };
    let start_runner = move |shared: Arc<Shared<I::Item, R, F>>| {
        // Each runner holds the pool, so a custom pool outlives its last job.
        let keep_alive = runners_pool.clone();
        runners_pool.spawn(move || {
            keep_alive.mark_worker();
            Shared::run_jobs(&shared);
            // The last reference may drop `f`, whose `Drop` may panic: a panic escaping a
            // rayon `spawn` aborts, so it is dropped silently.
            drop_silently(shared);
            drop(keep_alive);
        });
    };
    let (cap, shared) = (config.cap(), config.shared(f));
    let spawner: Spawner<I::Item, R, F> = Box::new(start_runner.clone());
    let shared = move |queue| shared(queue).with_spawner(spawner);
    let (feeder, shared) = Feeder::adaptive(source, cap, shared, threads, start_runner);
    Turns::start(feeder, Feeding::global());
    Consumer::new(shared, pool)
}

impl<I, F, R> Iterator for LazyParMap<I, F, R>
where
    I: Iterator + Send + 'static,
    I::Item: Send + 'static,
    F: MapFn<I::Item, Output = R> + Send + Sync + 'static,
    R: Send + 'static,
{
    type Item = R;

    /// The next result in input order, waiting for it if needed.
    ///
    /// # Panics
    /// If `f` panicked on this item, or the source panicked where this item would be, the
    /// panic is re-raised here with its payload, after every earlier item; the adapter is
    /// then finished and returns `None`.
    #[inline]
    fn next(&mut self) -> Option<R> {
        self.adapter.next(launch)
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        self.adapter.size_hint()
    }
}

impl<I, F, R> ExactSizeIterator for LazyParMap<I, F, R>
where
    I: ExactSizeIterator + Send + 'static,
    I::Item: Send + 'static,
    F: MapFn<I::Item, Output = R> + Send + Sync + 'static,
    R: Send + 'static,
{
}

impl<I, F, R> FusedIterator for LazyParMap<I, F, R>
where
    I: Iterator + Send + 'static,
    I::Item: Send + 'static,
    F: MapFn<I::Item, Output = R> + Send + Sync + 'static,
    R: Send + 'static,
{
}

#[cfg(feature = "stream")]
#[cfg_attr(docsrs, doc(cfg(feature = "stream")))]
impl<I, F, R> futures_core::Stream for LazyParMap<I, F, R>
where
    I: Iterator + Send + 'static,
    I::Item: Send + 'static,
    F: MapFn<I::Item, Output = R> + Send + Sync + 'static,
    R: Send + 'static,
{
    type Item = R;

    /// Polls for the next result without blocking the thread: the task is woken when the
    /// result is ready. Starts the adapter on the first poll.
    fn poll_next(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<R>> {
        self.get_mut().adapter.poll_next(cx.waker(), launch)
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        Iterator::size_hint(self)
    }
}

// Nothing is ever pinned in place: the adapter is moved freely between polls.
impl<I: Iterator, F, R> Unpin for LazyParMap<I, F, R> {}

impl<I, F, R> fmt::Debug for LazyParMap<I, F, R>
where
    I: Iterator + fmt::Debug,
{
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.adapter.debug("LazyParMap", f)
    }
}
