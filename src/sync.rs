//! The synchronisation primitives the ring protocol is written against.
//!
//! Normally these are `parking_lot`'s `Mutex`/`Condvar`, std's atomics and `Arc`, and
//! `crossbeam-deque`'s FIFO of items. Under `--cfg lazy_par_map_loom` they are loom's, so that
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
        #[cfg_attr(not(lazy_par_map_loom), allow(dead_code))]
        pub(crate) fn notify_all(&self) {
            self.0.notify_all();
        }
    }

    /// The feeder's end of the FIFO of items not yet started: it alone pushes, each item
    /// with a plain store (crossbeam-deque's `Worker`, used first in, first out).
    pub(crate) struct Pusher<T>(crossbeam_deque::Worker<T>);

    /// The runners' end of that FIFO: they take runs of consecutive items (`Stealer`).
    pub(crate) struct Queue<T>(crossbeam_deque::Stealer<T>);

    /// A runner's own run of items, taken from the [`Queue`] in one steal.
    pub(crate) struct Local<T>(crossbeam_deque::Worker<T>);

    /// A new FIFO, as its two ends.
    pub(crate) fn queue<T>() -> (Pusher<T>, Queue<T>) {
        let worker = crossbeam_deque::Worker::new_fifo();
        let stealer = worker.stealer();
        (Pusher(worker), Queue(stealer))
    }

    impl<T> Pusher<T> {
        pub(crate) fn push(&self, item: T) {
            self.0.push(item);
        }
    }

    impl<T> Queue<T> {
        /// Takes the oldest item, and up to `limit - 1` of the ones after it into `local`
        /// (at most half of the queue: the rest stays for other runners).
        pub(crate) fn steal_batch(&self, local: &Local<T>, limit: usize) -> Option<T> {
            loop {
                match self
                    .0
                    .steal_batch_with_limit_and_pop(&local.0, limit.max(1))
                {
                    crossbeam_deque::Steal::Success(item) => return Some(item),
                    crossbeam_deque::Steal::Empty => return None,
                    crossbeam_deque::Steal::Retry => std::hint::spin_loop(),
                }
            }
        }
        pub(crate) fn is_empty(&self) -> bool {
            self.0.is_empty()
        }
        pub(crate) fn len(&self) -> usize {
            self.0.len()
        }
    }

    impl<T> Local<T> {
        pub(crate) fn new() -> Self {
            Local(crossbeam_deque::Worker::new_fifo())
        }
        pub(crate) fn pop(&self) -> Option<T> {
            self.0.pop()
        }
        pub(crate) fn len(&self) -> usize {
            self.0.len()
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
        #[cfg_attr(not(lazy_par_map_loom), allow(dead_code))]
        pub(crate) fn notify_all(&self) {
            self.0.notify_all();
        }
    }

    type Shared<T> = loom::sync::Arc<loom::sync::Mutex<VecDeque<T>>>;

    /// The feeder's end of the item FIFO (a loom mutex around a `VecDeque`).
    pub(crate) struct Pusher<T>(Shared<T>);
    /// The runners' end of the item FIFO.
    pub(crate) struct Queue<T>(Shared<T>);
    /// A runner's own run of items.
    pub(crate) struct Local<T>(std::cell::RefCell<VecDeque<T>>);

    pub(crate) fn queue<T>() -> (Pusher<T>, Queue<T>) {
        let shared = Shared::new(loom::sync::Mutex::new(VecDeque::new()));
        (Pusher(shared.clone()), Queue(shared))
    }

    impl<T> Pusher<T> {
        pub(crate) fn push(&self, item: T) {
            self.0.lock().unwrap().push_back(item);
        }
    }

    impl<T> Queue<T> {
        /// Takes the oldest item and up to `limit - 1` more into `local` (half the queue at
        /// most, as crossbeam-deque does).
        pub(crate) fn steal_batch(&self, local: &Local<T>, limit: usize) -> Option<T> {
            let mut queue = self.0.lock().unwrap();
            let first = queue.pop_front()?;
            let more = (queue.len() / 2).min(limit.max(1) - 1);
            local.0.borrow_mut().extend(queue.drain(..more));
            Some(first)
        }
        pub(crate) fn is_empty(&self) -> bool {
            self.0.lock().unwrap().is_empty()
        }
        pub(crate) fn len(&self) -> usize {
            self.0.lock().unwrap().len()
        }
    }

    impl<T> Local<T> {
        pub(crate) fn new() -> Self {
            Local(std::cell::RefCell::new(VecDeque::new()))
        }
        pub(crate) fn pop(&self) -> Option<T> {
            self.0.borrow_mut().pop_front()
        }
        pub(crate) fn len(&self) -> usize {
            self.0.borrow().len()
        }
    }
}

pub(crate) use imp::{queue, Condvar, Guard, Local, Mutex, Pusher, Queue};

#[cfg(not(lazy_par_map_loom))]
pub(crate) use std::sync::atomic::fence;

#[cfg(lazy_par_map_loom)]
pub(crate) use loom::sync::atomic::fence;
