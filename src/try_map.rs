//! [`TryLazyParMap`]: the fallible form, which ends at the first `Err`.

use crate::error::{NextTimeoutError, TryNextError};
use crate::map::LazyParMap;
#[cfg(feature = "stream")]
use crate::stream::LazyParMapStream;
use std::fmt;
use std::iter::FusedIterator;
use std::sync::Arc;
use std::time::Duration;

/// A [`LazyParMap`] over a fallible `f` that stops at the first error; see
/// [`LazyParMapExt::try_lazy_par_map`](crate::LazyParMapExt::try_lazy_par_map).
#[must_use = "iterator adaptors are lazy and do nothing unless consumed"]
pub struct TryLazyParMap<I, F, T, E>
where
    I: Iterator,
{
    inner: LazyParMap<I, F, Result<T, E>>,
    /// The `Err` has been returned: the adapter is finished.
    failed: bool,
}

impl<I, F, T, E> TryLazyParMap<I, F, T, E>
where
    I: Iterator + Send + 'static,
    I::Item: Send + 'static,
    F: Fn(I::Item) -> Result<T, E> + Send + Sync + 'static,
    T: Send + 'static,
    E: Send + 'static,
{
    pub(crate) fn new(source: I, f: F) -> Self {
        TryLazyParMap {
            inner: LazyParMap::with_stop(source, f, Some(Result::is_err)),
            failed: false,
        }
    }

    /// Sets the number of slots; see [`LazyParMap::buffer`].
    ///
    /// # Panics
    /// If `n` is 0, or if the adapter has already started.
    ///
    /// # Examples
    /// ```
    /// use lazy_par_map::prelude::*;
    /// let out: Result<Vec<u8>, _> = ["1", "2"].into_iter().try_lazy_par_map(str::parse).buffer(2).collect();
    /// assert_eq!(out, Ok(vec![1, 2]));
    /// ```
    #[track_caller]
    pub fn buffer(mut self, n: usize) -> Self {
        self.inner = self.inner.buffer(n);
        self
    }

    /// Removes the bound; see [`LazyParMap::unbounded`].
    ///
    /// # Panics
    /// If the adapter has already started.
    ///
    /// # Examples
    /// ```
    /// use lazy_par_map::prelude::*;
    /// let out: Result<Vec<u8>, _> = ["1", "x"].into_iter().try_lazy_par_map(str::parse::<u8>).unbounded().collect();
    /// assert!(out.is_err());
    /// ```
    #[track_caller]
    pub fn unbounded(mut self) -> Self {
        self.inner = self.inner.unbounded();
        self
    }

    /// Runs `f` on `pool`; see [`LazyParMap::pool`].
    ///
    /// # Panics
    /// If the adapter has already started.
    ///
    /// # Examples
    /// ```
    /// use lazy_par_map::prelude::*;
    /// let pool = rayon::ThreadPoolBuilder::new().num_threads(1).build().unwrap();
    /// let out: Result<Vec<u8>, _> = ["7"].into_iter().try_lazy_par_map(str::parse).pool(pool).collect();
    /// assert_eq!(out, Ok(vec![7]));
    /// ```
    #[track_caller]
    pub fn pool(mut self, pool: impl Into<Arc<rayon::ThreadPool>>) -> Self {
        self.inner = self.inner.pool(pool);
        self
    }

    /// Yields `Ok` values as they complete; the first `Err` to complete ends the adapter.
    /// See [`LazyParMap::unordered`].
    ///
    /// # Panics
    /// If the adapter has already started.
    ///
    /// # Examples
    /// ```
    /// use lazy_par_map::prelude::*;
    /// let mut out: Vec<u8> = ["3", "1", "2"].into_iter()
    ///     .try_lazy_par_map(str::parse::<u8>)
    ///     .unordered()
    ///     .map(Result::unwrap)
    ///     .collect();
    /// out.sort();
    /// assert_eq!(out, [1, 2, 3]);
    /// ```
    #[track_caller]
    pub fn unordered(mut self) -> Self {
        self.inner = self.inner.unordered();
        self
    }

    /// Begins the work now; see [`LazyParMap::start`].
    ///
    /// # Examples
    /// ```
    /// use lazy_par_map::prelude::*;
    /// let mut it = ["1"].into_iter().try_lazy_par_map(str::parse::<u8>).start();
    /// assert_eq!(it.next(), Some(Ok(1)));
    /// ```
    pub fn start(mut self) -> Self {
        self.inner = self.inner.start();
        self
    }

    /// Returns the next `Ok` value or the first `Err` if it is ready, without waiting;
    /// see [`LazyParMap::try_next`]. Starts the adapter if it has not started. After the
    /// first `Err` the adapter is finished: no new item is taken from the source, and work
    /// not started is skipped.
    ///
    /// # Errors
    /// [`TryNextError::NotReady`] if the next result is not ready yet,
    /// [`TryNextError::Finished`] once every result has been returned or an `Err` has been.
    ///
    /// # Panics
    /// Like [`next`](Iterator::next): re-raises a panic of `f` or of the source in its place.
    ///
    /// # Examples
    /// ```
    /// use lazy_par_map::prelude::*;
    /// use lazy_par_map::TryNextError;
    /// let mut it = ["1", "x", "3"].into_iter().try_lazy_par_map(str::parse::<u8>);
    /// let mut got = Vec::new();
    /// loop {
    ///     match it.try_next() {
    ///         Ok(parsed) => got.push(parsed.is_ok()),
    ///         Err(TryNextError::NotReady) => std::thread::yield_now(), // do other work
    ///         Err(TryNextError::Finished) => break,
    ///     }
    /// }
    /// assert_eq!(got, [true, false]); // "3" is never returned: the `Err` ended it
    /// ```
    pub fn try_next(&mut self) -> Result<Result<T, E>, TryNextError> {
        if self.failed {
            return Err(TryNextError::Finished);
        }
        let next = self.inner.try_next();
        if let Ok(result) = &next {
            self.end_after(result);
        }
        next
    }

    /// Waits at most `timeout` for the next `Ok` value or the first `Err`; see
    /// [`LazyParMap::next_timeout`]. A timeout does not end the adapter; the first `Err`
    /// does: no new item is taken from the source, and work not started is skipped.
    ///
    /// # Errors
    /// [`NextTimeoutError::Timeout`] if no result came within `timeout`,
    /// [`NextTimeoutError::Finished`] once every result has been returned or an `Err` has
    /// been.
    ///
    /// # Panics
    /// Like [`next`](Iterator::next): re-raises a panic of `f` or of the source in its place.
    ///
    /// # Examples
    /// ```
    /// use lazy_par_map::prelude::*;
    /// use lazy_par_map::NextTimeoutError;
    /// use std::time::Duration;
    /// let mut it = ["7", "x"].into_iter().try_lazy_par_map(|s| {
    ///     std::thread::sleep(Duration::from_millis(300));
    ///     s.parse::<u8>()
    /// });
    /// assert_eq!(it.next_timeout(Duration::from_millis(1)), Err(NextTimeoutError::Timeout));
    /// assert_eq!(it.next_timeout(Duration::from_secs(60)), Ok(Ok(7)));
    /// assert!(matches!(it.next_timeout(Duration::from_secs(60)), Ok(Err(_))));
    /// assert_eq!(it.next_timeout(Duration::from_secs(60)), Err(NextTimeoutError::Finished));
    /// ```
    pub fn next_timeout(&mut self, timeout: Duration) -> Result<Result<T, E>, NextTimeoutError> {
        if self.failed {
            return Err(NextTimeoutError::Finished);
        }
        let next = self.inner.next_timeout(timeout);
        if let Ok(result) = &next {
            self.end_after(result);
        }
        next
    }

    /// This adapter as a `futures_core::Stream` that is not also an `Iterator`, so that
    /// with `futures::StreamExt` in scope `s.next().await` compiles; see
    /// [`LazyParMap::into_stream`]. The stream ends after the first `Err`.
    ///
    /// # Examples
    /// ```
    /// use futures::StreamExt;
    /// use lazy_par_map::prelude::*;
    ///
    /// let mut s = ["1", "x", "3"].into_iter().try_lazy_par_map(str::parse::<u8>).into_stream();
    /// futures::executor::block_on(async {
    ///     assert_eq!(s.next().await, Some(Ok(1)));
    ///     assert!(matches!(s.next().await, Some(Err(_))));
    ///     assert_eq!(s.next().await, None); // ended by the `Err`
    /// });
    /// ```
    #[cfg(feature = "stream")]
    #[cfg_attr(docsrs, doc(cfg(feature = "stream")))]
    pub fn into_stream(self) -> LazyParMapStream<Self> {
        LazyParMapStream::new(self)
    }

    /// Finishes the adapter if `result` is an `Err` (the first: later calls never get here).
    fn end_after(&mut self, result: &Result<T, E>) {
        if result.is_err() {
            self.failed = true;
            self.inner.finish();
        }
    }

    /// Counts for tuning; see [`LazyParMap::stats`].
    ///
    /// # Examples
    /// ```
    /// use lazy_par_map::prelude::*;
    /// let mut it = ["1", "2"].into_iter().try_lazy_par_map(str::parse::<u8>);
    /// it.next();
    /// assert_eq!(it.stats().yielded, 1);
    /// ```
    pub fn stats(&self) -> crate::Stats {
        self.inner.stats()
    }
}

