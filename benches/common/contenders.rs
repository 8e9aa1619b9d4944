//! The contenders, and one timed run of a job through one of them.

use super::Check;
use lazy_par_map::prelude::*;
use lazy_par_map::DEFAULT_BUFFER;
use pariter::IteratorExt as _;
use rayon::iter::{ParallelBridge, ParallelIterator};
use rayon::ThreadPool;
use std::sync::{mpsc, Arc};
use std::time::{Duration, Instant};

/// The larger buffer of `lpm-tuned`.
pub const TUNED_BUFFER: usize = 16384;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Contender {
    /// `iter.map(f)`.
    Seq,
    /// `iter.lazy_par_map(f)` (or `.buffer(job.buffer)` when the workload fixes a buffer).
    LpmDefault,
    /// `iter.lazy_par_map(f).buffer(TUNED_BUFFER)`.
    LpmTuned,
    /// `pariter`'s `parallel_map`, threads = the pool's threads, its default buffer (2 x
    /// threads) unless the workload fixes one.
    Pariter,
    /// `iter.par_bridge().map(f).collect::<Vec<_>>()`: unordered and eager, a reference.
    ParBridge,
    /// [`naive`]: a feeder thread, one `spawn` and one-shot channel per item.
    Naive,
    /// `iter.lazy_par_map(f).unordered()` (or `.buffer(job.buffer)` when the workload fixes
    /// a buffer): results in completion order, the same bound.
    LpmUnordered,
    /// `iter.lazy_par_map(f).buffer(4 * threads)`: a buffer small enough that a slow item
    /// holds back the ordered output (head-of-line blocking). The scaling bench calls it
    /// `lpm-4xthreads`.
    LpmSmall,
    /// `iter.lazy_par_map(f).buffer(4 * threads).unordered()`.
    LpmSmallUnordered,
}

impl Contender {
    pub const ALL: [Contender; 6] = [
        Contender::Seq,
        Contender::LpmDefault,
        Contender::LpmTuned,
        Contender::Pariter,
        Contender::ParBridge,
        Contender::Naive,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Contender::Seq => "seq",
            Contender::LpmDefault => "lpm-default",
            Contender::LpmTuned => "lpm-tuned",
            Contender::Pariter => "pariter",
            Contender::ParBridge => "par_bridge",
            Contender::Naive => "naive",
            Contender::LpmUnordered => "lpm-unordered",
            Contender::LpmSmall => "lpm-small-buffer",
            Contender::LpmSmallUnordered => "lpm-small-unordered",
        }
    }

    /// Whether the output must be in input order (else only the multiset is checked).
    pub fn ordered(self) -> bool {
        !matches!(
            self,
            Contender::ParBridge | Contender::LpmUnordered | Contender::LpmSmallUnordered
        )
    }

    /// The buffer of [`Contender::LpmSmall`] and [`Contender::LpmSmallUnordered`].
    pub fn small_buffer(threads: usize) -> usize {
        4 * threads
    }
}

/// A naive ordered pipeline: a feeder thread reads the source and, per item, spawns one
/// rayon job that sends its result through its own one-shot channel; the one-shots travel
/// to the consumer, in order, through a `sync_channel(buffer)`. At most `buffer + 1` items
/// are taken ahead (the feeder pulls and spawns before it blocks on the full channel).
/// Dropping it stops the feeder at its next send; jobs already spawned still run.
pub fn naive<I, F, R>(
    source: I,
    f: F,
    buffer: usize,
    pool: Option<Arc<ThreadPool>>,
) -> impl Iterator<Item = R>
where
    I: Iterator + Send + 'static,
    I::Item: Send + 'static,
    F: Fn(I::Item) -> R + Send + Sync + 'static,
    R: Send + 'static,
{
    let f = Arc::new(f);
    let (tx, rx) = mpsc::sync_channel::<mpsc::Receiver<R>>(buffer);
    std::thread::Builder::new()
        .name("naive-feeder".into())
        .spawn(move || {
            for item in source {
                let (one_tx, one_rx) = mpsc::sync_channel(1);
                let f = Arc::clone(&f);
                let job = move || {
                    // The consumer may be gone: then the result is dropped.
                    let _ = one_tx.send(f(item));
                };
                match &pool {
                    Some(pool) => pool.spawn(job),
                    None => rayon::spawn(job),
                }
                if tx.send(one_rx).is_err() {
                    break;
                }
            }
        })
        .expect("spawn the naive feeder");
    rx.into_iter()
        .map(|one| one.recv().expect("naive: a job dropped its result"))
}

/// Where a workload's `f` runs.
#[derive(Clone)]
pub enum PoolSpec {
    /// rayon's global pool.
    Global,
    /// One custom pool for every sample.
    Shared(Arc<ThreadPool>),
    /// A new pool of this many threads per sample, built outside the timed region, so that
    /// work a contender leaves behind (jobs that outlive a dropped iterator) cannot slow the
    /// next sample.
    Fresh(usize),
}

