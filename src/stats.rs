//! [`Stats`]: the counts an adapter keeps for choosing its buffer.

use std::time::Duration;

/// Counts for tuning `buffer`, from [`LazyParMap::stats`](crate::LazyParMap::stats).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Stats {
    /// Items the source has returned so far. It never decreases and never counts more
    /// than the pulls begun (the bound of the crate docs also counts a pull under way).
    pub taken: u64,
    /// Items returned by `next()`.
    pub yielded: u64,
    /// Items taken and not yet returned: queued, running, finished and waiting their turn.
    /// Never more than the buffer; zero once the adapter has ended (items taken after a
    /// panic or an `Err` are skipped, not in flight).
    pub in_flight: u64,
    /// Time the consumer spent waiting for a result. Large: `f` or the source is the
    /// bottleneck; a larger buffer helps only if the wait comes from uneven `f` times.
    pub consumer_waited: Duration,
    /// Time the feeder spent waiting for a free slot. Large: the consumer is the bottleneck
    /// and the buffer is full, as it should be.
    pub feeder_waited: Duration,
}
