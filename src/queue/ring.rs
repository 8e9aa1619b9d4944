//! The ring flavour of the item queue: a ring of slots that the feeder fills in order and
//! runners take runs of consecutive slots from, for buffers of up to [`super::RING_MAX`].
//!
//! # Algorithm
//! Item `seq` lives in slot `seq mod n`, `n` the buffer rounded up to a power of two. Two
//! counters, each on a cache line of its own:
//! - `pushed`, written only by the feeder: every slot below it has been written. To push
//!   item `seq`, the feeder checks that the slot's previous item has been moved out (an
//!   acquire load of the slot's `lap`, which must be `seq / n`), writes the item and
//!   publishes `pushed = seq + 1` with a release store.
//! - `claimed`, advanced by runners: every item below it belongs to a runner. A runner
//!   reads `claimed` and `pushed` (acquire, so the items below `pushed` are visible to it)
//!   and claims a run `[c, c + k)` with one compare-and-swap of `claimed` from `c` to
//!   `c + k`, `k` at most its limit and about half of what waits (rounded up). The run is then its
//!   own: it moves every item out at once, into a buffer of its own, and stores each
//!   slot's next lap, `seq / n + 1` (a release store), so the feeder's next write there
//!   comes after the read.
//!
//! So an item costs a few plain loads and stores on each side (on x86, release and acquire
//! are plain moves) and a run one compare-and-swap. crossbeam-deque's FIFO, which this
//! replaces for bounded adapters, also copies each stolen run into a deque of the runner's,
//! but then pops it with an atomic read-modify-write per item.
//!
//! Why the lap, and why a run moves its items out at once: the feeder only pushes item
//! `seq` once fewer than `cap <= n` items are taken and not yet returned by `next()` (the
//! ring protocol's bound). In input order that makes item `seq - n` returned, so long since
//! moved out. In completion order (`unordered`) it does not: the consumer may have returned
//! every later item while `seq - n` is still in its runner's hands. Claims go in order, so
//! `seq - n` is claimed by then (else the `n` items from it on would all be in flight);
//! moving a run out at once leaves only the moment between a claim and its moves, which
//! the feeder waits out (it finds the lap behind, and spins, then yields, until it moves).
//!
//! Slots are allocated in segments of [`SEGMENT`] as the feeder first reaches them, so an
//! adapter that sees a few items allocates a few slots, whatever its buffer. Items still in
//! the ring when it is dropped are dropped then, silently. The feeder keeps the segment it
//! fills, and a runner moves a run out a segment at a time, so an item costs no segment
//! lookup on either side.
//!
//! Under loom the slots are loom's `UnsafeCell`s, so the models check that no slot is read
//! and written at once (`tests/loom.rs`). With the laps left out of the model (std atomics,
//! which loom does not see), `unordered_yields_every_item_once` fails: the laps carry the
//! unordered case (above).

// The one module with `unsafe`: the slots are `UnsafeCell`s that the protocol above hands
// from the feeder to one runner at a time.
#![allow(unsafe_code)]

use super::Item;
use crate::silent::drop_silently;
use crate::sync::{yield_now, Arc, AtomicU64, Padded};
use std::cell::{Cell, RefCell};
use std::mem::MaybeUninit;
use std::sync::atomic::Ordering::{AcqRel, Acquire, Relaxed, Release};

#[cfg(lazy_par_map_loom)]
use loom::cell::UnsafeCell;
#[cfg(not(lazy_par_map_loom))]
use std::cell::UnsafeCell;

/// Slots allocated at once (fewer if the ring is smaller).
const SEGMENT: u64 = 256;

/// One slot: an item, or nothing.
struct Slot<T> {
    /// The lap whose item the slot may take next: item `seq` goes in once the lap is
    /// `seq / n`. Stored by the runner that moves an item out; the feeder only reads it.
    lap: AtomicU64,
    /// The item, between its push and its take.
    value: UnsafeCell<MaybeUninit<T>>,
}

impl<T> Slot<T> {
    fn new() -> Self {
        Slot {
            lap: AtomicU64::new(0),
            value: UnsafeCell::new(MaybeUninit::uninit()),
        }
    }

    /// Stores `value` in the slot.
    ///
    /// # Safety
    /// The slot is empty, and no other thread reads or writes its value until it is
    /// published by a release store that the reader acquires (`pushed`).
    #[inline]
    unsafe fn put(&self, value: T) {
        #[cfg(not(lazy_par_map_loom))]
        // SAFETY: the caller has the slot to itself (no other reference to the value) and
        // it is empty, so nothing is overwritten.
        unsafe {
            (*self.value.get()).write(value);
        }
        #[cfg(lazy_par_map_loom)]
        // SAFETY: as above; loom checks that no other thread touches the cell meanwhile.
        self.value.with_mut(|cell| unsafe {
            (*cell).write(value);
        });
    }

