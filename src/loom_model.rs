//! A harness for `tests/loom.rs`: the real protocol (`ring.rs`, `feeder.rs`, `consumer.rs`)
//! with loom threads in place of the feeder's OS thread and rayon's workers.
//!
//! [`start`] builds the shared state, spawns the feeder on a loom thread, and has the feeder
//! start each runner (`Shared::run_jobs`) on a loom thread of its own, as `map.rs` does on
//! rayon. The returned [`Run`] is the consumer: an iterator over `Consumer::next_until(None)`.
//! Compiled only under `--cfg lazy_par_map_loom`.

use crate::consumer::{Consumer, Got};
use crate::feeder::{Batching, Feeder};
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

/// A started adapter: the consumer's end, and the feeder's and runners' loom threads.
pub struct Run<T, R, F> {
    /// `None` once dropped by [`Run::join`].
    consumer: Option<Consumer<T, R, F>>,
    /// The feeder thread.
    feeder: Option<JoinHandle<()>>,
    /// The runner threads, pushed by the feeder as it starts them.
    runners: Threads,
}

/// Starts the adapter over `source` and `f`: the feeder runs at once on a loom thread.
pub fn start<I, F, R>(source: I, f: F, config: Config) -> Run<I::Item, R, F>
where
    I: Iterator + Send + 'static,
    I::Item: Send + 'static,
    F: MapFn<I::Item, Output = R> + Send + Sync + 'static,
    R: Send + 'static,
{
    let (mut feeder, shared) = Feeder::adaptive(source, |queue| {
        let mut shared = Shared::new(f, queue, config.cap, config.ordered, None, config.inline);
        shared.loom_batch = config.batch as usize;
        shared
    });
    feeder.batching = Batching::fixed(config.batch);
    let runners: Threads = Arc::new(Mutex::new(Vec::new()));
    let started = Arc::clone(&runners);
    let threads = config.max_runners;
    let feeder = thread::spawn(move || {
        feeder.run(threads, |shared| {
            let runner = thread::spawn(move || shared.run_jobs());
            started.lock().unwrap().push(runner);
        });
    });
    Run {
        consumer: Some(Consumer::new(shared, crate::pool::Pool::Global)),
        feeder: Some(feeder),
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

    /// [`close`](Run::close)s, then waits for the feeder and every runner to return.
    pub fn join(mut self) {
        self.close();
        if let Some(feeder) = self.feeder.take() {
            feeder.join().unwrap();
        }
        // The feeder has returned: it starts no more runners.
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
