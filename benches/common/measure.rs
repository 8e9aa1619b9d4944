//! A watchdog against hangs, and measuring a workload: one criterion group, every run
//! recorded for the summary.

use super::{run, Check, Contender, Job, Row, Summary};
use criterion::{Criterion, SamplingMode, Throughput};
use std::cell::OnceCell;
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

static ARMED: Mutex<Option<(String, Instant)>> = Mutex::new(None);

/// Exits the process (code 3) if one run lasts longer than `LPM_BENCH_WATCHDOG_S` seconds
/// (default 180): a hang fails loudly instead of stalling `cargo bench`.
pub struct Watchdog(());

impl Watchdog {
    pub fn arm(label: &str) -> Watchdog {
        static THREAD: OnceLock<()> = OnceLock::new();
        THREAD.get_or_init(|| {
            let limit = std::env::var("LPM_BENCH_WATCHDOG_S")
                .ok()
                .and_then(|s| s.parse().ok())
                .map_or(Duration::from_secs(180), Duration::from_secs);
            std::thread::Builder::new()
                .name("bench-watchdog".into())
                .spawn(move || loop {
                    std::thread::sleep(Duration::from_millis(250));
                    let armed = ARMED.lock().unwrap_or_else(|e| e.into_inner());
                    if let Some((label, since)) = &*armed {
                        if since.elapsed() > limit {
                            eprintln!(
                                "\nbench watchdog: `{label}` has run for {:?} (limit {limit:?}): \
                                 a hang? exiting",
                                since.elapsed()
                            );
                            std::process::exit(3);
                        }
                    }
                })
                .expect("spawn the watchdog");
        });
        *ARMED.lock().unwrap_or_else(|e| e.into_inner()) = Some((label.to_owned(), Instant::now()));
        Watchdog(())
    }
}

impl Drop for Watchdog {
    fn drop(&mut self) {
        *ARMED.lock().unwrap_or_else(|e| e.into_inner()) = None;
    }
}

// ---------------------------------------------------------------------------------------
// Measuring a workload
// ---------------------------------------------------------------------------------------

/// What the ideal time of a workload is, for the efficiency column.
#[derive(Clone, Copy, Debug)]
pub enum Ideal {
    /// `seq`'s median divided by the pool's threads.
    SeqOverThreads,
    /// A fixed time (the seed's `slowsrc`: 0.3 s; `first`: 1 ms).
    Fixed(Duration),
}

/// A workload as the summary describes it.
#[derive(Clone, Debug)]
pub struct Workload {
    pub name: &'static str,
    /// Items consumed per run (`Throughput::Elements`).
    pub items: u64,
    pub ideal: Ideal,
    /// Criterion's measurement time for each contender (at least 10 runs are made anyway).
    pub measurement: Duration,
    /// Free text for the summary (calibration, buffer, pool).
    pub note: String,
}

impl Workload {
    pub fn new(name: &'static str, items: u64, ideal: Ideal) -> Self {
        Workload {
            name,
            items,
            ideal,
            measurement: Duration::from_secs(2),
            note: String::new(),
        }
    }

    pub fn measurement(mut self, d: Duration) -> Self {
        self.measurement = d;
        self
    }

    pub fn note(mut self, note: impl Into<String>) -> Self {
        self.note = note.into();
        self
    }
}

/// Runs each contender on `job` in a criterion group named after the workload, and records
/// every run's time (warm-up runs included) for the summary.
pub fn measure<S, I, F>(
    c: &mut Criterion,
    summary: &mut Summary,
    w: &Workload,
    job: &Job<S, F>,
    contenders: &[Contender],
) where
    S: Fn() -> I,
    I: Iterator<Item = u64> + Send + 'static,
    F: Fn(u64) -> u64 + Clone + Send + Sync + 'static,
{
    let mut group = c.benchmark_group(w.name);
    group
        .throughput(Throughput::Elements(w.items))
        .sample_size(10)
        .sampling_mode(SamplingMode::Flat)
        .warm_up_time(Duration::from_millis(200))
        .measurement_time(w.measurement);
    let expected: OnceCell<Check> = OnceCell::new();
    let threads = job.pool.threads();
    for &contender in contenders {
        let label = format!("{}/{}", w.name, contender.name());
        let mut samples = Vec::new();
        let mut max_drop = Duration::ZERO;
        let mut wrong = 0u64;
        group.bench_function(contender.name(), |b| {
            b.iter_custom(|iters| {
                let mut total = Duration::ZERO;
                for _ in 0..iters {
                    let pool = job.pool.for_sample();
                    let guard = Watchdog::arm(&label);
                    let out = run(contender, job, pool.as_ref());
                    drop(guard);
                    total += out.elapsed;
                    samples.push(out.elapsed);
                    max_drop = max_drop.max(out.dropped);
                    let want = expected.get_or_init(|| match contender {
                        Contender::Seq => out.check,
                        _ => {
                            let _guard = Watchdog::arm(&format!("{}/seq (reference)", w.name));
                            run(Contender::Seq, job, pool.as_ref()).check
                        }
                    });
                    if !out.check.agrees(want, contender.ordered()) {
                        if wrong == 0 {
                            eprintln!(
                                "\nWRONG OUTPUT: {label}: got {:?}, seq gives {want:?}",
                                out.check
                            );
                        }
                        wrong += 1;
                    }
                }
                total
            })
        });
        if !samples.is_empty() {
            summary.rows.push(Row {
                workload: w.name,
                contender: contender.name(),
                items: w.items,
                threads,
                ideal: w.ideal,
                samples,
                max_drop,
                wrong,
                note: w.note.clone(),
            });
        }
    }
    group.finish();
}
