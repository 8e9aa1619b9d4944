//! The first result of a long `f` on a pool with a thread per core: while `f` is untimed,
//! after an adapter whose `f` was slow, an ordered adapter holds one runner back (so that a
//! core is free for the consumer when the first result is ready). These are the ways that
//! could go wrong, each a shape users bring: an `f` that waits for another item's `f`, a
//! source that fits in the buffer (no later push to start the runner held back), and
//! `start()` with no call after it. One test in this file, so that no other test's adapter
//! changes the process's latest measure of `f` meanwhile.

mod common;

use common::{eventually, guarded, pool, SETTLE};
use lazy_par_map::prelude::*;
use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Makes the process's latest adapter one with a slow `f` (and lets the process learn its
/// cores), so that the next adapter holds a runner back.
fn after_a_slow_adapter() {
    let slow = (0..4u64)
        .lazy_par_map(|x| {
            std::thread::sleep(Duration::from_millis(2));
            x
        })
        .count();
    assert_eq!(slow, 4);
}

/// Counts the calls of `f` in flight and the most at once.
#[derive(Default)]
struct InFlight {
    now: AtomicUsize,
    peak: AtomicUsize,
}

impl InFlight {
    fn enter(&self) {
        let now = self.now.fetch_add(1, SeqCst) + 1;
        self.peak.fetch_max(now, SeqCst);
    }
    fn leave(&self) {
        self.now.fetch_sub(1, SeqCst);
    }
}

#[test]
fn a_runner_held_back_for_the_first_result_never_holds_up_the_rest() {
    let cores = std::thread::available_parallelism().map_or(1, usize::from);
    if cores < 2 {
        return;
    }
    guarded(move || {
        // 1. Item 0's `f` waits until item 1's `f` has started: with a runner held back
        // forever, item 1 would never start on a pool of 2.
        after_a_slow_adapter();
        let started = Arc::new(AtomicUsize::new(0));
        let seen = Arc::clone(&started);
        let waited = Instant::now();
        let got: Vec<bool> = (0..16u64)
            .lazy_par_map(move |i| {
                seen.fetch_add(1, SeqCst);
                i != 0 || eventually(|| seen.load(SeqCst) >= 2, SETTLE)
            })
            .pool(pool(cores))
            .collect();
        assert!(
            got.iter().all(|&ok| ok),
            "item 0's f never saw item 1's start"
        );
        assert!(waited.elapsed() < SETTLE, "it took {:?}", waited.elapsed());

        // 2. A source that fits in the buffer is pushed whole in the first turn; the runner
        // held back must still start once `f` is timed.
        after_a_slow_adapter();
        let flight = Arc::new(InFlight::default());
        let in_f = Arc::clone(&flight);
        let n = 4 * cores as u64;
        let sum: u64 = (0..n)
            .lazy_par_map(move |i| {
                in_f.enter();
                std::thread::sleep(Duration::from_millis(20));
                in_f.leave();
                i
            })
            .pool(pool(cores))
            .sum();
        assert_eq!(sum, n * (n - 1) / 2);
        assert_eq!(
            flight.peak.load(SeqCst),
            cores,
            "every pool thread ran f once it was timed"
        );

        // 3. `start()`, then no call: `f` never returns until the gate opens, so only the
        // timer can let the runner held back go.
        after_a_slow_adapter();
        let gate = common::Gate::new();
        let entered = Arc::new(AtomicUsize::new(0));
        let (in_f, entered_f) = (Arc::clone(&gate), Arc::clone(&entered));
        let it = (0..64u64)
            .lazy_par_map(move |i| {
                entered_f.fetch_add(1, SeqCst);
                in_f.wait(SETTLE * 2);
                i
            })
            .buffer(4 * cores)
            .pool(pool(cores))
            .start();
        assert!(
            eventually(|| entered.load(SeqCst) >= cores, SETTLE),
            "{} of {cores} pool threads in f",
            entered.load(SeqCst)
        );
        gate.open();
        assert_eq!(it.count(), 64);
    });
}