    /// Moves the value out, and opens the slot to lap `next_lap`.
    ///
    /// # Safety
    /// The slot holds a value, its write is visible to this thread, and no other thread
    /// reads or writes it meanwhile (the caller has claimed it).
    #[inline]
    unsafe fn take(&self, next_lap: u64) -> T {
        #[cfg(not(lazy_par_map_loom))]
        // SAFETY: the slot holds a value and is ours alone (the caller's contract): the
        // value is initialised, and it is read once (the caller's run moves past it).
        let value = unsafe { (*self.value.get()).assume_init_read() };
        #[cfg(lazy_par_map_loom)]
        // SAFETY: as above. Moving the value out is a write as far as loom is concerned, so
        // that it fails a model where two threads take the same slot, not only a read that
        // overlaps a write.
        let value = self
            .value
            .with_mut(|cell| unsafe { (*cell).assume_init_read() });
        // Release: the feeder's acquire of the lap orders its next write after this read.
        self.lap.store(next_lap, Release);
        value
    }
}

/// A run of slots allocated at once.
#[cfg(not(lazy_par_map_loom))]
type Segment<T> = std::sync::OnceLock<std::sync::Arc<[Slot<T>]>>;
/// Under loom every segment is allocated up front (models use a few slots).
#[cfg(lazy_par_map_loom)]
type Segment<T> = std::sync::Arc<[Slot<T>]>;

/// The ring, shared by the feeder's [`Pusher`] and the runners' [`Queue`].
struct Ring<T> {
    /// `n / SEGMENT` segments (one, if `n` is smaller).
    segments: Box<[Segment<T>]>,
    /// `n - 1`: `seq & mask` is the slot of item `seq`.
    mask: u64,
    /// `log2(n)`: `seq >> lap_shift` is the lap of item `seq`.
    lap_shift: u32,
    /// Slots per segment, as a shift.
    segment_shift: u32,
    /// Items pushed: written by the feeder only, after the slot.
    pushed: Padded<AtomicU64>,
    /// Items claimed by runners; those in `claimed..pushed` wait.
    claimed: Padded<AtomicU64>,
}

// SAFETY: the ring hands each item from the feeder's thread to one runner's (so `T: Send`
// is needed, and enough), and the protocol of the module doc gives each slot's value to one
// thread at a time, with a release-acquire edge between them; everything else is atomic.
unsafe impl<T: Send> Sync for Ring<T> {}
// SAFETY: the ring owns its items (`T: Send`); its atomics and cells move with it.
unsafe impl<T: Send> Send for Ring<T> {}

impl<T> Ring<T> {
    /// A ring for `cap` items (at least one slot).
    fn new(cap: u64) -> Self {
        let n = cap.max(1).next_power_of_two();
        let per_segment = n.min(SEGMENT);
        #[cfg(not(lazy_par_map_loom))]
        let segments = (0..n / per_segment).map(|_| Segment::new()).collect();
        #[cfg(lazy_par_map_loom)]
        let segments = (0..n / per_segment)
            .map(|_| (0..per_segment).map(|_| Slot::new()).collect())
            .collect();
        Ring {
            segments,
            mask: n - 1,
            lap_shift: n.trailing_zeros(),
            segment_shift: per_segment.trailing_zeros(),
            pushed: Padded(AtomicU64::new(0)),
            claimed: Padded(AtomicU64::new(0)),
        }
    }

    /// The slot of item `seq`, which has been pushed (so its segment exists).
    #[inline]
    fn slot(&self, seq: u64) -> &Slot<T> {
        let at = seq & self.mask;
        let segment = &self.segments[(at >> self.segment_shift) as usize];
        #[cfg(not(lazy_par_map_loom))]
        let segment = segment
            .get()
            .expect("a pushed item's segment was allocated before the push");
        &segment[(at & ((1 << self.segment_shift) - 1)) as usize]
    }

    /// Moves item `seq` out of its slot.
    ///
    /// # Safety
    /// Item `seq` has been pushed, its push is visible to this thread (an acquire of
    /// `pushed` past it), and it is this thread's alone (claimed, or `&mut self`).
    #[inline]
    unsafe fn take(&self, seq: u64) -> T {
        // SAFETY: the caller's contract, and the slot's next item is `seq + n`.
        unsafe { self.slot(seq).take((seq >> self.lap_shift) + 1) }
    }

