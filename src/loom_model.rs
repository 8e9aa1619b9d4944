//! A harness for `tests/loom.rs`: the real protocol (`ring.rs`, `feeder.rs`, `feeding.rs`,
//! `consumer.rs`) with loom threads in place of the feeding threads and rayon's workers.
//!
//! [`start`] builds the shared state, submits the feeder's first turn to a set of feeding
//! threads of its own (loom threads), and has the feeder start each runner
//! (`Shared::run_jobs`) on a loom thread of its own, as `map.rs` does on rayon. The returned [`Run`] is the consumer: an iterator over `Consumer::next_until(None)`.
//! Compiled only under `--cfg lazy_par_map_loom`.

use crate::consumer::{Consumer, Got};
use crate::feeder::{Batching, Feeder, Turns};
use crate::feeding::Feeding;
use crate::mapper::MapFn;
use crate::ring::Shared;
use crate::sync::Arc;
use loom::sync::Mutex;
use loom::thread::{self, JoinHandle};
use std::fmt;

/// How a model configures the adapter.
#[derive(Clone, Copy, Debug)]
pub struct Config {
    /// Slots (`buffer(cap)`); `u64::MAX` is unbounded.
    pub cap: u64,
    /// Input order (`true`) or completion order.
    pub ordered: bool,
    /// Runners allowed at once (the pool's thread count).
    pub max_runners: usize,
    /// Items per refill (`Batching::fixed`) and per runner batch.
    pub batch: u64,
    /// No pool hop (`readahead`): the feeder hands items to the consumer itself.
    pub inline: bool,
}

/// The loom threads a run has started, joined by [`Run::join`].
type Threads = Arc<Mutex<Vec<JoinHandle<()>>>>;

/// A started adapter: the consumer's end, the feeding threads and the runners' loom threads.
pub struct Run<T, R, F> {
    /// `None` once dropped by [`Run::join`].
    consumer: Option<Consumer<T, R, F>>,
    /// The model's own set of feeding threads (loom threads).
    feeding: std::sync::Arc<Feeding>,
    /// The runner threads, pushed by the feeder as it starts them.
    runners: Threads,
}

/// A set of feeding threads (loom threads) that several adapters of a model can share.
#[derive(Clone)]
pub struct FeedingThreads(std::sync::Arc<Feeding>);

impl FeedingThreads {
    /// A new set, with no thread yet.
    #[allow(clippy::new_without_default)]
    pub fn new() -> Self {
        FeedingThreads(std::sync::Arc::new(Feeding::new()))
    }

    /// Lets the threads exit once no turn is queued, and joins them: afterwards every turn
    /// submitted so far has run (a turn submitted later spawns a thread that runs it and
    /// exits; [`FeedingThreads::settle`] again joins it).
    pub fn settle(&self) {
        self.0.shut_down();
    }
}

impl fmt::Debug for FeedingThreads {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FeedingThreads").finish_non_exhaustive()
    }
}

/// Starts the adapter over `source` and `f`: the feeder's first turn is submitted to a set
/// of feeding threads of the model's own.
pub fn start<I, F, R>(source: I, f: F, config: Config) -> Run<I::Item, R, F>
where
    I: Iterator + Send + 'static,
    I::Item: Send + 'static,
    F: MapFn<I::Item, Output = R> + Send + Sync + 'static,
    R: Send + 'static,
{
    start_on(source, f, config, &FeedingThreads::new())
}

/// [`start`] on a set of feeding threads that other adapters may share.
pub fn start_on<I, F, R>(
    source: I,
    f: F,
    config: Config,
    feeding: &FeedingThreads,
) -> Run<I::Item, R, F>
where
    I: Iterator + Send + 'static,
    I::Item: Send + 'static,
    F: MapFn<I::Item, Output = R> + Send + Sync + 'static,
    R: Send + 'static,
{
    let runners: Threads = Arc::new(Mutex::new(Vec::new()));
    let started = Arc::clone(&runners);
    let start_runner = move |shared: Arc<Shared<I::Item, R, F>>| {
        let runner = thread::spawn(move || Shared::run_jobs(&shared));
        started.lock().unwrap().push(runner);
    };
    let (mut feeder, shared) = Feeder::adaptive(
        source,
        config.cap,
        |queue| {
            let mut shared = Shared::new(f, queue, config.cap, config.ordered, None, config.inline);
            shared.loom_batch = config.batch as usize;
            shared
        },
        Some(config.max_runners),
        start_runner,
    );
    feeder.batching = Batching::fixed(config.batch);
    let feeding = std::sync::Arc::clone(&feeding.0);
    Turns::start(feeder, &feeding);
    Run {
        consumer: Some(Consumer::new(shared, crate::pool::Pool::Global)),
        feeding,
        runners,
    }
}

impl<T, R, F> Run<T, R, F>
where
    F: MapFn<T, Output = R>,
{
    /// Drops the consumer's end, as dropping the adapter does; the threads go on.
    pub fn close(&mut self) {
        drop(self.consumer.take());
    }

    /// Items the source has returned so far (`stats().taken`), once the feeder's turns have
    /// run: see [`FeedingThreads::settle`].
    pub fn taken(&self) -> u64 {
        let consumer = self.consumer.as_ref().expect("not closed");
        consumer
            .shared
            .taken
            .0
            .load(std::sync::atomic::Ordering::Relaxed)
    }

    /// [`close`](Run::close)s, then waits for the feeding threads (once they have run every
    /// turn) and every runner to return.
    pub fn join(mut self) {
        self.close();
        self.feeding.shut_down();
        // The feeder has ended: it starts no more runners.
        let runners = std::mem::take(&mut *self.runners.lock().unwrap());
        for runner in runners {
            runner.join().unwrap();
        }
    }
}

impl<T, R, F> Iterator for Run<T, R, F>
where
    F: MapFn<T, Output = R>,
{
    type Item = R;

    /// `LazyParMap::next`: waits for the next result; re-raises a panic of `f` or the source.
    fn next(&mut self) -> Option<R> {
        match self.consumer.as_mut()?.next_until(None) {
            Got::Item(item) => Some(item),
            Got::NotReady | Got::Finished => None,
        }
    }
}

impl<T, R, F> fmt::Debug for Run<T, R, F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Run")
            .field("consumer", &self.consumer.is_some())
            .finish_non_exhaustive()
    }
}
