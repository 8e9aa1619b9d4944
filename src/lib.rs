//! An ordered, lazy, bounded parallel `map` for any [`Iterator`], on rayon.
//!
//! ```
//! use lazy_par_map::prelude::*;
//!
//! let lines = (0..).map(|i| format!("line {i}"));           // any sequential source, even infinite
//! let lengths: Vec<usize> = lines.lazy_par_map(|l| l.len()) // `f` runs on rayon's pool
//!     .buffer(64)                                            // at most 64 items in flight
//!     .take(3)                                               // results come in input order
//!     .collect();
//! assert_eq!(lengths, [6, 6, 6]);
//! ```
//!
//! # The contract
//! For `source.lazy_par_map(f).buffer(n)`:
//!
//! - **Lazy start.** Building the adapter does nothing. The first `next()` (or `start()`)
//!   starts its *feeder*, which runs on a thread shared by every adapter of the process (a
//!   *feeding thread*) and is the only code that calls the source's `next()`.
//! - **Order.** Results come in input order, whatever the timing of `f` (unless
//!   [`unordered`](LazyParMap::unordered)).
//! - **Bound.** Let `taken` be the items pulled from the source (a pull under way counts)
//!   and `returned` the items `next()` has returned. At every moment
//!   `taken - returned <= n`. The feeder refills every free slot: once the consumer pauses
//!   after `c` items, `taken = c + n` (unless the source ends first), every time, within
//!   about a millisecond (plus the pulls themselves). In a pipeline of `k` stages
//!   each with `buffer(n)`, the stage `j` from the end has called its `f` `c + j*n` times.
//! - **No blocking on the source.** A slow source is read on a feeding thread only; the
//!   first result is ready when `f` of the first item is done. An item taken from the
//!   source goes to the pool at once, never waiting for a later pull (a quiet channel or a
//!   blocking socket strands nothing already read).
//! - **Panics.** A panic in `f` for item `k` (or in the source's `next()` where item `k`
//!   would be) is re-raised, with its payload, by the `next()` that would return item `k`,
//!   after every earlier item. The adapter is then finished (`None` forever). Never
//!   swallowed, never an abort, never a hang. Values the crate drops for you (items skipped
//!   after a stop, results never returned, `f` and the source at the end) are dropped with
//!   their `Drop`'s panic caught and discarded: it never aborts, and never replaces the
//!   panic or the `Err` the caller gets.
//! - **Drop.** Dropping the adapter returns at once, without waiting for `f` in flight.
//!   No further item is taken from the source (beyond a pull already under way), work not
//!   started is skipped, results that finish later are dropped, and the feeder ends (the
//!   source is dropped on a feeding thread).
//! - **Which pool.** `f` runs on the pool given to [`pool`](LazyParMap::pool), else on
//!   rayon's global pool, and on that pool only, in every form, also inside another pool's
//!   `ThreadPool::install` (rayon has no handle on the installed pool that a feeding
//!   thread could spawn on).
//! - **rayon threads.** The adapter may be consumed on a worker of the very pool it maps on,
//!   even a pool of one thread, or inside the `f` of another adapter: a consumer on a worker
//!   of the adapter's pool (`next()`, or a `Stream` polled there) runs its own queued items,
//!   then other pool work (`rayon::yield_now`), instead of blocking; on a worker of another
//!   pool it runs only that pool's work. A `Stream` polled on a worker waits so for at most
//!   a millisecond per poll, then wakes its task to be polled again. As with any rayon call that waits, that
//!   work may include another call of your `f` on the same thread: do not hold a lock
//!   across `next()` that `f` also takes. `try_next` and `next_timeout` never run a job
//!   (a job could overrun their deadline), so on a pool whose every thread polls that way,
//!   nothing progresses: use `next()` there.
//! - **No lock held across user code**: `f`, the source, a `Drop` of items or results,
//!   rayon's `spawn`, and a `Waker`'s clone, wake and drop all run with no lock of ours held.
//!
//! # Forms
//! - [`LazyParMapExt::lazy_par_map`]: the ordered map; [`LazyParMap::unordered`] yields in
//!   completion order under the same bound.
//! - [`LazyParMapExt::try_lazy_par_map`]: for a fallible `f`, ends at the first `Err`.
//! - [`scope`]: adapters whose source, items and `f` borrow from the caller's stack.
//! - [`LazyParMap::try_next`] and [`LazyParMap::next_timeout`] (and the same on
//!   [`TryLazyParMap`]): polling without blocking.
//! - With the `stream` feature, `LazyParMap` and `TryLazyParMap` are `futures_core::Stream`s,
//!   and their `into_stream()` gives a `LazyParMapStream`, a `Stream` that is not an
//!   `Iterator`, so that `s.next().await` needs no path with `StreamExt` in scope.
//! - [`LazyParMap::stats`]: the counts that tell how to choose `buffer`.
//!
//! # What it costs
//! No thread of its own: feeders run in turns on feeding threads shared by every adapter of
//! the process, which are spawned when every one is busy and exit after half a second with
//! nothing to do; a paused, full or finished adapter holds none (the scoped form, whose
//! source may borrow, is the exception: one scoped thread per started adapter). Then a
//! few plain stores and a fence per item pulled (the hand-off to the pool), a store and a
//! fence per item returned (which resume the feeder exactly when it waits), and per *batch*
//! (a run of consecutive items a runner takes at once) a compare-and-swap, a lock, an
//! allocation and, when someone waits, a wake-up. Batches are one item long while `f` is
//! slow or its cost unknown, and grow to about 200 µs of work when it is fast.
//!
//! After an adapter whose `f` was slow, an ordered adapter on a pool with one thread per
//! core (rayon's default) holds one runner back until its own `f` is timed, or for 2 ms at
//! most, so that a core is free for the consumer when the first result is ready.
#![deny(missing_docs, missing_debug_implementations, unreachable_pub)]
#![cfg_attr(docsrs, feature(doc_cfg))]
// `unsafe` is allowed in one module only, `queue/ring.rs`, each block with its `// SAFETY:`.
#![deny(unsafe_code, clippy::undocumented_unsafe_blocks)]
// Under loom only the protocol is built into models: the scoped form and timers go unused.
#![cfg_attr(lazy_par_map_loom, allow(dead_code))]

