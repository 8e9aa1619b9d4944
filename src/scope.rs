//! Scoped adapters: the source, the items and `f` may borrow from the caller's stack.
//!
//! Soundness comes from two standard scopes, not from any `Drop`: the feeder threads are
//! `std::thread::scope` threads, and each feeder spawns its runners in a
//! `rayon::in_place_scope` of its own, which returns only once they have finished; so
//! both are joined before [`scope`] returns, whatever the caller did with its adapters
//! (dropped, leaked with `mem::forget`, or still half-consumed). The feeder's thread belongs
//! to no pool, so its scope's jobs run on rayon's global pool, as the other forms' do. For liveness, [`scope`] cancels
//! every adapter made in it once its closure returns or unwinds, so that a forgotten
//! adapter's feeder stops waiting for a consumer that will never come.

use crate::adapter::{Adapter, Config};
use crate::consumer::Consumer;
use crate::error::{NextTimeoutError, TryNextError};
use crate::feeder::Feeder;
use crate::mapper::{MapFn, WithInit};
use crate::pool::Pool;
use crate::ring::Shared;
use crate::silent::drop_silently;
use crate::stats::Stats;
use std::fmt;
use std::iter::FusedIterator;
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

/// Something [`scope`] can stop at its end.
trait Cancel: Send + Sync {
    fn cancel(&self);
}

impl<T: Send, R: Send, F: Send + Sync> Cancel for Shared<T, R, F> {
    fn cancel(&self) {
        Shared::cancel(self);
    }
}

/// Spawns a feeder thread in a `std::thread::Scope`, with the scope's own lifetimes
/// erased so that [`Scope`] needs only two.
trait SpawnThread<'scope> {
    fn spawn_thread(&'scope self, body: Box<dyn FnOnce() + Send + 'scope>);
}

impl<'scope, 'local> SpawnThread<'scope> for std::thread::Scope<'scope, 'local> {
    fn spawn_thread(&'scope self, body: Box<dyn FnOnce() + Send + 'scope>) {
        std::thread::Builder::new()
            .name("lazy-par-map-feeder".into())
            .spawn_scoped(self, body)
            .expect("lazy_par_map: could not spawn the feeder thread");
    }
}

/// The adapters made in one scope, cancelled when it ends.
type Registry<'env> = Mutex<Vec<Weak<dyn Cancel + 'env>>>;

/// Cancels every adapter of the scope when dropped (at the end of the closure, or while
/// it unwinds).
struct CancelAll<'a, 'env>(&'a Registry<'env>);

impl Drop for CancelAll<'_, '_> {
    fn drop(&mut self) {
        let adapters = std::mem::take(&mut *self.0.lock().unwrap_or_else(|e| e.into_inner()));
        for adapter in adapters.iter().filter_map(Weak::upgrade) {
            adapter.cancel();
        }
    }
}

/// Runs `f` with a [`Scope`] in which adapters may borrow non-`'static` data, and returns
/// its result once every feeder thread and job of those adapters has finished.
///
/// `f` runs on the calling thread. The adapters' jobs run on rayon's global pool, like
/// those of [`LazyParMapExt::lazy_par_map`](crate::LazyParMapExt::lazy_par_map) without
/// `pool`, even when `scope` is called inside another pool's `install`. When `f` returns,
/// adapters still alive are cancelled as if dropped. A feeder blocked inside the source's `next()`
/// delays the return until that call returns.
///
/// # Examples
/// ```
/// use std::sync::Mutex;
/// let words = vec![String::from("apple"), String::from("kiwi"), String::from("fig")];
/// let seen = Mutex::new(0);                      // a `&mut` counter, through a Mutex
/// let lens: Vec<usize> = lazy_par_map::scope(|s| {
///     s.lazy_par_map(words.iter(), |w| {        // borrows `words` and `seen`
///         *seen.lock().unwrap() += 1;
///         w.len()
///     })
///     .buffer(2)
///     .collect()
/// });
/// assert_eq!(lens, [5, 4, 3]);
/// assert_eq!(seen.into_inner().unwrap(), 3);
/// ```
///
/// An adapter cannot leave its scope, so no borrow outlives it:
/// ```compile_fail
/// let v = vec![1, 2, 3];
/// let escaped = lazy_par_map::scope(|s| s.lazy_par_map(v.iter(), |x| *x));
/// ```
pub fn scope<'env, T>(f: impl for<'scope> FnOnce(&Scope<'scope, 'env>) -> T) -> T {
    let registry: Registry<'env> = Mutex::new(Vec::new());
    std::thread::scope(|spawner| {
        let _cancel_all = CancelAll(&registry);
        f(&Scope {
            spawner,
            registry: &registry,
        })
    })
}