    /// Moves items `from..to` out, last first, into `out`.
    ///
    /// # Safety
    /// As [`Ring::take`], for every item of `from..to`.
    #[inline]
    unsafe fn take_range_rev(&self, from: u64, to: u64, out: &mut Vec<T>) {
        let in_segment = (1u64 << self.segment_shift) - 1;
        let mut end = to;
        while end > from {
            // The slots of `start..end` lie in one segment, in order (a segment never
            // straddles the ring's end), and their items in one lap.
            let last = (end - 1) & self.mask;
            let start = end - ((last & in_segment) + 1).min(end - from);
            let segment = &self.segments[(last >> self.segment_shift) as usize];
            #[cfg(not(lazy_par_map_loom))]
            let segment = segment
                .get()
                .expect("a pushed item's segment was allocated before the push");
            let first = ((start & self.mask) & in_segment) as usize;
            let next_lap = (start >> self.lap_shift) + 1;
            for slot in segment[first..=(last & in_segment) as usize].iter().rev() {
                // SAFETY: the caller's contract, for this item of `from..to`; the slot's
                // next item is a lap on.
                out.push(unsafe { slot.take(next_lap) });
            }
            end = start;
        }
    }

    /// The segment of item `seq`, for the feeder (allocated on first use), and the number
    /// of the first item after it.
    fn segment_to_fill(&self, seq: u64) -> (std::sync::Arc<[Slot<T>]>, u64) {
        let at = seq & self.mask;
        let segment = &self.segments[(at >> self.segment_shift) as usize];
        #[cfg(not(lazy_par_map_loom))]
        let segment = segment.get_or_init(|| {
            (0..1u64 << self.segment_shift)
                .map(|_| Slot::new())
                .collect()
        });
        let in_segment = (1u64 << self.segment_shift) - 1;
        (std::sync::Arc::clone(segment), (seq | in_segment) + 1)
    }
}

impl<T> Drop for Ring<T> {
    fn drop(&mut self) {
        // `&mut self`: plain reads (loom's atomics have no `get_mut`).
        let claimed = self.claimed.0.load(Relaxed);
        let pushed = self.pushed.0.load(Relaxed);
        for seq in claimed..pushed {
            // SAFETY: `&mut self`: no run or push is under way, and the items in
            // `claimed..pushed` were pushed and never claimed.
            drop_silently(unsafe { self.take(seq) });
        }
    }
}

/// A new ring for `cap` items, as its two ends.
pub(super) fn new<T>(cap: u64) -> (Pusher<T>, Queue<T>) {
    let ring = Arc::new(Ring::new(cap));
    let pusher = Pusher {
        ring: Arc::clone(&ring),
        next: 0,
        segment: None,
        segment_end: 0,
    };
    (pusher, Queue(ring))
}

/// The feeder's end. There is one per ring (it is not `Clone`), and pushing takes `&mut`:
/// one push at a time, in order.
pub(crate) struct Pusher<T> {
    ring: Arc<Ring<T>>,
    /// The next item's sequence number: the ring's `pushed`, which only this pusher writes.
    next: u64,
    /// The segment the next item goes into, while `next` is below `segment_end`: the
    /// feeder looks a segment up once per segment, not once per item.
    segment: Option<std::sync::Arc<[Slot<T>]>>,
    /// The number of the first item after `segment`'s (0 before the first push).
    segment_end: u64,
}

// SAFETY: the pusher's segment is a part of its ring, reached from it as the ring's `Sync`
// allows (`T: Send`); moving the pusher to another thread moves the one writer with it.
unsafe impl<T: Send> Send for Pusher<T> {}

impl<T> Pusher<T> {
    /// Pushes item `seq`, which must be the next: `seq == pushed`.
    #[inline]
    pub(super) fn push(&mut self, seq: u64, item: T) {
        let ring = &*self.ring;
        let at = self.next;
        assert_eq!(seq, at, "items are pushed in order");
        if at >= self.segment_end {
            // The first item, or the first of another segment.
            let (segment, end) = ring.segment_to_fill(at);
            self.segment = Some(segment);
            self.segment_end = end;
        }
        let segment = self
            .segment
            .as_deref()
            .expect("the segment of the item is set above");
        let slot = &segment[(at & ((1 << ring.segment_shift) - 1)) as usize];
        // Acquire: the runner that moved the slot's previous item out read it before its
        // release.
        let mut spins = 0u32;
        while slot.lap.load(Acquire) != at >> ring.lap_shift {
            // Only unordered, while a runner is between its claim and its moves (module
            // doc): nanoseconds, unless that runner was preempted.
            if spins < 64 && !cfg!(lazy_par_map_loom) {
                spins += 1;
                std::hint::spin_loop();
            } else {
                yield_now();
            }
        }
        // SAFETY: the slot is empty: its lap is this item's, stored (release) by the runner
        // that moved item `at - n` out after its read, and loaded above (acquire), so that
        // read happened before this write; at lap 0 the slot was never written. Only this
        // `Pusher` (one per ring, `&mut self`) writes slots, and no runner reads this one
        // until it claims it, which needs `pushed` past it, published below.
        unsafe { slot.put(item) };
        self.next = at + 1;
        ring.pushed.0.store(at + 1, Release);
    }
}

