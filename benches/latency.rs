//! Latency: the seed's slow-source case and the time to the first result.
//!
//! - `slowsrc`: the source sleeps 20 ms per item, `f` sleeps 100 ms, 10 results are taken,
//!   on a 16-thread pool with buffer 16 for every bounded contender. Ideal: the tenth
//!   item is read at 200 ms and mapped by 300 ms, so 0.3 s.
//! - `first`: build the iterator over a 1,000,000-item source with a 1 ms (sleeping) `f`
//!   and take the first result; ideal 1 ms. `par_bridge` is eager (it would map all
//!   million items first) and is left out.
//!
//! Both run on a fresh pool per sample, built outside the timed region: work a dropped
//! iterator leaves behind must not delay the next sample. The iterator is dropped after the
//! clock stops; a drop slower than 5 ms is flagged in the summary.
//!
//! `cargo bench --bench latency`; the summary is merged into `target/bench-summary.jsonl`.

mod common;

use common::{Contender, Ideal, Job, PoolSpec, Summary, Workload};
use std::time::Duration;

fn main() {
    let mut c = common::criterion();
    let mut summary = Summary::new("latency");

    let mut job = Job::new(
        || (0u64..).inspect(|_| std::thread::sleep(Duration::from_millis(20))),
        |x| common::nap(x, Duration::from_millis(100)),
    );
    job.pool = PoolSpec::Fresh(16);
    job.take = Some(10);
    job.buffer = Some(16);
    common::measure(
        &mut c,
        &mut summary,
        &Workload::new("slowsrc", 10, Ideal::Fixed(Duration::from_millis(300)))
            .measurement(Duration::from_secs(1))
            .note("pool of 16, buffer 16"),
        &job,
        &[
            Contender::Seq,
            Contender::LpmDefault,
            Contender::Pariter,
            Contender::ParBridge,
            Contender::Naive,
        ],
    );

    let mut job = Job::new(
        || 0..1_000_000u64,
        |x| common::nap(x, Duration::from_millis(1)),
    );
    job.pool = PoolSpec::Fresh(rayon::current_num_threads());
    job.take = Some(1);
    common::measure(
        &mut c,
        &mut summary,
        &Workload::new("first", 1, Ideal::Fixed(Duration::from_millis(1)))
            .measurement(Duration::from_millis(500))
            .note("1e6-item source, sleep 1 ms"),
        &job,
        &[
            Contender::Seq,
            Contender::LpmDefault,
            Contender::LpmTuned,
            Contender::Pariter,
            Contender::Naive,
        ],
    );

    c.final_summary();
    summary.finish();
}