/// A scope for adapters that borrow; see [`scope`].
#[derive(Clone, Copy)]
pub struct Scope<'scope, 'env: 'scope> {
    /// Where the feeder threads run.
    spawner: &'scope (dyn SpawnThread<'scope> + Sync),
    /// The adapters made here.
    registry: &'scope Registry<'env>,
}

impl fmt::Debug for Scope<'_, '_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let adapters = self.registry.lock().map_or(0, |registry| registry.len());
        f.debug_struct("Scope")
            .field("adapters", &adapters)
            .finish_non_exhaustive()
    }
}

impl<'scope, 'env> Scope<'scope, 'env> {
    /// Like [`LazyParMapExt::lazy_par_map`](crate::LazyParMapExt::lazy_par_map), for a
    /// source, items, `f` and results that may borrow from outside the scope.
    ///
    /// # Examples
    /// ```
    /// let data = vec![1, 2, 3];
    /// let offset = 10;
    /// let out: Vec<i32> = lazy_par_map::scope(|s| {
    ///     s.lazy_par_map(data.iter(), |x| x + offset).collect()
    /// });
    /// assert_eq!(out, [11, 12, 13]);
    /// ```
    pub fn lazy_par_map<I, F, R>(&self, source: I, f: F) -> ScopedLazyParMap<'scope, 'env, I, F, R>
    where
        I: Iterator + Send + 'env,
        I::Item: Send + 'env,
        F: Fn(I::Item) -> R + Send + Sync + 'env,
        R: Send + 'env,
    {
        ScopedLazyParMap {
            adapter: Adapter::new(source, f, None),
            scope: *self,
        }
    }

    /// Like [`LazyParMapExt::lazy_par_map_init`](crate::LazyParMapExt::lazy_par_map_init)
    /// (a state per thread, made by `init`), for a source, items, `init`, `f`, states and
    /// results that may borrow from outside the scope.
    ///
    /// # Examples
    /// ```
    /// let words = vec!["a", "bb", "ccc"];
    /// let suffix = String::from("!");
    /// let out: Vec<String> = lazy_par_map::scope(|s| {
    ///     s.lazy_par_map_init(words.iter(), String::new, |buf, w| {
    ///         buf.clear(); // one buffer per thread, reused across items
    ///         buf.push_str(w);
    ///         buf.push_str(&suffix);
    ///         buf.clone()
    ///     })
    ///     .collect()
    /// });
    /// assert_eq!(out, ["a!", "bb!", "ccc!"]);
    /// ```
    pub fn lazy_par_map_init<I, INIT, S, F, R>(
        &self,
        source: I,
        init: INIT,
        f: F,
    ) -> ScopedLazyParMap<'scope, 'env, I, WithInit<INIT, F, S>, R>
    where
        I: Iterator + Send + 'env,
        I::Item: Send + 'env,
        INIT: Fn() -> S + Send + Sync + 'env,
        S: Send + 'env,
        F: Fn(&mut S, I::Item) -> R + Send + Sync + 'env,
        R: Send + 'env,
    {
        ScopedLazyParMap {
            adapter: Adapter::new(source, WithInit::new(init, f), None),
            scope: *self,
        }
    }

