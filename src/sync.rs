//! The synchronisation primitives the ring protocol is written against.
//!
//! Normally these are `parking_lot`'s `Mutex`/`Condvar`, std's atomics and `Arc`, and
//! `crossbeam-deque`'s `Injector`. Under `--cfg lazy_par_map_loom` they are loom's, so that
//! `tests/loom.rs` can explore every interleaving of the protocol in `ring.rs`. loom cannot
//! model `parking_lot` or `crossbeam-deque` themselves; it models the protocol built on them.
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
    }

    /// The multi-producer, multi-consumer FIFO of jobs not yet started.
    pub(crate) struct Injector<J>(crossbeam_deque::Injector<J>);

    impl<J> Injector<J> {
        pub(crate) fn new() -> Self {
            Injector(crossbeam_deque::Injector::new())
        }
        pub(crate) fn push(&self, job: J) {
            self.0.push(job);
        }
        pub(crate) fn steal(&self) -> Option<J> {
            loop {
                match self.0.steal() {
                    crossbeam_deque::Steal::Success(job) => return Some(job),
                    crossbeam_deque::Steal::Empty => return None,
                    crossbeam_deque::Steal::Retry => std::hint::spin_loop(),
                }
            }
        }
        pub(crate) fn is_empty(&self) -> bool {
            self.0.is_empty()
        }
    }
}

#[cfg(lazy_par_map_loom)]
mod imp {
    use std::collections::VecDeque;
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
    }

    /// The job FIFO, as a loom mutex around a `VecDeque`.
    pub(crate) struct Injector<J>(loom::sync::Mutex<VecDeque<J>>);

    impl<J> Injector<J> {
        pub(crate) fn new() -> Self {
            Injector(loom::sync::Mutex::new(VecDeque::new()))
        }
        pub(crate) fn push(&self, job: J) {
            self.0.lock().unwrap().push_back(job);
        }
        pub(crate) fn steal(&self) -> Option<J> {
            self.0.lock().unwrap().pop_front()
        }
        pub(crate) fn is_empty(&self) -> bool {
            self.0.lock().unwrap().is_empty()
        }
    }
}

pub(crate) use imp::{Condvar, Guard, Injector, Mutex};

#[cfg(not(lazy_par_map_loom))]
pub(crate) use std::sync::atomic::fence;

#[cfg(lazy_par_map_loom)]
pub(crate) use loom::sync::atomic::fence;
