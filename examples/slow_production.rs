//! The seed's "finite input, slow production": a source that needs 20 ms per item, a
//! `square` that needs 100 ms, and a consumer that wants the first 10 results.
//!
//! ```text
//! cargo run --release --example slow_production
//! ```
//!
//! The seed's arithmetic: read in the background, the source and `square` overlap, so the
//! first 10 take 10 x 20 ms + 100 ms = 0.3 s; a sequential `map` takes 10 x (20 + 100) ms =
//! 1.2 s. (Python's `ThreadPoolExecutor().map` would first read all 100 items: 2 s, then
//! 0.1 s more. `lazy_par_map` never reads the source on the consumer's thread, so the
//! consumer is not held up by it.)

use lazy_par_map::prelude::*;
use std::thread::sleep;
use std::time::{Duration, Instant};

const PRODUCE: Duration = Duration::from_millis(20);
const SQUARE: Duration = Duration::from_millis(100);
const TAKE: usize = 10;

/// The seed's `produce()`: 100 items, each 20 ms in the making.
fn produce() -> impl Iterator<Item = u64> + Send + 'static {
    (0..100).inspect(|_| sleep(PRODUCE))
}

fn square(x: u64) -> u64 {
    sleep(SQUARE);
    x * x
}

fn main() {
    // `square` waits, so use more threads than cores (the seed's executor used 5 x cores).
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(16)
        .build()
        .expect("could not build the thread pool");

    let started = Instant::now();
    // A new item arrives every 20 ms and stays 100 ms in `square`, so about 5 are in
    // flight at once; a buffer of 5 would just keep up, 16 leaves slack for jitter.
    let mut squares = produce().lazy_par_map(square).pool(pool).buffer(16);
    let first: Vec<u64> = squares.by_ref().take(TAKE).collect();
    let lazy = started.elapsed();
    println!("lazy_par_map: {first:?} in {:.2} s", lazy.as_secs_f64());
    let stats = squares.stats();
    println!(
        "              taken {} of 100, consumer waited {:.2} s, feeder waited {:.2} s",
        stats.taken,
        stats.consumer_waited.as_secs_f64(),
        stats.feeder_waited.as_secs_f64()
    );
    drop(squares);

    let started = Instant::now();
    let first_seq: Vec<u64> = produce().map(square).take(TAKE).collect();
    let sequential = started.elapsed();
    println!(
        "map:          {first_seq:?} in {:.2} s",
        sequential.as_secs_f64()
    );
    assert_eq!(
        first, first_seq,
        "both must give the same results in the same order"
    );

    println!(
        "expected 0.3 s vs 1.2 s; measured {:.2} s vs {:.2} s: lazy_par_map is {:.1}x faster",
        lazy.as_secs_f64(),
        sequential.as_secs_f64(),
        sequential.as_secs_f64() / lazy.as_secs_f64()
    );
}