    /// Builds the shared state, registers it with the scope and spawns the feeder.
    fn launch<I, F, R>(
        self,
    ) -> impl FnOnce(I, F, Config<R>) -> Consumer<I::Item, R, F> + use<'scope, 'env, I, F, R>
    where
        I: Iterator + Send + 'env,
        I::Item: Send + 'env,
        F: MapFn<I::Item, Output = R> + Send + Sync + 'env,
        R: Send + 'env,
    {
        move |source, f, config| {
            let (feeder, shared) = Feeder::adaptive(
                source,
                config.cap(),
                config.shared(f),
                // On the caller's thread if it is outside every pool, else on the feeder's:
                // the global pool's size either way.
                Pool::Global.num_threads_here(),
                // Runners are started in the feeder's `in_place_scope` (below).
                |_| {},
            );
            {
                let mut registry = self.registry.lock().unwrap_or_else(|e| e.into_inner());
                if registry.len() >= 64 && registry.len().is_power_of_two() {
                    registry.retain(|adapter| adapter.strong_count() > 0);
                }
                let erased: Arc<dyn Cancel + 'env> = shared.clone();
                registry.push(Arc::downgrade(&erased));
            }
            self.spawner.spawn_thread(Box::new(move || {
                // On this thread, outside every pool: the global pool's scope.
                rayon::in_place_scope(|jobs| {
                    feeder
                        .with_runners(|shared: Arc<Shared<I::Item, R, F>>| {
                            jobs.spawn(move |_| {
                                Pool::Global.mark_worker();
                                Shared::run_jobs(&shared);
                                drop_silently(shared);
                            });
                        })
                        .run_on_own_thread();
                });
            }));
            Consumer::new(shared, Pool::Global)
        }
    }
}

/// A [`LazyParMap`](crate::LazyParMap) whose source, items and `f` may borrow; made by
/// [`Scope::lazy_par_map`]. Same contract, same configuration, except that it runs on
/// the scope's pool (there is no `pool` method).
#[must_use = "iterator adaptors are lazy and do nothing unless consumed"]
pub struct ScopedLazyParMap<'scope, 'env, I, F, R>
where
    I: Iterator,
{
    adapter: Adapter<I, F, R>,
    scope: Scope<'scope, 'env>,
}

