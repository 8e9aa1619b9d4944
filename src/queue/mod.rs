//! The queue of items pulled from the source and not yet started: the feeder pushes each
//! item as soon as it is pulled, runners take runs of consecutive items from it.
//!
//! Two flavours, one per file, behind one API:
//! - [`ring`]: a ring of slots, for a buffer of up to [`RING_MAX`] items (the default among
//!   them). A plain store per item on each side and one compare-and-swap per run.
//! - [`deque`]: crossbeam-deque's FIFO, for larger buffers and unbounded adapters, whose
//!   queue must grow with what it holds.
//!
//! Only the feeder pushes (it holds the one [`Pusher`]); any number of runners take.

mod deque;
mod ring;

/// An item with its sequence number (its position in the source).
pub(crate) type Item<T> = (u64, T);

/// Buffers up to this many items use the ring; its slots are allocated as the feeder first
/// reaches them, but never freed before the adapter is, so a larger buffer would hold memory
/// for items it no longer holds. Larger buffers use the deque, which grows and shrinks.
pub(crate) const RING_MAX: u64 = 1 << 16;

/// A new queue for an adapter of `cap` slots (`u64::MAX`: unbounded), as its two ends.
pub(crate) fn queue<T>(cap: u64) -> (Pusher<T>, Queue<T>) {
    if cap <= RING_MAX {
        let (pusher, queue) = ring::new(cap);
        (Pusher::Ring(pusher), Queue::Ring(queue))
    } else {
        let (pusher, queue) = deque::new();
        (Pusher::Deque(pusher), Queue::Deque(queue))
    }
}

/// The feeder's end: it alone pushes.
pub(crate) enum Pusher<T> {
    Ring(ring::Pusher<T>),
    Deque(deque::Pusher<T>),
}

impl<T> Pusher<T> {
    /// Pushes the item `seq`, the next in order.
    #[inline]
    pub(crate) fn push(&mut self, seq: u64, item: T) {
        match self {
            Pusher::Ring(ring) => ring.push(seq, item),
            Pusher::Deque(deque) => deque.push((seq, item)),
        }
    }
}

/// The runners' end.
pub(crate) enum Queue<T> {
    Ring(ring::Queue<T>),
    Deque(deque::Queue<T>),
}

impl<T> Queue<T> {
    /// Whether no item waits (a snapshot).
    #[inline]
    pub(crate) fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// How many items wait (a snapshot).
    #[inline]
    pub(crate) fn len(&self) -> usize {
        match self {
            Queue::Ring(ring) => ring.len(),
            Queue::Deque(deque) => deque.len(),
        }
    }
}

/// A runner's own run of items, taken from its [`Queue`] in one steal. Runners empty it
/// before they let go of it; items a ring's run still holds when it is dropped are dropped
/// silently.
pub(crate) struct Local<'q, T>(LocalRun<'q, T>);

enum LocalRun<'q, T> {
    Ring(ring::Run<'q, T>),
    Deque(deque::Run<'q, T>),
}

impl<'q, T> Local<'q, T> {
    /// An empty run, for taking from `queue`.
    pub(crate) fn new(queue: &'q Queue<T>) -> Self {
        Local(match queue {
            Queue::Ring(ring) => LocalRun::Ring(ring::Run::new(ring)),
            Queue::Deque(deque) => LocalRun::Deque(deque::Run::new(deque)),
        })
    }

    /// Takes the oldest item of the queue, and up to `limit - 1` of the ones after it into
    /// this run (about half of the queue, rounded up: the rest stays for other runners).
    /// The run must be empty.
    #[inline]
    pub(crate) fn steal(&self, limit: usize) -> Option<Item<T>> {
        match &self.0 {
            LocalRun::Ring(run) => run.take(limit),
            LocalRun::Deque(run) => run.take(limit),
        }
    }

    /// The next item of the run.
    #[inline]
    pub(crate) fn pop(&self) -> Option<Item<T>> {
        match &self.0 {
            LocalRun::Ring(run) => run.pop(),
            LocalRun::Deque(run) => run.pop(),
        }
    }

    /// Hands every item left in the run, in order, to `step`. If `step` panics, the
    /// items after the one it was given stay in the run.
    #[inline]
    pub(crate) fn pop_each(&self, step: impl FnMut(Item<T>)) {
        match &self.0 {
            LocalRun::Ring(run) => run.pop_each(step),
            LocalRun::Deque(run) => {
                let mut step = step;
                while let Some(item) = run.pop() {
                    step(item);
                }
            }
        }
    }

    /// Items left in the run.
    #[inline]
    pub(crate) fn len(&self) -> usize {
        match &self.0 {
            LocalRun::Ring(run) => run.len(),
            LocalRun::Deque(run) => run.len(),
        }
    }
}
