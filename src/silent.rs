//! Dropping user values whose `Drop` may panic, where a panic must not escape.
//!
//! The crate drops values the user never sees again: results of a cancelled adapter, items
//! skipped after a stop, `f` and the source once the last thread lets go of them. Such a drop
//! may run on a rayon worker inside `spawn` (where a panic aborts the process), on the feeder
//! thread, or while the consumer unwinds from the panic it is re-raising (where a second
//! panic aborts too, or replaces the payload the caller must get). So every such drop goes
//! through [`drop_silently`]: its panic is caught and discarded.

use std::panic::{catch_unwind, AssertUnwindSafe};

/// Drops `value`, catching and discarding a panic of its `Drop`.
#[inline]
pub(crate) fn drop_silently<T>(value: T) {
    if std::mem::needs_drop::<T>() {
        let _ = catch_unwind(AssertUnwindSafe(move || drop(value)));
    }
}

/// Drops every element of `values`, each with [`drop_silently`].
pub(crate) fn drop_each_silently<T>(values: impl IntoIterator<Item = T>) {
    for value in values {
        drop_silently(value);
    }
}

/// Owns a `T` and drops it with [`drop_silently`], wherever the owner is dropped.
pub(crate) struct Silent<T>(Option<T>);

impl<T> Silent<T> {
    pub(crate) fn new(value: T) -> Self {
        Silent(Some(value))
    }

    #[inline]
    pub(crate) fn get(&self) -> &T {
        self.0
            .as_ref()
            .expect("a Silent value is present until it is dropped")
    }

    #[inline]
    pub(crate) fn get_mut(&mut self) -> &mut T {
        self.0
            .as_mut()
            .expect("a Silent value is present until it is dropped")
    }
}

impl<T> Drop for Silent<T> {
    fn drop(&mut self) {
        if let Some(value) = self.0.take() {
            drop_silently(value);
        }
    }
}
