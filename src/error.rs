//! Why a polling call returned no item: [`TryNextError`] and [`NextTimeoutError`].

use std::fmt;

/// Why [`LazyParMap::try_next`](crate::LazyParMap::try_next) returned no item.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum TryNextError {
    /// The next result is not ready yet; try again later.
    NotReady,
    /// The adapter has ended: the source is exhausted (or the adapter failed earlier).
    Finished,
}

/// Why [`LazyParMap::next_timeout`](crate::LazyParMap::next_timeout) returned no item.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum NextTimeoutError {
    /// The next result was not ready within the timeout; the adapter goes on.
    Timeout,
    /// The adapter has ended: the source is exhausted (or the adapter failed earlier).
    Finished,
}

impl fmt::Display for TryNextError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            TryNextError::NotReady => "the next result is not ready yet",
            TryNextError::Finished => "the parallel map has ended",
        })
    }
}

impl fmt::Display for NextTimeoutError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            NextTimeoutError::Timeout => "timed out waiting for the next result",
            NextTimeoutError::Finished => "the parallel map has ended",
        })
    }
}

impl std::error::Error for TryNextError {}
impl std::error::Error for NextTimeoutError {}
