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
    /// The pool's thread count: how many runners may drain an adapter's items at once.
    /// For the global pool, ask on a thread outside every pool (the feeder): on a worker
    /// of a custom pool, inside its `install`, rayon answers for that pool instead.
    pub(crate) fn num_threads(&self) -> usize {
        match self {
            Pool::Global => rayon::current_num_threads(),
            Pool::Custom(pool) => pool.current_num_threads(),
        }
    }

    /// The pool's thread count if it can be read on this thread: on a thread outside every
    /// pool (for the global pool) or anywhere (for a custom pool). Read here rather than on
    /// the feeder, because the first use of the global pool starts its threads, and Linux
    /// names a new thread after the thread that starts it: read on the feeder, rayon's
    /// threads would all be called `lazy-par-map-feeder`.
    pub(crate) fn num_threads_here(&self) -> Option<usize> {
        match self {
            Pool::Global if rayon::current_thread_index().is_some() => None,
            pool => Some(pool.num_threads()),
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

/// The cores available to this process, once [`learn_cores`] has read them.
pub(crate) fn cores_if_known() -> Option<usize> {
    CORES.get().copied().flatten()
}

/// Reads the cores available to this process, once per process (it reads cgroup files:
/// 40 to 90 µs here). Called by a feeder after its turn, off a first result's path.
pub(crate) fn learn_cores() {
    if CORES.get().is_none() {
        let cores = std::thread::available_parallelism().ok().map(usize::from);
        let _ = CORES.set(cores);
    }
}

static CORES: std::sync::OnceLock<Option<usize>> = std::sync::OnceLock::new();

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

/// Where a consumer's thread stands, for the adapter it waits on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Place {
    /// Not a rayon worker: it may simply block.
    Outside,
    /// A worker of the adapter's own pool: it must not simply block (it would take a thread
    /// from the pool that runs the jobs it waits for), so it runs the adapter's queued items
    /// itself and other pool work, as rayon's own waits do.
    OwnPool,
    /// A worker of another pool: it runs none of the adapter's items (`f` runs on one pool
    /// only), but keeps its own pool going with `rayon::yield_now`, since what it waits for
    /// may depend on that pool (a source that is itself an adapter on it).
    #[cfg_attr(lazy_par_map_loom, allow(dead_code))]
    OtherPool,
}

#[cfg(not(lazy_par_map_loom))]
thread_local! {
    /// Set on a thread of rayon's global pool once one of our runners has run there: the
    /// global pool has no handle to ask `current_thread_index` of.
    static GLOBAL_WORKER: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

#[cfg(not(lazy_par_map_loom))]
impl Pool {
    /// Where the current thread stands for an adapter on this pool. A worker of the global
    /// pool on which none of our runners has run yet counts as [`Place::OtherPool`]: it
    /// still makes progress (its `yield_now` runs the runners queued on its pool) and is
    /// known as [`Place::OwnPool`] once one has run there.
    pub(crate) fn place(&self) -> Place {
        if rayon::current_thread_index().is_none() {
            return Place::Outside;
        }
        let own = match self {
            Pool::Global => GLOBAL_WORKER.with(std::cell::Cell::get),
            Pool::Custom(pool) => pool.current_thread_index().is_some(),
        };
        if own {
            Place::OwnPool
        } else {
            Place::OtherPool
        }
    }

    /// Called by a runner at its start, on its pool's thread.
    pub(crate) fn mark_worker(&self) {
        if let Pool::Global = self {
            GLOBAL_WORKER.with(|marked| marked.set(true));
        }
    }
}

/// Runs one pending job of the current thread's pool, as `rayon::yield_now` does; `true`
/// if it ran one.
#[cfg(not(lazy_par_map_loom))]
pub(crate) fn yield_now() -> bool {
    matches!(rayon::yield_now(), Some(rayon::Yield::Executed))
}

#[cfg(lazy_par_map_loom)]
impl Pool {
    pub(crate) fn place(&self) -> Place {
        Place::Outside
    }
    pub(crate) fn mark_worker(&self) {}
}

#[cfg(lazy_par_map_loom)]
pub(crate) fn yield_now() -> bool {
    false
}
