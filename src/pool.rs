//! Where `f` runs: rayon's global pool or a custom `rayon::ThreadPool`, and how a consumer
//! that waits on a rayon worker thread helps instead of blocking it.

use std::fmt;
use std::sync::Arc;

/// The pool an adapter maps on.
#[derive(Clone, Default)]
pub(crate) enum Pool {
    /// rayon's global pool.
    #[default]
    Global,
    /// A pool the user gave; the adapter holds it alive until its last job has run.
    Custom(Arc<rayon::ThreadPool>),
}

impl Pool {
    /// The pool's thread count: how many runners may drain an adapter's jobs at once.
    pub(crate) fn num_threads(&self) -> usize {
        match self {
            Pool::Global => rayon::current_num_threads(),
            Pool::Custom(pool) => pool.current_num_threads(),
        }
    }

    /// Spawns `job` on the pool. `job` must not unwind: rayon aborts the process when a
    /// spawned job panics (`rayon::spawn`'s documented panic rule), so runners catch every
    /// panic of user code themselves.
    pub(crate) fn spawn(&self, job: impl FnOnce() + Send + 'static) {
        match self {
            Pool::Global => rayon::spawn(job),
            Pool::Custom(pool) => pool.spawn(job),
        }
    }
}

impl fmt::Debug for Pool {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Pool::Global => f.write_str("Global"),
            Pool::Custom(pool) => f
                .debug_struct("Custom")
                .field("threads", &pool.current_num_threads())
                .finish(),
        }
    }
}

/// Whether the current thread is a rayon worker (of any pool). A consumer there must not
/// simply block: it would take a thread from the pool that runs the jobs it waits for.
#[cfg(not(lazy_par_map_loom))]
pub(crate) fn on_worker() -> bool {
    rayon::current_thread_index().is_some()
}

/// Runs one pending job of the current thread's pool, as `rayon::yield_now` does; `true`
/// if it ran one.
#[cfg(not(lazy_par_map_loom))]
pub(crate) fn yield_now() -> bool {
    matches!(rayon::yield_now(), Some(rayon::Yield::Executed))
}

#[cfg(lazy_par_map_loom)]
pub(crate) fn on_worker() -> bool {
    false
}

#[cfg(lazy_par_map_loom)]
pub(crate) fn yield_now() -> bool {
    false
}
