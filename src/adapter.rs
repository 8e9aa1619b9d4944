//! The engine behind every public adapter: configuration before start, the consumer after,
//! `size_hint`, `stats`. The public types ([`LazyParMap`](crate::LazyParMap),
//! [`ScopedLazyParMap`](crate::ScopedLazyParMap)) differ only in how they launch the feeder.

use crate::consumer::{Consumer, Got};
use crate::error::{NextTimeoutError, TryNextError};
use crate::mapper::MapFn;
use crate::pool::Pool;
use crate::queue::Queue;
use crate::ring::Shared;
use crate::stats::Stats;
use std::fmt;
use std::sync::atomic::Ordering::Relaxed;
use std::time::{Duration, Instant};

/// The number of slots when [`LazyParMap::buffer`](crate::LazyParMap::buffer) is not called.
///
/// Chosen from `cargo bench` on 2 cores (the README's table): with 1024 slots, an `f` of
/// about 0.5 µs or more runs about as fast as with larger buffers (1.87× sequential against
/// 1.91× with 16384 slots), the first result comes soonest, and at most 1024 items are
/// held. An `f` of a few nanoseconds wants a larger buffer (0.21× to 0.28× sequential at
/// 1024, 0.42× at 16384), since a runner's batch holds at most a quarter of the buffer on 2
/// threads.
pub const DEFAULT_BUFFER: usize = 1024;

/// What `start` needs besides the source and `f`.
pub(crate) struct Config<R> {
    /// Slots; `None` is unbounded.
    pub(crate) buffer: Option<usize>,
    pub(crate) pool: Pool,
    pub(crate) ordered: bool,
    /// A result that ends the stream after itself (the fallible form's `Err`).
    pub(crate) stop_when: Option<fn(&R) -> bool>,
    /// No pool hop: the feeder hands items to the consumer itself (`readahead`).
    pub(crate) inline: bool,
}

impl<R> Config<R> {
    /// The ring's capacity in items.
    pub(crate) fn cap(&self) -> u64 {
        self.buffer.map_or(u64::MAX, |n| n as u64)
    }

    /// The shared state for this configuration, around the runners' end of the item queue.
    pub(crate) fn shared<T, F>(&self, f: F) -> impl FnOnce(Queue<T>) -> Shared<T, R, F> {
        let (cap, ordered, stop_when, inline) =
            (self.cap(), self.ordered, self.stop_when, self.inline);
        move |queue| Shared::new(f, queue, cap, ordered, stop_when, inline)
    }
}

enum State<I, F, R>
where
    I: Iterator,
{
    /// Configured, not started: the source and `f` are still here.
    Idle { source: I, f: F, config: Config<R> },
    /// Started: the feeder owns the source; the pool's runners share `f`.
    Running(Consumer<I::Item, R, F>),
    /// Starting failed (no thread could be spawned for the feeder).
    Failed,
}

/// An adapter, idle or running.
pub(crate) struct Adapter<I, F, R>
where
    I: Iterator,
{
    state: State<I, F, R>,
    /// The source's `size_hint` when the adapter was built.
    hint: (usize, Option<usize>),
}

