//! The seed's "infinite input, instantaneous production": map a slow `square` over `0..`.
//!
//! ```text
//! cargo run --release --example infinite [N]
//! ```
//!
//! Python's `ThreadPoolExecutor().map(square, count())` hangs: it reads the whole (infinite)
//! input before returning. The built-in `map(square, count())` does not hang but runs one
//! item at a time. `lazy_par_map` does neither: building it returns at once, and the first
//! `N` squares take about `N / threads` rounds of 100 ms.

use lazy_par_map::prelude::*;
use std::sync::Arc;
use std::thread::sleep;
use std::time::{Duration, Instant};

/// The seed's `square`: 100 ms of waiting (think of a network call), then the result.
fn square(x: u64) -> u64 {
    sleep(Duration::from_millis(100));
    x * x
}

fn main() {
    let n: usize = match std::env::args().nth(1) {
        Some(arg) => arg.parse().unwrap_or_else(|_| {
            eprintln!("usage: infinite [N]  (N, the number of squares to take, must be a number)");
            std::process::exit(2);
        }),
        None => 48,
    };

    // `square` waits rather than computes, so more threads than cores pay off. The seed's
    // ThreadPoolExecutor (Python 3.5-3.7) defaulted to 5 x cores threads for the same
    // reason; rayon's global pool has one thread per core, right for CPU work, too few here.
    let threads = 16;
    let pool = Arc::new(
        rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .thread_name(|i| format!("square-{i}"))
            .build()
            .expect("could not build the thread pool"),
    );

    let built = Instant::now();
    let mut squares = (0u64..)
        .lazy_par_map(square)
        .pool(Arc::clone(&pool))
        // A few times the threads: enough to keep all 16 busy, and at most 64 squares
        // computed that nobody asks for.
        .buffer(4 * threads);
    let build_time = built.elapsed();
    println!(
        "building the adapter over 0.. took {build_time:?}: nothing runs until the first next()"
    );

    let started = Instant::now();
    let first: Vec<u64> = squares.by_ref().take(n).collect();
    let elapsed = started.elapsed();
    println!("first {n} squares: {first:?}");

    let stats = squares.stats();
    let sequential = Duration::from_millis(100) * n as u32;
    println!(
        "took {:.2} s on {threads} threads; a sequential map needs {n} x 100 ms = {:.1} s \
         ({:.1}x longer)",
        elapsed.as_secs_f64(),
        sequential.as_secs_f64(),
        sequential.as_secs_f64() / elapsed.as_secs_f64(),
    );
    println!(
        "taken from 0..: {} (returned {}, in flight {} <= buffer {})",
        stats.taken,
        stats.yielded,
        stats.in_flight,
        4 * threads
    );

    // Dropping stops the feeder; squares already running finish in the background, and
    // the ones not started are skipped.
    let dropped = Instant::now();
    drop(squares);
    println!("dropping the adapter took {:?}", dropped.elapsed());
}
