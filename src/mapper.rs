//! What a runner calls for each item: a plain `Fn(T) -> R`, or a function with a state of
//! its own per thread ([`WithInit`], made by
//! [`lazy_par_map_init`](crate::LazyParMapExt::lazy_par_map_init)).
//!
//! A runner opens a *session* when it starts on a pool thread ([`MapFn::open`]), passes the
//! session's scratch to every call, and gives it back when it leaves ([`MapFn::close`]). For a
//! plain function the scratch is `()` and all of this compiles away. For [`WithInit`] it is
//! the state: taken from a stash of states left by earlier sessions, or made by `init` when
//! the stash is empty, so `init` runs about once per thread that runs `f` for the adapter,
//! never once per item, and a state is never used by two calls at once.

use crate::silent::drop_each_silently;
use std::fmt;
use std::sync::Mutex;

mod sealed {
    /// Only this crate's functions are [`MapFn`](super::MapFn)s.
    pub trait Sealed<T> {}
}

/// The function an adapter maps with: any `Fn(T) -> R + Sync`, or the state-carrying
/// function of [`lazy_par_map_init`](crate::LazyParMapExt::lazy_par_map_init)
/// ([`WithInit`]). Sealed: it appears in the adapters' bounds, and closures implement it
/// without a word from you.
///
/// # Examples
/// ```
/// use lazy_par_map::prelude::*;
/// fn total<F: lazy_par_map::MapFn<u32, Output = u32> + Send + Sync + 'static>(
///     it: lazy_par_map::LazyParMap<std::ops::Range<u32>, F, u32>,
/// ) -> u32 {
///     it.sum()
/// }
/// assert_eq!(total((0..4).lazy_par_map(|x| x * 2)), 12);
/// ```
pub trait MapFn<T>: sealed::Sealed<T> {
    /// What `f` returns.
    type Output;
    /// What a runner keeps from one item to the next on its thread.
    #[doc(hidden)]
    type Scratch;
    /// Opens a runner's session.
    #[doc(hidden)]
    fn open(&self) -> Self::Scratch;
    /// Maps one item.
    #[doc(hidden)]
    fn call(&self, scratch: &mut Self::Scratch, item: T) -> Self::Output;
    /// Closes a runner's session.
    #[doc(hidden)]
    fn close(&self, scratch: Self::Scratch);
}

impl<T, R, F> sealed::Sealed<T> for F where F: Fn(T) -> R {}

impl<T, R, F> MapFn<T> for F
where
    F: Fn(T) -> R,
{
    type Output = R;
    type Scratch = ();

    #[inline]
    fn open(&self) {}

    #[inline]
    fn call(&self, _: &mut (), item: T) -> R {
        self(item)
    }

    #[inline]
    fn close(&self, _: ()) {}
}

/// The function of [`lazy_par_map_init`](crate::LazyParMapExt::lazy_par_map_init): `f`
/// with a state made by `init`, one per thread that runs `f` for the adapter.
///
/// A runner on a pool thread takes a state when it calls `f` for the first time in its
/// session (from the states earlier sessions left, or a new one from `init`) and keeps it
/// until it leaves, when the state goes back for the next session. A consumer that helps
/// on a worker of the pool takes one the same way for the item it runs. So `init` runs at
/// most once per session running at the same time: about once per pool thread, plus one
/// for each consumer that helps, and never once per item.
pub struct WithInit<INIT, F, S> {
    init: INIT,
    f: F,
    /// States left by sessions that ended, for the next ones.
    stash: Mutex<Vec<S>>,
}

impl<INIT, F, S> WithInit<INIT, F, S> {
    pub(crate) fn new(init: INIT, f: F) -> Self {
        WithInit {
            init,
            f,
            stash: Mutex::new(Vec::new()),
        }
    }

    /// States made so far and not dropped; for tests.
    #[cfg(test)]
    fn stashed(&self) -> usize {
        self.stash.lock().map_or(0, |stash| stash.len())
    }
}

impl<T, R, INIT, F, S> sealed::Sealed<T> for WithInit<INIT, F, S>
where
    INIT: Fn() -> S,
    F: Fn(&mut S, T) -> R,
{
}

impl<T, R, INIT, F, S> MapFn<T> for WithInit<INIT, F, S>
where
    INIT: Fn() -> S,
    F: Fn(&mut S, T) -> R,
{
    type Output = R;
    type Scratch = Option<S>;

    #[inline]
    fn open(&self) -> Option<S> {
        None
    }

    #[inline]
    fn call(&self, scratch: &mut Option<S>, item: T) -> R {
        let state = match scratch {
            Some(state) => state,
            None => {
                // A poisoned stash only means a panic elsewhere: its states are still fine.
                let reused = self.stash.lock().unwrap_or_else(|e| e.into_inner()).pop();
                scratch.insert(reused.unwrap_or_else(&self.init))
            }
        };
        (self.f)(state, item)
    }

    fn close(&self, scratch: Option<S>) {
        if let Some(state) = scratch {
            self.stash
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .push(state);
        }
    }
}

impl<INIT, F, S> Drop for WithInit<INIT, F, S> {
    /// The states are dropped one by one, each with its panic caught (see `silent.rs`).
    fn drop(&mut self) {
        let stash = std::mem::take(self.stash.get_mut().unwrap_or_else(|e| e.into_inner()));
        drop_each_silently(stash);
    }
}

impl<INIT, F, S> fmt::Debug for WithInit<INIT, F, S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let stashed = self.stash.lock().map_or(0, |stash| stash.len());
        f.debug_struct("WithInit")
            .field("stashed_states", &stashed)
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_session_reuses_the_state_a_closed_session_left() {
        let made = std::sync::atomic::AtomicUsize::new(0);
        let g = WithInit::new(
            || {
                made.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                Vec::<u32>::new()
            },
            |seen: &mut Vec<u32>, x: u32| {
                seen.push(x);
                seen.len()
            },
        );
        let mut a = g.open();
        assert_eq!(g.call(&mut a, 1), 1);
        assert_eq!(g.call(&mut a, 2), 2);
        let mut b = g.open(); // a second session at the same time gets its own state
        assert_eq!(g.call(&mut b, 3), 1);
        g.close(a);
        g.close(b);
        assert_eq!(g.stashed(), 2);
        let mut c = g.open();
        assert_eq!(g.call(&mut c, 4), 2, "the last state closed is reused");
        g.close(c);
        assert_eq!(made.load(std::sync::atomic::Ordering::SeqCst), 2);
    }
}