impl<I, F, T, E> Iterator for TryLazyParMap<I, F, T, E>
where
    I: Iterator + Send + 'static,
    I::Item: Send + 'static,
    F: Fn(I::Item) -> Result<T, E> + Send + Sync + 'static,
    T: Send + 'static,
    E: Send + 'static,
{
    type Item = Result<T, E>;

    /// The next `Ok` value in input order, or the first `Err`, after which the adapter is
    /// finished: no new item is taken from the source, and work not started is skipped.
    ///
    /// # Panics
    /// Like [`LazyParMap`]'s `next`.
    fn next(&mut self) -> Option<Result<T, E>> {
        if self.failed {
            return None;
        }
        let next = self.inner.next();
        if let Some(result) = &next {
            self.end_after(result);
        }
        next
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        if self.failed {
            (0, Some(0))
        } else {
            // Any item may be an `Err` that ends the stream.
            (0, self.inner.size_hint().1)
        }
    }
}

impl<I, F, T, E> FusedIterator for TryLazyParMap<I, F, T, E>
where
    I: Iterator + Send + 'static,
    I::Item: Send + 'static,
    F: Fn(I::Item) -> Result<T, E> + Send + Sync + 'static,
    T: Send + 'static,
    E: Send + 'static,
{
}

#[cfg(feature = "stream")]
#[cfg_attr(docsrs, doc(cfg(feature = "stream")))]
impl<I, F, T, E> futures_core::Stream for TryLazyParMap<I, F, T, E>
where
    I: Iterator + Send + 'static,
    I::Item: Send + 'static,
    F: Fn(I::Item) -> Result<T, E> + Send + Sync + 'static,
    T: Send + 'static,
    E: Send + 'static,
{
    type Item = Result<T, E>;

    /// Polls for the next `Ok` value or the first `Err` without blocking the thread (see
    /// [`LazyParMap`]'s `poll_next`). After the first `Err` the stream is finished
    /// (`Ready(None)`): no new item is taken from the source, and work not started is
    /// skipped.
    ///
    /// # Panics
    /// Like [`LazyParMap`]'s `next`.
    fn poll_next(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<T, E>>> {
        let this = self.get_mut();
        if this.failed {
            return std::task::Poll::Ready(None);
        }
        let polled = futures_core::Stream::poll_next(std::pin::Pin::new(&mut this.inner), cx);
        if let std::task::Poll::Ready(Some(result)) = &polled {
            this.end_after(result);
        }
        polled
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        Iterator::size_hint(self)
    }
}

impl<I, F, T, E> fmt::Debug for TryLazyParMap<I, F, T, E>
where
    I: Iterator + fmt::Debug,
{
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TryLazyParMap")
            .field("inner", &self.inner)
            .field("failed", &self.failed)
            .finish()
    }
}