impl PoolSpec {
    pub fn custom(threads: usize) -> PoolSpec {
        PoolSpec::Shared(Arc::new(build_pool(threads)))
    }

    pub fn threads(&self) -> usize {
        match self {
            PoolSpec::Global => rayon::current_num_threads(),
            PoolSpec::Shared(pool) => pool.current_num_threads(),
            PoolSpec::Fresh(threads) => *threads,
        }
    }

    /// The pool one sample runs on (`None`: the global pool).
    pub fn for_sample(&self) -> Option<Arc<ThreadPool>> {
        match self {
            PoolSpec::Global => None,
            PoolSpec::Shared(pool) => Some(Arc::clone(pool)),
            PoolSpec::Fresh(threads) => Some(Arc::new(build_pool(*threads))),
        }
    }
}

pub fn build_pool(threads: usize) -> ThreadPool {
    rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .thread_name(move |i| format!("bench-pool-{threads}-{i}"))
        .build()
        .expect("build a rayon pool")
}

/// What every contender runs: `f` over `source()`, then (if `take` is set) only the first
/// `take` results are consumed and the iterator is dropped.
#[derive(Clone)]
pub struct Job<S, F> {
    pub source: S,
    pub f: F,
    pub pool: PoolSpec,
    /// Consume only this many results (the source may be infinite).
    pub take: Option<usize>,
    /// A buffer every bounded contender uses instead of its default.
    pub buffer: Option<usize>,
}

impl<S, F> Job<S, F> {
    pub fn new(source: S, f: F) -> Self {
        Job {
            source,
            f,
            pool: PoolSpec::Global,
            take: None,
            buffer: None,
        }
    }
}

/// One timed run.
#[derive(Clone, Copy, Debug)]
pub struct Outcome {
    /// From before the source is built to the last result consumed.
    pub elapsed: Duration,
    /// How long dropping a partly consumed iterator took (zero when drained).
    pub dropped: Duration,
    pub check: Check,
}

fn drain<It: Iterator<Item = u64>>(start: Instant, mut it: It, take: Option<usize>) -> Outcome {
    match take {
        None => {
            let check = it.fold(Check::default(), Check::add);
            Outcome {
                elapsed: start.elapsed(),
                dropped: Duration::ZERO,
                check,
            }
        }
        Some(k) => {
            let check = it.by_ref().take(k).fold(Check::default(), Check::add);
            let elapsed = start.elapsed();
            let dropping = Instant::now();
            drop(it);
            Outcome {
                elapsed,
                dropped: dropping.elapsed(),
                check,
            }
        }
    }
}

/// Runs `job` through `contender` once, on `pool` (`None`: the global pool).
pub fn run<S, I, F>(
    contender: Contender,
    job: &Job<S, F>,
    pool: Option<&Arc<ThreadPool>>,
) -> Outcome
where
    S: Fn() -> I,
    I: Iterator<Item = u64> + Send + 'static,
    F: Fn(u64) -> u64 + Clone + Send + Sync + 'static,
{
    let threads = pool.map_or_else(rayon::current_num_threads, |p| p.current_num_threads());
    let f = job.f.clone();
    let start = Instant::now();
    let source = (job.source)();
    match contender {
        Contender::Seq => drain(start, source.map(f), job.take),
        Contender::LpmDefault
        | Contender::LpmTuned
        | Contender::LpmUnordered
        | Contender::LpmSmall
        | Contender::LpmSmallUnordered => {
            let mut it = source.lazy_par_map(f);
            let buffer = match contender {
                Contender::LpmTuned => Some(TUNED_BUFFER),
                Contender::LpmSmall | Contender::LpmSmallUnordered => {
                    Some(Contender::small_buffer(threads))
                }
                _ => job.buffer,
            };
            if let Some(buffer) = buffer {
                it = it.buffer(buffer);
            }
            if !contender.ordered() {
                it = it.unordered();
            }
            if let Some(pool) = pool {
                it = it.pool(Arc::clone(pool));
            }
            drain(start, it, job.take)
        }
        Contender::Pariter => {
            let it = source.parallel_map_custom(
                |o| match job.buffer {
                    Some(buffer) => o.threads(threads).buffer_size(buffer),
                    None => o.threads(threads),
                },
                f,
            );
            drain(start, it, job.take)
        }
        Contender::ParBridge => {
            let take = job.take;
            let collect = move || -> Vec<u64> {
                match take {
                    Some(k) => source.take(k).par_bridge().map(f).collect(),
                    None => source.par_bridge().map(f).collect(),
                }
            };
            let out = match pool {
                Some(pool) => pool.install(collect),
                None => collect(),
            };
            drain(start, out.into_iter(), None)
        }
        Contender::Naive => {
            let buffer = job.buffer.unwrap_or(DEFAULT_BUFFER);
            drain(start, naive(source, f, buffer, pool.cloned()), job.take)
        }
    }
}
