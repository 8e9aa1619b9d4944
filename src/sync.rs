//! The synchronisation primitives the ring protocol is written against.
//!
//! Normally these are `parking_lot`'s `Mutex`/`Condvar` and std's atomics and `Arc`. Under
//! `--cfg lazy_par_map_loom` they are loom's, so that `tests/loom.rs` can explore every
//! interleaving of the protocol in `ring/` and of the item queue's ring (`queue/ring.rs`).
//! loom cannot model `parking_lot` itself; it models the protocol built on it.
//! Callers always wait in a `while` loop, so the code stays right under loom's spurious
//! wake-ups even though `parking_lot` has none.

#[cfg(not(lazy_par_map_loom))]
pub(crate) use std::sync::{
    atomic::{AtomicBool, AtomicU64, AtomicUsize},
    Arc,
};

#[cfg(lazy_par_map_loom)]
pub(crate) use loom::sync::{
    atomic::{AtomicBool, AtomicU64, AtomicUsize},
    Arc,
};

#[cfg(not(lazy_par_map_loom))]
mod imp {
    use std::time::Duration;

    /// A mutex whose guard a [`Condvar`] can wait on.
    pub(crate) struct Mutex<T>(parking_lot::Mutex<T>);
    pub(crate) type Guard<'a, T> = parking_lot::MutexGuard<'a, T>;

    impl<T> Mutex<T> {
        pub(crate) fn new(value: T) -> Self {
            Mutex(parking_lot::Mutex::new(value))
        }
        pub(crate) fn lock(&self) -> Guard<'_, T> {
            self.0.lock()
        }
    }

    /// A condition variable.
    #[derive(Default)]
    pub(crate) struct Condvar(parking_lot::Condvar);

    impl Condvar {
        pub(crate) fn wait<T>(&self, guard: &mut Guard<'_, T>) {
            self.0.wait(guard);
        }
        /// Waits at most `timeout`; returns `true` if it timed out.
        pub(crate) fn wait_for<T>(&self, guard: &mut Guard<'_, T>, timeout: Duration) -> bool {
            self.0.wait_for(guard, timeout).timed_out()
        }
        pub(crate) fn notify_one(&self) {
            self.0.notify_one();
        }
        #[cfg_attr(not(lazy_par_map_loom), allow(dead_code))]
        pub(crate) fn notify_all(&self) {
            self.0.notify_all();
        }
    }
}

#[cfg(lazy_par_map_loom)]
mod imp {
    use std::time::Duration;

    /// A mutex whose guard a [`Condvar`] can wait on (loom's, behind a parking_lot-like API).
    pub(crate) struct Mutex<T>(loom::sync::Mutex<T>);
    pub(crate) struct Guard<'a, T>(Option<loom::sync::MutexGuard<'a, T>>);

    impl<T> Mutex<T> {
        pub(crate) fn new(value: T) -> Self {
            Mutex(loom::sync::Mutex::new(value))
        }
        pub(crate) fn lock(&self) -> Guard<'_, T> {
            Guard(Some(self.0.lock().unwrap()))
        }
    }

    impl<T> std::ops::Deref for Guard<'_, T> {
        type Target = T;
        fn deref(&self) -> &T {
            self.0.as_ref().unwrap()
        }
    }
    impl<T> std::ops::DerefMut for Guard<'_, T> {
        fn deref_mut(&mut self) -> &mut T {
            self.0.as_mut().unwrap()
        }
    }

    /// A condition variable; loom has no time, so a timed wait is a plain wait.
    #[derive(Default)]
    pub(crate) struct Condvar(loom::sync::Condvar);

    impl Condvar {
        pub(crate) fn wait<T>(&self, guard: &mut Guard<'_, T>) {
            let g = guard.0.take().unwrap();
            guard.0 = Some(self.0.wait(g).unwrap());
        }
        pub(crate) fn wait_for<T>(&self, guard: &mut Guard<'_, T>, _timeout: Duration) -> bool {
            self.wait(guard);
            false
        }
        pub(crate) fn notify_one(&self) {
            self.0.notify_one();
        }
        #[cfg_attr(not(lazy_par_map_loom), allow(dead_code))]
        pub(crate) fn notify_all(&self) {
            self.0.notify_all();
        }
    }
}

pub(crate) use imp::{Condvar, Guard, Mutex};

#[cfg(lazy_par_map_loom)]
pub(crate) use loom::thread::yield_now;
/// Gives up the thread's time slice (under loom, lets the model run another thread).
#[cfg(not(lazy_par_map_loom))]
pub(crate) use std::thread::yield_now;

/// Cache-line padding, so that a counter one thread writes often does not share a line with
/// fields other threads write.
#[repr(align(128))]
pub(crate) struct Padded<T>(pub(crate) T);

#[cfg(not(lazy_par_map_loom))]
pub(crate) use std::sync::atomic::fence;

#[cfg(lazy_par_map_loom)]
pub(crate) use loom::sync::atomic::fence;
