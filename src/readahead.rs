//! [`Readahead`]: a source read ahead on a feeding thread, with no pool hop.
//!
//! The same engine as the map, with the identity for `f` and no runner: the feeder claims a
//! slot, pulls, and hands the item straight to the consumer's side of the ring (see
//! `Shared::deliver_inline`). Nothing touches rayon.

use crate::error::{NextTimeoutError, TryNextError};
use crate::map::LazyParMap;
use crate::stats::Stats;
use std::fmt;
use std::iter::FusedIterator;
use std::time::Duration;

/// The identity, the `f` of a readahead.
type Identity<T> = fn(T) -> T;

/// A source read ahead on a background thread; see
/// [`LazyParMapExt::readahead`](crate::LazyParMapExt::readahead).
#[must_use = "iterator adaptors are lazy and do nothing unless consumed"]
pub struct Readahead<I>
where
    I: Iterator,
{
    inner: LazyParMap<I, Identity<I::Item>, I::Item>,
}

impl<I> Readahead<I>
where
    I: Iterator + Send + 'static,
    I::Item: Send + 'static,
{
    #[track_caller]
    pub(crate) fn new(source: I, n: usize) -> Self {
        assert!(
            n != 0,
            "lazy_par_map: `readahead(0)`: the buffer must hold at least one item"
        );
        let identity: Identity<I::Item> = |item| item;
        Readahead {
            inner: LazyParMap::new(source, identity).buffer(n).inline(),
        }
    }

    /// Begins reading ahead now, in the background; see
    /// [`LazyParMap::start`](crate::LazyParMap::start).
    ///
    /// # Examples
    /// ```
    /// use lazy_par_map::prelude::*;
    /// let mut lines = ["a", "b"].into_iter().readahead(2).start();
    /// // ... the two items are read while the caller does something else ...
    /// assert_eq!(lines.next(), Some("a"));
    /// ```
    pub fn start(mut self) -> Self {
        self.inner = self.inner.start();
        self
    }

    /// The next item if it has been read, without waiting; see
    /// [`LazyParMap::try_next`](crate::LazyParMap::try_next).
    ///
    /// # Errors
    /// [`TryNextError::NotReady`] or [`TryNextError::Finished`].
    ///
    /// # Panics
    /// Re-raises a panic of the source in its place.
    ///
    /// # Examples
    /// ```
    /// use lazy_par_map::prelude::*;
    /// use lazy_par_map::TryNextError;
    /// let mut it = (0..2).readahead(4);
    /// let mut got = Vec::new();
    /// loop {
    ///     match it.try_next() {
    ///         Ok(x) => got.push(x),
    ///         Err(TryNextError::NotReady) => std::thread::yield_now(),
    ///         Err(TryNextError::Finished) => break,
    ///     }
    /// }
    /// assert_eq!(got, [0, 1]);
    /// ```
    pub fn try_next(&mut self) -> Result<I::Item, TryNextError> {
        self.inner.try_next()
    }

    /// Waits at most `timeout` for the next item; see
    /// [`LazyParMap::next_timeout`](crate::LazyParMap::next_timeout).
    ///
    /// # Errors
    /// [`NextTimeoutError::Timeout`] or [`NextTimeoutError::Finished`].
    ///
    /// # Panics
    /// Re-raises a panic of the source in its place.
    ///
    /// # Examples
    /// ```
    /// use lazy_par_map::prelude::*;
    /// use std::time::Duration;
    /// let mut it = std::iter::once(7).readahead(1);
    /// assert_eq!(it.next_timeout(Duration::from_secs(60)), Ok(7));
    /// ```
    pub fn next_timeout(&mut self, timeout: Duration) -> Result<I::Item, NextTimeoutError> {
        self.inner.next_timeout(timeout)
    }

    /// Counts: items read, returned and held; see
    /// [`LazyParMap::stats`](crate::LazyParMap::stats).
    ///
    /// # Examples
    /// ```
    /// use lazy_par_map::prelude::*;
    /// let mut it = (0..100).readahead(10);
    /// it.next();
    /// assert_eq!(it.stats().yielded, 1);
    /// assert!(it.stats().in_flight <= 10);
    /// ```
    pub fn stats(&self) -> Stats {
        self.inner.stats()
    }
}

impl<I> Iterator for Readahead<I>
where
    I: Iterator + Send + 'static,
    I::Item: Send + 'static,
{
    type Item = I::Item;

    /// The next item in source order, waiting for it if it has not been read yet.
    ///
    /// # Panics
    /// If the source's `next()` panicked where this item would be, the panic is re-raised
    /// here with its payload, after every earlier item; then `None`.
    #[inline]
    fn next(&mut self) -> Option<I::Item> {
        self.inner.next()
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        self.inner.size_hint()
    }
}

impl<I> ExactSizeIterator for Readahead<I>
where
    I: ExactSizeIterator + Send + 'static,
    I::Item: Send + 'static,
{
}

impl<I> FusedIterator for Readahead<I>
where
    I: Iterator + Send + 'static,
    I::Item: Send + 'static,
{
}

impl<I> fmt::Debug for Readahead<I>
where
    I: Iterator + fmt::Debug,
{
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Readahead")
            .field("inner", &self.inner)
            .finish()
    }
}