mod adapter;
mod consumer;
mod error;
mod feeder;
mod feeding;
mod map;
mod mapper;
mod pool;
mod queue;
mod readahead;
mod ring;
// The scoped form shares std `Arc`s with `dyn` and `Weak`, which loom's `Arc` lacks.
#[cfg(not(lazy_par_map_loom))]
mod scope;
mod silent;
mod stats;
#[cfg(feature = "stream")]
mod stream;
mod sync;
mod try_map;

#[cfg(lazy_par_map_loom)]
#[doc(hidden)]
pub mod loom_model;

pub use adapter::DEFAULT_BUFFER;
pub use error::{NextTimeoutError, TryNextError};
pub use map::LazyParMap;
pub use mapper::{MapFn, WithInit};
pub use readahead::Readahead;
#[cfg(not(lazy_par_map_loom))]
pub use scope::{scope, Scope, ScopedLazyParMap};
pub use stats::Stats;
#[cfg(feature = "stream")]
pub use stream::LazyParMapStream;
pub use try_map::TryLazyParMap;

/// The README's examples, run as doctests.
#[doc = include_str!("../README.md")]
#[cfg(doctest)]
pub struct ReadmeDoctests;

/// `use lazy_par_map::prelude::*;` brings the extension trait into scope.
pub mod prelude {
    pub use crate::LazyParMapExt;
}