/// The runners' end.
pub(crate) struct Queue<T>(Arc<Ring<T>>);

impl<T> Queue<T> {
    /// Items pushed and not claimed (a snapshot).
    #[inline]
    pub(super) fn len(&self) -> usize {
        let ring = &*self.0;
        let claimed = ring.claimed.0.load(Acquire);
        let pushed = ring.pushed.0.load(Acquire);
        pushed.saturating_sub(claimed) as usize
    }
}

/// A runner's claimed run, moved out of the ring: its items, to run in order.
pub(crate) struct Run<'q, T> {
    queue: &'q Queue<T>,
    /// The items after the first, last one first (so that `pop` takes from the end).
    items: RefCell<Vec<T>>,
    /// The sequence number of the next item `pop` returns.
    next: Cell<u64>,
    /// Where this run's last claim ended: where its next claim most often starts.
    end: Cell<u64>,
}

impl<'q, T> Run<'q, T> {
    pub(super) fn new(queue: &'q Queue<T>) -> Self {
        Run {
            queue,
            items: RefCell::new(Vec::new()),
            next: Cell::new(0),
            end: Cell::new(0),
        }
    }

    /// Claims the next run of up to `limit` items of its queue (about half of those
    /// waiting, rounded up), moves them out of the ring into this run, which must be
    /// empty, and returns the first.
    #[inline]
    pub(super) fn take(&self, limit: usize) -> Option<Item<T>> {
        let ring = &*self.queue.0;
        let mut items = self.items.borrow_mut();
        // Items left in the run would come out under the new run's sequence numbers.
        assert!(items.is_empty(), "a run is taken into an empty one");
        // A compare-and-swap that fails returns the real start: one load fewer per claim.
        let mut start = self.end.get();
        loop {
            // Acquire: the items below `pushed` were written before its release.
            let pushed = ring.pushed.0.load(Acquire);
            if start >= pushed {
                return None;
            }
            let waiting = pushed - start;
            let len = waiting.div_ceil(2).clamp(1, limit.max(1) as u64);
            // Before the claim, so that nothing between the claim and the moves can panic
            // (claimed items that are never moved out would leak, and stall the feeder).
            items.reserve((len - 1) as usize);
            // Acquire on failure too: the next load of `pushed` then sees at least what the
            // runner whose claim won saw.
            match ring
                .claimed
                .0
                .compare_exchange(start, start + len, AcqRel, Acquire)
            {
                Ok(_) => {
                    let end = start + len;
                    // SAFETY: `end <= pushed` (the writes are visible: acquire above), and
                    // the compare-and-swap made `start..end` ours alone.
                    unsafe { ring.take_range_rev(start + 1, end, &mut items) };
                    self.next.set(start + 1);
                    self.end.set(end);
                    // SAFETY: as above.
                    return Some((start, unsafe { ring.take(start) }));
                }
                Err(now) => start = now,
            }
        }
    }

    /// The run's next item.
    #[inline]
    pub(super) fn pop(&self) -> Option<Item<T>> {
        let item = self.items.borrow_mut().pop()?;
        let seq = self.next.get();
        self.next.set(seq + 1);
        Some((seq, item))
    }

    /// Hands every item left in the run, in order, to `step`, with one borrow of the run
    /// for all of them. If `step` panics, the items after the one it was given stay.
    #[inline]
    pub(super) fn pop_each(&self, mut step: impl FnMut(Item<T>)) {
        let mut items = self.items.borrow_mut();
        while let Some(item) = items.pop() {
            let seq = self.next.get();
            self.next.set(seq + 1);
            step((seq, item));
        }
    }

    /// Items left in the run.
    #[inline]
    pub(super) fn len(&self) -> usize {
        self.items.borrow().len()
    }
}

impl<T> Drop for Run<'_, T> {
    fn drop(&mut self) {
        while let Some((_, item)) = self.pop() {
            drop_silently(item);
        }
    }
}
