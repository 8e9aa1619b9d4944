//! The deque flavour of the item queue: crossbeam-deque's FIFO, for buffers larger than
//! [`super::RING_MAX`] and unbounded adapters. The feeder's `Worker` pushes each item with a
//! plain store; a runner steals a run into a `Worker` of its own and pops it item by item.
//! Its buffer grows and shrinks with what it holds.
//!
//! loom cannot model crossbeam-deque: under loom this flavour is a mutex around a
//! `VecDeque` (the models use the ring).

use super::Item;

#[cfg(not(lazy_par_map_loom))]
mod imp {
    use super::Item;

    /// A new FIFO, as its two ends.
    pub(in crate::queue) fn new<T>() -> (Pusher<T>, Queue<T>) {
        let worker = crossbeam_deque::Worker::new_fifo();
        let stealer = worker.stealer();
        (Pusher(worker), Queue(stealer))
    }

    /// The feeder's end.
    pub(crate) struct Pusher<T>(crossbeam_deque::Worker<Item<T>>);

    impl<T> Pusher<T> {
        #[inline]
        pub(in crate::queue) fn push(&mut self, item: Item<T>) {
            self.0.push(item);
        }
    }

    /// The runners' end.
    pub(crate) struct Queue<T>(crossbeam_deque::Stealer<Item<T>>);

    impl<T> Queue<T> {
        pub(in crate::queue) fn len(&self) -> usize {
            self.0.len()
        }
    }

    /// A runner's own run: a FIFO of its own that it steals into.
    pub(crate) struct Run<'q, T> {
        queue: &'q Queue<T>,
        local: crossbeam_deque::Worker<Item<T>>,
    }

    impl<'q, T> Run<'q, T> {
        pub(in crate::queue) fn new(queue: &'q Queue<T>) -> Self {
            Run {
                queue,
                local: crossbeam_deque::Worker::new_fifo(),
            }
        }

        /// Steals the oldest item, and up to `limit - 1` of the ones after it into this run
        /// (at most half of the queue: the rest stays for other runners).
        pub(in crate::queue) fn take(&self, limit: usize) -> Option<Item<T>> {
            loop {
                match self
                    .queue
                    .0
                    .steal_batch_with_limit_and_pop(&self.local, limit.max(1))
                {
                    crossbeam_deque::Steal::Success(item) => return Some(item),
                    crossbeam_deque::Steal::Empty => return None,
                    crossbeam_deque::Steal::Retry => std::hint::spin_loop(),
                }
            }
        }

        pub(in crate::queue) fn pop(&self) -> Option<Item<T>> {
            self.local.pop()
        }

        pub(in crate::queue) fn len(&self) -> usize {
            self.local.len()
        }
    }
}

#[cfg(lazy_par_map_loom)]
mod imp {
    use super::Item;
    use std::collections::VecDeque;

    type Shared<T> = loom::sync::Arc<loom::sync::Mutex<VecDeque<Item<T>>>>;

    pub(in crate::queue) fn new<T>() -> (Pusher<T>, Queue<T>) {
        let shared = Shared::new(loom::sync::Mutex::new(VecDeque::new()));
        (Pusher(shared.clone()), Queue(shared))
    }

    /// The feeder's end.
    pub(crate) struct Pusher<T>(Shared<T>);

    impl<T> Pusher<T> {
        pub(in crate::queue) fn push(&mut self, item: Item<T>) {
            self.0.lock().unwrap().push_back(item);
        }
    }

    /// The runners' end.
    pub(crate) struct Queue<T>(Shared<T>);

    impl<T> Queue<T> {
        pub(in crate::queue) fn len(&self) -> usize {
            self.0.lock().unwrap().len()
        }
    }

    /// A runner's own run.
    pub(crate) struct Run<'q, T> {
        queue: &'q Queue<T>,
        local: std::cell::RefCell<VecDeque<Item<T>>>,
    }

    impl<'q, T> Run<'q, T> {
        pub(in crate::queue) fn new(queue: &'q Queue<T>) -> Self {
            Run {
                queue,
                local: std::cell::RefCell::new(VecDeque::new()),
            }
        }

        /// Takes the oldest item and up to `limit - 1` more (half the queue at most, as
        /// crossbeam-deque does).
        pub(in crate::queue) fn take(&self, limit: usize) -> Option<Item<T>> {
            let mut queue = self.queue.0.lock().unwrap();
            let first = queue.pop_front()?;
            let more = (queue.len() / 2).min(limit.max(1) - 1);
            self.local.borrow_mut().extend(queue.drain(..more));
            Some(first)
        }

        pub(in crate::queue) fn pop(&self) -> Option<Item<T>> {
            self.local.borrow_mut().pop_front()
        }

        pub(in crate::queue) fn len(&self) -> usize {
            self.local.borrow().len()
        }
    }
}

pub(super) use imp::{new, Pusher, Queue, Run};