impl<'scope, 'env, I, F, R> ScopedLazyParMap<'scope, 'env, I, F, R>
where
    I: Iterator + Send + 'env,
    I::Item: Send + 'env,
    F: MapFn<I::Item, Output = R> + Send + Sync + 'env,
    R: Send + 'env,
{
    /// Sets the number of slots; see [`LazyParMap::buffer`](crate::LazyParMap::buffer).
    ///
    /// # Panics
    /// If `n` is 0, or if the adapter has already started.
    ///
    /// # Examples
    /// ```
    /// let v = vec![1, 2, 3];
    /// let n = lazy_par_map::scope(|s| s.lazy_par_map(v.iter(), |x| *x).buffer(1).count());
    /// assert_eq!(n, 3);
    /// ```
    #[track_caller]
    pub fn buffer(mut self, n: usize) -> Self {
        self.adapter.set_buffer(n);
        self
    }

    /// Removes the bound; see [`LazyParMap::unbounded`](crate::LazyParMap::unbounded).
    ///
    /// # Panics
    /// If the adapter has already started.
    ///
    /// # Examples
    /// ```
    /// let v = vec![1, 2, 3];
    /// let n = lazy_par_map::scope(|s| s.lazy_par_map(v.iter(), |x| *x).unbounded().count());
    /// assert_eq!(n, 3);
    /// ```
    #[track_caller]
    pub fn unbounded(mut self) -> Self {
        self.adapter.set_unbounded();
        self
    }

    /// Yields results in completion order; see
    /// [`LazyParMap::unordered`](crate::LazyParMap::unordered).
    ///
    /// # Panics
    /// If the adapter has already started.
    ///
    /// # Examples
    /// ```
    /// let v = vec![3, 1, 2];
    /// let sum: i32 = lazy_par_map::scope(|s| s.lazy_par_map(v.iter(), |x| *x).unordered().sum());
    /// assert_eq!(sum, 6);
    /// ```
    #[track_caller]
    pub fn unordered(mut self) -> Self {
        self.adapter.set_unordered();
        self
    }

    /// Begins the work now; see [`LazyParMap::start`](crate::LazyParMap::start).
    ///
    /// # Examples
    /// ```
    /// let v = vec![1, 2];
    /// lazy_par_map::scope(|s| {
    ///     let mut it = s.lazy_par_map(v.iter(), |x| x * 2).start();
    ///     assert_eq!(it.next(), Some(2));
    /// });
    /// ```
    pub fn start(mut self) -> Self {
        self.adapter.running(self.scope.launch());
        self
    }

    /// The next result if ready; see [`LazyParMap::try_next`](crate::LazyParMap::try_next).
    ///
    /// # Errors
    /// [`TryNextError::NotReady`] or [`TryNextError::Finished`].
    ///
    /// # Examples
    /// ```
    /// use lazy_par_map::TryNextError;
    /// let v = vec![1];
    /// lazy_par_map::scope(|s| {
    ///     let mut it = s.lazy_par_map(v.iter(), |x| *x);
    ///     let mut got = Vec::new();
    ///     loop {
    ///         match it.try_next() {
    ///             Ok(x) => got.push(x),
    ///             Err(TryNextError::NotReady) => std::thread::yield_now(), // do other work
    ///             Err(TryNextError::Finished) => break,
    ///         }
    ///     }
    ///     assert_eq!(got, [1]);
    /// });
    /// ```
    pub fn try_next(&mut self) -> Result<R, TryNextError> {
        self.adapter.try_next(self.scope.launch())
    }

    /// The next result, waiting at most `timeout`; see
    /// [`LazyParMap::next_timeout`](crate::LazyParMap::next_timeout).
    ///
    /// # Errors
    /// [`NextTimeoutError::Timeout`] or [`NextTimeoutError::Finished`].
    ///
    /// # Examples
    /// ```
    /// use std::time::Duration;
    /// let v = vec![7];
    /// lazy_par_map::scope(|s| {
    ///     let mut it = s.lazy_par_map(v.iter(), |x| *x);
    ///     assert_eq!(it.next_timeout(Duration::from_secs(60)), Ok(7));
    /// });
    /// ```
    pub fn next_timeout(&mut self, timeout: Duration) -> Result<R, NextTimeoutError> {
        self.adapter.next_timeout(timeout, self.scope.launch())
    }

    /// Counts for tuning; see [`LazyParMap::stats`](crate::LazyParMap::stats).
    ///
    /// # Examples
    /// ```
    /// let v = vec![1, 2];
    /// lazy_par_map::scope(|s| {
    ///     let mut it = s.lazy_par_map(v.iter(), |x| *x);
    ///     it.next();
    ///     assert_eq!(it.stats().yielded, 1);
    /// });
    /// ```
    pub fn stats(&self) -> Stats {
        self.adapter.stats()
    }
}

impl<'scope, 'env, I, F, R> Iterator for ScopedLazyParMap<'scope, 'env, I, F, R>
where
    I: Iterator + Send + 'env,
    I::Item: Send + 'env,
    F: MapFn<I::Item, Output = R> + Send + Sync + 'env,
    R: Send + 'env,
{
    type Item = R;

    /// The next result in input order; panics as
    /// [`LazyParMap`](crate::LazyParMap)'s `next` does.
    #[inline]
    fn next(&mut self) -> Option<R> {
        self.adapter.next(self.scope.launch())
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        self.adapter.size_hint()
    }
}

impl<'scope, 'env, I, F, R> ExactSizeIterator for ScopedLazyParMap<'scope, 'env, I, F, R>
where
    I: ExactSizeIterator + Send + 'env,
    I::Item: Send + 'env,
    F: MapFn<I::Item, Output = R> + Send + Sync + 'env,
    R: Send + 'env,
{
}

impl<'scope, 'env, I, F, R> FusedIterator for ScopedLazyParMap<'scope, 'env, I, F, R>
where
    I: Iterator + Send + 'env,
    I::Item: Send + 'env,
    F: MapFn<I::Item, Output = R> + Send + Sync + 'env,
    R: Send + 'env,
{
}

impl<I, F, R> fmt::Debug for ScopedLazyParMap<'_, '_, I, F, R>
where
    I: Iterator + fmt::Debug,
{
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.adapter.debug("ScopedLazyParMap", f)
    }
}
