//! Our adapters as async streams on tokio: several consumed in spawned tasks at once, one
//! under `tokio::time::timeout`, and the fallible form, which ends at its first `Err`.
//!
//! ```text
//! cargo run --release --features stream --example tokio_streams
//! ```
//!
//! `into_stream()` gives a `Stream` that is not also an `Iterator`, so with
//! `futures::StreamExt` in scope `s.next().await` and `s.collect().await` need no path. `f`
//! runs on rayon's pool, never on tokio's workers: a poll only looks for a ready result and
//! registers the task's waker, so a slow `f` never blocks the runtime.

use futures::StreamExt;
use lazy_par_map::prelude::*;
use std::time::{Duration, Instant};

/// A CPU-bound `f`: `x * x` after about `micros` µs of spinning.
fn busy(x: u64, micros: u64) -> u64 {
    let until = Instant::now() + Duration::from_micros(micros);
    while Instant::now() < until {
        std::hint::spin_loop();
    }
    x * x
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let started = Instant::now();

    // 1. Four streams consumed at once in spawned tasks: the maps share rayon's pool, the
    //    tasks share tokio's two workers, and every stream keeps its own input order.
    let tasks: Vec<_> = (1..=4u64)
        .map(|k| {
            tokio::spawn(async move {
                let mut squares = (0..500u64)
                    .lazy_par_map(move |x| busy(x * k, 20))
                    .buffer(64)
                    .into_stream();
                let (mut count, mut sum, mut last) = (0u64, 0u64, None);
                while let Some(y) = squares.next().await {
                    assert!(last < Some(y), "out of order");
                    (count, sum, last) = (count + 1, sum + y, Some(y));
                }
                (k, count, sum)
            })
        })
        .collect();
    for task in tasks {
        let (k, count, sum) = task.await.expect("a task panicked");
        let want: u64 = (0..500u64).map(|x| (x * k) * (x * k)).sum();
        assert_eq!(sum, want);
        println!("task {k}: {count} squares of multiples of {k}, in order, sum {sum}");
    }
    println!("4 streams in spawned tasks: {:.2?}", started.elapsed());

    // 2. A slow stream under a timeout: each item takes 100 ms, we give it 30 ms. The
    //    timeout drops the `next()` future, not the stream, which goes on afterwards.
    let mut slow = (0..3u64)
        .lazy_par_map(|x| {
            std::thread::sleep(Duration::from_millis(100));
            x
        })
        .buffer(3)
        .into_stream();
    let waited = Instant::now();
    match tokio::time::timeout(Duration::from_millis(30), slow.next()).await {
        Err(_) => println!(
            "timeout: no item within 30 ms (after {:.0?}), the stream goes on",
            waited.elapsed()
        ),
        Ok(item) => println!("timeout: got {item:?} within 30 ms, unexpectedly soon"),
    }
    let rest = tokio::time::timeout(Duration::from_secs(10), slow.collect::<Vec<_>>()).await;
    let rest = rest.expect("the slow stream took more than 10 s");
    assert_eq!(rest, [0, 1, 2]);
    println!(
        "timeout: then every item, {rest:?}, {:.0?} after the first wait began",
        waited.elapsed()
    );

    // 3. The fallible form: `Ok`s in order, the first `Err`, then the end. Nothing after
    //    the `Err` is returned, and the source is not read further.
    let lines = ["10", "20", "thirty", "40"];
    let parsed: Vec<_> = lines
        .into_iter()
        .try_lazy_par_map(str::parse::<u32>)
        .into_stream()
        .collect()
        .await;
    println!("fallible: {lines:?} gives {parsed:?}");
    assert_eq!(parsed.len(), 3);
    assert!(parsed[2].is_err());

    println!("done in {:.2?}", started.elapsed());
}