impl<I, F, R> Adapter<I, F, R>
where
    I: Iterator,
    F: MapFn<I::Item, Output = R>,
{
    pub(crate) fn new(source: I, f: F, stop_when: Option<fn(&R) -> bool>) -> Self {
        let hint = source.size_hint();
        Adapter {
            state: State::Idle {
                source,
                f,
                config: Config {
                    buffer: Some(DEFAULT_BUFFER),
                    pool: Pool::Global,
                    ordered: true,
                    stop_when,
                    inline: false,
                },
            },
            hint,
        }
    }

    /// The configuration, for a builder method named `method`.
    #[track_caller]
    pub(crate) fn config(&mut self, method: &str) -> &mut Config<R> {
        match &mut self.state {
            State::Idle { config, .. } => config,
            _ => panic!(
                "lazy_par_map: `{method}` called after the adapter started; \
                 configure it before `start()` or the first `next()`"
            ),
        }
    }

    /// `buffer(n)` of the public adapters.
    #[track_caller]
    pub(crate) fn set_buffer(&mut self, n: usize) {
        assert!(
            n != 0,
            "lazy_par_map: `buffer(0)`: the buffer must hold at least one item"
        );
        self.config("buffer").buffer = Some(n);
    }

    /// `unbounded()` of the public adapters.
    #[track_caller]
    pub(crate) fn set_unbounded(&mut self) {
        self.config("unbounded").buffer = None;
    }

    /// `unordered()` of the public adapters.
    #[track_caller]
    pub(crate) fn set_unordered(&mut self) {
        self.config("unordered").ordered = false;
    }

    /// Starts the adapter with `launch` if it has not started, and returns the consumer.
    pub(crate) fn running(
        &mut self,
        launch: impl FnOnce(I, F, Config<R>) -> Consumer<I::Item, R, F>,
    ) -> &mut Consumer<I::Item, R, F> {
        if let State::Idle { .. } = self.state {
            let State::Idle { source, f, config } =
                std::mem::replace(&mut self.state, State::Failed)
            else {
                unreachable!()
            };
            self.state = State::Running(launch(source, f, config));
        }
        match &mut self.state {
            State::Running(consumer) => consumer,
            _ => panic!("lazy_par_map: the adapter failed to start earlier"),
        }
    }

    #[inline]
    pub(crate) fn next(
        &mut self,
        launch: impl FnOnce(I, F, Config<R>) -> Consumer<I::Item, R, F>,
    ) -> Option<R> {
        let consumer = match &mut self.state {
            State::Running(consumer) => consumer,
            _ => self.running(launch),
        };
        match consumer.next_until(None) {
            Got::Item(item) => Some(item),
            Got::NotReady | Got::Finished => None,
        }
    }

    pub(crate) fn try_next(
        &mut self,
        launch: impl FnOnce(I, F, Config<R>) -> Consumer<I::Item, R, F>,
    ) -> Result<R, TryNextError> {
        match self.running(launch).next_until(Some(Instant::now())) {
            Got::Item(item) => Ok(item),
            Got::NotReady => Err(TryNextError::NotReady),
            Got::Finished => Err(TryNextError::Finished),
        }
    }

    pub(crate) fn next_timeout(
        &mut self,
        timeout: Duration,
        launch: impl FnOnce(I, F, Config<R>) -> Consumer<I::Item, R, F>,
    ) -> Result<R, NextTimeoutError> {
        let deadline = Instant::now().checked_add(timeout);
        match self.running(launch).next_until(deadline) {
            Got::Item(item) => Ok(item),
            Got::NotReady => Err(NextTimeoutError::Timeout),
            Got::Finished => Err(NextTimeoutError::Finished),
        }
    }

    #[cfg(feature = "stream")]
    pub(crate) fn poll_next(
        &mut self,
        waker: &std::task::Waker,
        launch: impl FnOnce(I, F, Config<R>) -> Consumer<I::Item, R, F>,
    ) -> std::task::Poll<Option<R>> {
        match self.running(launch).poll_next(waker) {
            Some(item) => std::task::Poll::Ready(item),
            None => std::task::Poll::Pending,
        }
    }

    /// Ends the adapter early (the fallible form's first `Err`). Idempotent.
    pub(crate) fn finish(&mut self) {
        if let State::Running(consumer) = &mut self.state {
            consumer.finish();
        }
    }
}

impl<I, F, R> Adapter<I, F, R>
where
    I: Iterator,
{
    pub(crate) fn stats(&self) -> Stats {
        match &self.state {
            State::Running(consumer) => {
                let shared = &consumer.shared;
                let taken = shared.taken.0.load(Relaxed);
                let yielded = consumer.yielded;
                // An ended adapter holds nothing: items taken and never returned (after a
                // panic or an `Err`) were skipped or dropped.
                let in_flight = if consumer.done {
                    0
                } else {
                    taken.saturating_sub(yielded)
                };
                Stats {
                    taken,
                    yielded,
                    in_flight,
                    consumer_waited: consumer.waited,
                    feeder_waited: Duration::from_nanos(shared.feeder_wait_nanos.load(Relaxed)),
                }
            }
            _ => Stats::default(),
        }
    }

    /// The source's hint at build time minus what was returned; zero once finished.
    pub(crate) fn size_hint(&self) -> (usize, Option<usize>) {
        let yielded = match &self.state {
            State::Running(consumer) if consumer.done => return (0, Some(0)),
            State::Running(consumer) => consumer.yielded as usize,
            State::Idle { .. } => 0,
            State::Failed => return (0, Some(0)),
        };
        let (low, high) = self.hint;
        (
            low.saturating_sub(yielded),
            high.map(|high| high.saturating_sub(yielded)),
        )
    }

    /// `Debug` fields, leaving closures out.
    pub(crate) fn debug(&self, name: &str, f: &mut fmt::Formatter<'_>) -> fmt::Result
    where
        I: fmt::Debug,
    {
        let mut d = f.debug_struct(name);
        match &self.state {
            State::Idle { source, config, .. } => d
                .field("source", source)
                .field("buffer", &config.buffer)
                .field("pool", &config.pool)
                .field("ordered", &config.ordered)
                .field("started", &false),
            State::Running(consumer) => d
                .field("buffer", &consumer.shared.cap)
                .field("yielded", &consumer.yielded)
                .field("held", &consumer.held())
                .field("finished", &consumer.done)
                .field("started", &true),
            State::Failed => d.field("failed", &true),
        };
        d.finish_non_exhaustive()
    }
}
