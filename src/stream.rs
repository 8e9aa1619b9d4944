//! [`LazyParMapStream`]: an adapter as a `Stream` only, so that `StreamExt`'s methods need
//! no path.
//!
//! `LazyParMap` and `TryLazyParMap` are both an `Iterator` and a `Stream`: with
//! `futures::StreamExt` in scope, `s.next()` is ambiguous (E0034), and so are `collect`,
//! `map`, `filter`, `take`, ... The wrapper implements `Stream` alone, by forwarding to the
//! adapter's own `poll_next`; it adds no cost and no state.

use std::fmt;
use std::pin::Pin;
use std::task::{Context, Poll};

/// A [`LazyParMap`](crate::LazyParMap) or a [`TryLazyParMap`](crate::TryLazyParMap) seen
/// as a `futures_core::Stream` and nothing else, from their `into_stream()`.
///
/// It is not an `Iterator`, so `s.next().await`, `s.collect().await` and the other
/// `StreamExt` methods resolve with no ambiguity. Polling it is polling the adapter: the
/// task is woken when the next result is ready, results come in the adapter's order, a
/// panic of `f` or of the source is re-raised in its place, and the fallible form ends
/// after its first `Err`. It is `Unpin` and can be moved between polls and across tasks.
///
/// # Examples
/// ```
/// use futures::StreamExt;
/// use lazy_par_map::prelude::*;
///
/// let mut s = (1..=3u32).lazy_par_map(|x| x * 10).into_stream();
/// futures::executor::block_on(async {
///     assert_eq!(s.next().await, Some(10));
///     let rest: Vec<u32> = s.collect().await;
///     assert_eq!(rest, [20, 30]);
/// });
/// ```
#[cfg_attr(docsrs, doc(cfg(feature = "stream")))]
#[must_use = "streams do nothing unless polled"]
pub struct LazyParMapStream<A> {
    /// The adapter whose `Stream` impl this forwards to.
    inner: A,
}

impl<A> LazyParMapStream<A> {
    pub(crate) fn new(inner: A) -> Self {
        LazyParMapStream { inner }
    }

    /// The adapter, for its [`stats`](crate::LazyParMap::stats).
    ///
    /// # Examples
    /// ```
    /// use futures::StreamExt;
    /// use lazy_par_map::prelude::*;
    ///
    /// let mut s = (0..10u32).lazy_par_map(|x| x).buffer(4).into_stream();
    /// futures::executor::block_on(s.next());
    /// assert_eq!(s.get_ref().stats().yielded, 1);
    /// ```
    pub fn get_ref(&self) -> &A {
        &self.inner
    }

    /// Gives the adapter back, to use it as an `Iterator` again. Nothing is lost: the next
    /// result is the one the stream would have returned.
    ///
    /// # Examples
    /// ```
    /// use futures::StreamExt;
    /// use lazy_par_map::prelude::*;
    ///
    /// let mut s = (0..4u32).lazy_par_map(|x| x + 1).into_stream();
    /// assert_eq!(futures::executor::block_on(s.next()), Some(1));
    /// // With `StreamExt` in scope the adapter's `collect` is ambiguous: name `Iterator`'s.
    /// let rest: Vec<u32> = Iterator::collect(s.into_inner()); // blocks this thread
    /// assert_eq!(rest, [2, 3, 4]);
    /// ```
    pub fn into_inner(self) -> A {
        self.inner
    }
}

impl<A> futures_core::Stream for LazyParMapStream<A>
where
    A: futures_core::Stream + Unpin,
{
    type Item = A::Item;

    /// The adapter's `poll_next`: never blocks the thread (on a rayon worker of the
    /// adapter's pool it helps for at most a millisecond, as the crate docs say), wakes the
    /// task when the next result is ready.
    ///
    /// # Panics
    /// Re-raises a panic of `f` or of the source in its place, as the adapter's `next` does;
    /// the stream then ends.
    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<A::Item>> {
        A::poll_next(Pin::new(&mut self.get_mut().inner), cx)
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        A::size_hint(&self.inner)
    }
}

impl<A: fmt::Debug> fmt::Debug for LazyParMapStream<A> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("LazyParMapStream")
            .field(&self.inner)
            .finish()
    }
}
