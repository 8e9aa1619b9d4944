//! [`TryLazyParMap`]: the fallible form, which ends at the first `Err`.

use crate::map::LazyParMap;
use std::fmt;
use std::iter::FusedIterator;
use std::sync::Arc;

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
        if let Some(Err(_)) = next {
            self.failed = true;
            self.inner.finish();
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