/// Adds [`lazy_par_map`](LazyParMapExt::lazy_par_map) and its kin to every `Iterator`.
///
/// Each method asks, at the call, for what it needs: a source and items that are `Send +
/// 'static` (items through [`SendItem`], which is `Send` with an error message of its own),
/// since the source is read on a thread of its own and its items go to other threads. A
/// source that is not gets an error that names the missing bound where the method is
/// called. To borrow from the stack, use [`scope`](fn@scope).
pub trait LazyParMapExt: Iterator + Sized {
    /// Maps `f` over the items on rayon's pool, lazily, keeping input order and at most
    /// `buffer` items in flight (see the [crate docs](crate) for the full contract).
    ///
    /// Nothing happens until the first `next()`; then a feeding thread reads this iterator
    /// and the pool runs `f`. Configure with [`buffer`](LazyParMap::buffer),
    /// [`unbounded`](LazyParMap::unbounded), [`pool`](LazyParMap::pool),
    /// [`unordered`](LazyParMap::unordered) and [`start`](LazyParMap::start).
    ///
    /// # Panics
    /// The returned iterator re-raises a panic of `f` or of this iterator in its place.
    ///
    /// # Borrowed data
    /// This iterator, its items, `f` and its results must be `'static`: the feeding threads
    /// and the pool's jobs may outlive the caller's stack frame, since dropping the adapter
    /// does not wait for them. Over data borrowed from the stack, `v.iter().lazy_par_map(f)`
    /// fails with "`v` does not live long enough ... argument requires that `v` is borrowed
    /// for `'static`" (or "borrowed data escapes outside of function", or "the parameter type
    /// `I` may not live long enough"). Those are lifetime errors, to which a library cannot
    /// add a note; map in a [`scope`](fn@crate::scope) instead, which joins its threads
    /// before it returns:
    /// ```
    /// let v = vec![1, 2, 3];
    /// let doubled: Vec<i32> = lazy_par_map::scope(|s| s.lazy_par_map(v.iter(), |x| x * 2).collect());
    /// assert_eq!(doubled, [2, 4, 6]);
    /// ```
    ///
    /// # Examples
    /// ```
    /// use lazy_par_map::prelude::*;
    /// let words = ["apple", "kiwi", "banana"];
    /// let lens: Vec<usize> = words.into_iter().lazy_par_map(str::len).collect();
    /// assert_eq!(lens, [5, 4, 6]);
    /// ```
    fn lazy_par_map<F, R>(self, f: F) -> LazyParMap<Self, F, R>
    where
        Self::Item: SendItem,
        Self: Send,
        Self: 'static, // to borrow from the stack, use `lazy_par_map::scope`
        F: Fn(Self::Item) -> R + Send + Sync + 'static,
        R: Send + 'static,
    {
        LazyParMap::new(self, f)
    }

    /// Like [`lazy_par_map`](LazyParMapExt::lazy_par_map), with a state for `f` that each
    /// thread running `f` for this adapter makes once with `init` and reuses for every item
    /// it maps (rayon's `map_init`): a scratch buffer, a compiled pattern, a connection.
    ///
    /// A state lives with a runner on a pool thread (or with a consumer that helps on a
    /// worker) and is kept for the adapter's life, so `init` runs about once per pool
    /// thread, never once per item; a state is never used by two calls at once (a thread
    /// that, inside `f`, helps with this same adapter gets a state of its own). States are
    /// handed from one runner to the next on the pool, hence `S: Send`; they are dropped
    /// with the adapter's `f`. Everything else is [`lazy_par_map`]'s: the same adapter
    /// type and configuration, the whole contract. A panic in `init` is a panic of `f`
    /// for the item that needed the state.
    ///
    /// # Borrowed data
    /// As for [`lazy_par_map`]: everything must be `'static`; to borrow from the stack, use
    /// [`Scope::lazy_par_map_init`] in a [`scope`](fn@crate::scope).
    ///
    /// [`lazy_par_map`]: LazyParMapExt::lazy_par_map
    ///
    /// # Examples
    /// ```
    /// use lazy_par_map::prelude::*;
    /// use std::fmt::Write;
    /// // One `String` buffer per thread, reused across items instead of one per item.
    /// let lines: Vec<String> = (1..=3u32)
    ///     .lazy_par_map_init(String::new, |buf, n| {
    ///         buf.clear();
    ///         write!(buf, "{n} squared is {}", n * n).unwrap();
    ///         buf.to_uppercase()
    ///     })
    ///     .buffer(8)
    ///     .collect();
    /// assert_eq!(lines, ["1 SQUARED IS 1", "2 SQUARED IS 4", "3 SQUARED IS 9"]);
    /// ```
    fn lazy_par_map_init<INIT, S, F, R>(
        self,
        init: INIT,
        f: F,
    ) -> LazyParMap<Self, WithInit<INIT, F, S>, R>
    where
        Self::Item: SendItem,
        Self: Send,
        Self: 'static, // to borrow from the stack, use `lazy_par_map::scope`
        INIT: Fn() -> S + Send + Sync + 'static,
        S: Send + 'static,
        F: Fn(&mut S, Self::Item) -> R + Send + Sync + 'static,
        R: Send + 'static,
    {
        LazyParMap::new(self, WithInit::new(init, f))
    }

