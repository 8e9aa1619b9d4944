//! The seed's pipeline: download pages, count a word in each, upload the counts; three
//! `lazy_par_map` stages, each with `buffer(1)`, each feeding the next.
//!
//! ```text
//! cargo run --release --example pipeline
//! ```
//!
//! How far does a paused pipeline run ahead? The crate's contract: when the consumer has
//! taken `c` results and pauses, a stage with `buffer(n)` has taken exactly `c + n` items
//! from the stage before it, so the stage `j` from the end has called its `f` `c + j*n`
//! times. With `n = 1`: after `.start()` and no result taken (`c = 0`), upload, count and
//! download have run 1, 2 and 3 times; after taking 2 results (`c = 2`), 3, 4 and 5 times.
//!
//! The seed's prose counts differently ("2 waiting per stage": upload 2, count 4,
//! download 6), because its Python queue holds `buffer_size` items plus one more in the
//! thread blocked on `Queue.put`. Here the bound is exact: a slot is claimed before the
//! item is pulled, so no item hides outside the count.

use lazy_par_map::prelude::*;
use std::sync::atomic::{AtomicUsize, Ordering::Relaxed};
use std::sync::Arc;
use std::thread::sleep;
use std::time::{Duration, Instant};

/// How many times each stage's `f` has been called.
static DOWNLOADED: AtomicUsize = AtomicUsize::new(0);
static COUNTED: AtomicUsize = AtomicUsize::new(0);
static UPLOADED: AtomicUsize = AtomicUsize::new(0);

/// Stands in for an HTTP GET: 30 ms, then a page that mentions "rust" a few times.
fn download(url: String) -> (String, String) {
    DOWNLOADED.fetch_add(1, Relaxed);
    sleep(Duration::from_millis(30));
    let mentions = url.bytes().map(usize::from).sum::<usize>() % 5;
    let page = "rust is fast; ".repeat(mentions) + "python is friendly";
    (url, page)
}

/// Counts the word in the page: 10 ms of parsing.
fn count_word((url, page): (String, String)) -> (String, usize) {
    COUNTED.fetch_add(1, Relaxed);
    sleep(Duration::from_millis(10));
    let count = page
        .split(|c: char| !c.is_alphanumeric())
        .filter(|w| *w == "rust")
        .count();
    (url, count)
}

/// Stands in for a POST to an echo server: 30 ms, then the server's reply.
fn upload((url, count): (String, usize)) -> String {
    UPLOADED.fetch_add(1, Relaxed);
    sleep(Duration::from_millis(30));
    format!("{{\"url\": \"{url}\", \"rust\": {count}}}")
}

/// Each stage's calls so far, from the last stage to the first (`j = 1, 2, 3`).
fn observed() -> [usize; 3] {
    [
        UPLOADED.load(Relaxed),
        COUNTED.load(Relaxed),
        DOWNLOADED.load(Relaxed),
    ]
}

/// The contract's count for a pipeline paused after `c` results: `c + j*n`.
fn expected(c: usize, n: usize) -> [usize; 3] {
    [c + n, c + 2 * n, c + 3 * n]
}

/// Waits until the paused pipeline has settled (or `limit` passes), then a little longer
/// to show that it does not run further.
fn settle(want: [usize; 3], limit: Duration) -> [usize; 3] {
    let deadline = Instant::now() + limit;
    while observed() != want && Instant::now() < deadline {
        sleep(Duration::from_millis(5));
    }
    sleep(Duration::from_millis(200));
    observed()
}

fn report(when: &str, c: usize, n: usize) -> bool {
    let want = expected(c, n);
    let got = settle(want, Duration::from_secs(5));
    println!("{when} (c = {c}, n = {n}):");
    for (j, (stage, (w, g))) in ["upload", "count_word", "download"]
        .iter()
        .zip(want.iter().zip(&got))
        .enumerate()
    {
        let mark = if w == g { "ok" } else { "MISMATCH" };
        println!(
            "  {stage:>10} (j = {}): expected c + j*n = {w}, observed {g}  {mark}",
            j + 1
        );
    }
    want == got
}

fn main() {
    const N: usize = 1;
    // One pool for the three stages; they mostly wait, so give it more threads than cores.
    let pool = Arc::new(
        rayon::ThreadPoolBuilder::new()
            .num_threads(8)
            .build()
            .expect("could not build the thread pool"),
    );

    let urls = (0..).map(|i| format!("https://example.com/repos/{i}"));
    let pages = urls
        .lazy_par_map(download)
        .pool(Arc::clone(&pool))
        .buffer(N);
    let counts = pages
        .lazy_par_map(count_word)
        .pool(Arc::clone(&pool))
        .buffer(N);
    // `start()` runs the pipeline in the background while the main thread does other
    // work. Starting the last stage starts the others: its feeder pulls from them.
    let mut upload_results = counts
        .lazy_par_map(upload)
        .pool(Arc::clone(&pool))
        .buffer(N)
        .start();

    // "Do some other work in the main thread for a while."
    sleep(Duration::from_millis(300));
    let mut ok = report("after start() and other work, nothing taken yet", 0, N);

    let started = Instant::now();
    let first_2: Vec<String> = upload_results.by_ref().take(2).collect();
    let took = started.elapsed();
    // buffer(1) keeps one finished upload waiting: the first result is there at once, the
    // second needs one more upload (30 ms), which the first `next()` set going.
    println!(
        "took 2 results in {:.0} ms (one was ready, one more upload ran):",
        took.as_secs_f64() * 1e3
    );
    for result in &first_2 {
        println!("  {result}");
    }
    ok &= report("after taking 2", 2, N);

    drop(upload_results);
    if !ok {
        eprintln!("the observed counts differ from the contract's formula");
        std::process::exit(1);
    }
}