    /// Reads this iterator ahead on a background thread, at most `n` items ahead of the
    /// caller, and yields them in order: pariter's `readahead`, with no pool involved. For a
    /// slow source (a file, a socket, a decoder) read by a slow consumer, so that the two
    /// overlap.
    ///
    /// The contract is the map's, with the identity for `f`: nothing happens until the
    /// first `next()` (or [`start`](Readahead::start)); then a feeding thread is the only
    /// code that calls this iterator's `next()`, and at every moment `taken - returned <=
    /// n` (a pull under way counts); an item read is handed over at once, never waiting for
    /// a later pull; a panic of the source is re-raised with its payload where its item
    /// would be; dropping the adapter takes no further item. Items cross one lock each
    /// and no thread pool, so this is cheaper than `lazy_par_map(|x| x)`.
    ///
    /// # Panics
    /// If `n` is 0. The returned iterator re-raises a panic of this iterator in its place.
    ///
    /// # Borrowed data
    /// This iterator and its items must be `'static`, as for
    /// [`lazy_par_map`](LazyParMapExt::lazy_par_map); there is no scoped form yet: in a
    /// [`scope`](fn@crate::scope), `s.lazy_par_map(source, |x| x)` reads ahead the same way,
    /// through the pool.
    ///
    /// # Examples
    /// ```
    /// use lazy_par_map::prelude::*;
    /// // A slow source and a slow consumer overlap: about 3 ms here instead of 6.
    /// let slow = (0..3).inspect(|_| std::thread::sleep(std::time::Duration::from_millis(1)));
    /// let mut total = 0;
    /// for x in slow.readahead(2) {
    ///     std::thread::sleep(std::time::Duration::from_millis(1)); // work on x
    ///     total += x;
    /// }
    /// assert_eq!(total, 3);
    /// ```
    /// ```should_panic
    /// use lazy_par_map::prelude::*;
    /// let _ = (0..10).readahead(0); // panics: the buffer needs at least one item
    /// ```
    #[track_caller]
    fn readahead(self, n: usize) -> Readahead<Self>
    where
        Self::Item: SendItem,
        Self: Send,
        Self: 'static, // to borrow from the stack, use `lazy_par_map::scope`
    {
        Readahead::new(self, n)
    }

    /// Like [`lazy_par_map`](LazyParMapExt::lazy_par_map) for a fallible `f`: yields `Ok`
    /// values in order until the first `Err`, yields that `Err`, then ends. From the first
    /// `Err` on, no new item is taken from the source and work not yet started is skipped.
    ///
    /// # Borrowed data
    /// Everything must be `'static`, as for [`lazy_par_map`](LazyParMapExt::lazy_par_map).
    /// In a [`scope`](fn@crate::scope), map to `Result`s with [`Scope::lazy_par_map`] and
    /// collect into a `Result`, which stops at the first `Err` (the scope cancels the rest).
    ///
    /// # Examples
    /// ```
    /// use lazy_par_map::prelude::*;
    /// let parsed: Result<Vec<u32>, _> = ["1", "2", "x", "4"]
    ///     .into_iter()
    ///     .try_lazy_par_map(str::parse::<u32>)
    ///     .collect();
    /// assert!(parsed.is_err());
    /// ```
    fn try_lazy_par_map<F, T, E>(self, f: F) -> TryLazyParMap<Self, F, T, E>
    where
        Self::Item: SendItem,
        Self: Send,
        Self: 'static, // to borrow from the stack, use `lazy_par_map::scope`
        F: Fn(Self::Item) -> Result<T, E> + Send + Sync + 'static,
        T: Send + 'static,
        E: Send + 'static,
    {
        TryLazyParMap::new(self, f)
    }
}

impl<I: Iterator> LazyParMapExt for I {}

/// `Send`, for the items of [`LazyParMapExt`]'s adapters: the source is read on a thread of
/// its own and each item is handed to another thread.
///
/// Implemented for every `Send` type and no other; you never implement it. The methods ask
/// for it instead of `Send` so that a source of `Rc`s gets an error that says why items
/// must be `Send` and what to use instead: "`Rc<{integer}>` cannot be sent between threads
/// safely: the source's items go to other threads", with a note on `Arc` (the whole message
/// is pinned in `tests/ui/not_send.stderr`).
///
/// # Examples
/// ```
/// fn assert_item<T: lazy_par_map::SendItem>() {}
/// assert_item::<std::sync::Arc<String>>();
/// ```
/// ```compile_fail,E0277
/// fn assert_item<T: lazy_par_map::SendItem>() {}
/// assert_item::<std::rc::Rc<String>>(); // `Rc<String>` cannot be sent between threads safely
/// ```
#[diagnostic::on_unimplemented(
    message = "`{Self}` cannot be sent between threads safely: the source's items go to other threads",
    label = "the source's items are `{Self}`, which is not `Send`",
    note = "the source is read on a thread of its own and each item is handed to another thread",
    note = "share data with `std::sync::Arc` instead of `Rc`, and state with a `Mutex` or an atomic instead of a `RefCell` or a `Cell`"
)]
pub trait SendItem: Send {}

impl<T: Send> SendItem for T {}
