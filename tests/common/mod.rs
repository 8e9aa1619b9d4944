//! Helpers shared by the contract tests: a watchdog against deadlocks, instrumented
//! sources, a drop-counting item, thread counts, and polling until a count settles.
//!
//! Timing never decides a correctness assertion here: waits poll with generous deadlines
//! and only bound how long a test may take to fail.
#![allow(dead_code)]

use std::any::Any;
use std::collections::BTreeSet;
use std::panic::{self, AssertUnwindSafe};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering::SeqCst};
use std::sync::mpsc::{self, RecvTimeoutError};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, Once};
use std::time::{Duration, Instant};

/// The watchdog limit for a test: generous, a deadlock still fails in well under a minute.
pub const LIMIT_SECS: u64 = 30;

/// How long a count must stay put to be called settled.
pub const STAY: Duration = Duration::from_millis(100);

/// How long to wait for a count to reach its expected value.
pub const SETTLE: Duration = Duration::from_secs(5);

/// Runs `f` on its own thread and returns its result, re-raising its panic. Panics with a
/// clear message if `f` has not finished within `secs` seconds (the thread is left behind).
pub fn watchdog<T: Send + 'static>(secs: u64, f: impl FnOnce() -> T + Send + 'static) -> T {
    let (done_tx, done_rx) = mpsc::channel::<()>();
    let handle = std::thread::Builder::new()
        .name("watched-test".into())
        .spawn(move || {
            let out = panic::catch_unwind(AssertUnwindSafe(f));
            let _ = done_tx.send(());
            out
        })
        .expect("watchdog: could not spawn the test thread");
    match done_rx.recv_timeout(Duration::from_secs(secs)) {
        Ok(()) | Err(RecvTimeoutError::Disconnected) => match handle.join() {
            Ok(Ok(value)) => value,
            Ok(Err(payload)) | Err(payload) => panic::resume_unwind(payload),
        },
        Err(RecvTimeoutError::Timeout) => panic!(
            "watchdog: the test did not finish within {secs} s (deadlock or hang in lazy_par_map?)"
        ),
    }
}

/// [`watchdog`] with the default limit.
pub fn guarded<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
    watchdog(LIMIT_SECS, f)
}

// ---- instrumented sources --------------------------------------------------------------

/// Counts of one instrumented source: `started` counts calls to `next()` (a pull under way
/// counts), `produced` the calls that returned an item.
#[derive(Debug, Default)]
pub struct Pulls {
    started: AtomicUsize,
    produced: AtomicUsize,
}

impl Pulls {
    /// Calls to the source's `next()` begun so far.
    pub fn started(&self) -> usize {
        self.started.load(SeqCst)
    }
    /// Items the source has returned so far.
    pub fn produced(&self) -> usize {
        self.produced.load(SeqCst)
    }
}

/// A source that counts its pulls and runs `hook` (with the pull's 1-based ordinal) at the
/// start of each.
pub struct Counted<I, H = fn(usize)> {
    inner: I,
    pulls: Arc<Pulls>,
    hook: H,
}

/// Wraps `inner` so that its pulls are counted in the returned [`Pulls`].
pub fn counted<I: Iterator>(inner: I) -> (Counted<I>, Arc<Pulls>) {
    counted_with(inner, |_| {})
}

/// Like [`counted`], running `hook(ordinal)` at the start of each pull.
pub fn counted_with<I: Iterator, H: FnMut(usize)>(
    inner: I,
    hook: H,
) -> (Counted<I, H>, Arc<Pulls>) {
    let pulls = Arc::new(Pulls::default());
    let source = Counted {
        inner,
        pulls: Arc::clone(&pulls),
        hook,
    };
    (source, pulls)
}

impl<I: Iterator, H: FnMut(usize)> Iterator for Counted<I, H> {
    type Item = I::Item;

    fn next(&mut self) -> Option<I::Item> {
        let ordinal = self.pulls.started.fetch_add(1, SeqCst) + 1;
        (self.hook)(ordinal);
        let item = self.inner.next();
        if item.is_some() {
            self.pulls.produced.fetch_add(1, SeqCst);
        }
        item
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        self.inner.size_hint()
    }
}

impl<I: ExactSizeIterator, H: FnMut(usize)> ExactSizeIterator for Counted<I, H> {}

/// A source that panics if anything pulls from it, and records whether it was dropped.
#[derive(Debug)]
pub struct Untouchable {
    pub dropped: Arc<AtomicBool>,
}

impl Iterator for Untouchable {
    type Item = u64;
    fn next(&mut self) -> Option<u64> {
        panic!("laziness violated: the source was pulled before the adapter started");
    }
}

impl Drop for Untouchable {
    fn drop(&mut self) {
        self.dropped.store(true, SeqCst);
    }
}

// ---- the bound ---------------------------------------------------------------------------

/// Checks, at every pull of the source, that items taken and not yet returned number at
/// most `n`.
///
/// The consumer counts `returned` after `next()` returns, but the adapter frees the slot
/// just before it returns, so a pull may legitimately see `returned + n + 1` while a
/// `next()` call is finishing. A check is *strict* (`pull <= returned + n`) when that
/// window is provably closed: no `next()` call was in progress, or (ordered) the item the
/// call waits for was not finished by `f` yet. Otherwise it is *loose*
/// (`pull <= calls begun + n`).
#[derive(Debug)]
pub struct Lookahead {
    n: usize,
    ordered: bool,
    calls: AtomicUsize,
    returned: AtomicUsize,
    done: Vec<AtomicBool>,
    strict: AtomicUsize,
    loose: AtomicUsize,
    violations: Mutex<Vec<String>>,
}

impl Lookahead {
    /// A probe for `buffer(n)` over a source yielding `0..len` (indices mapped by `f`).
    pub fn new(n: usize, len: usize, ordered: bool) -> Arc<Lookahead> {
        Arc::new(Lookahead {
            n,
            ordered,
            calls: AtomicUsize::new(0),
            returned: AtomicUsize::new(0),
            done: (0..len).map(|_| AtomicBool::new(false)).collect(),
            strict: AtomicUsize::new(0),
            loose: AtomicUsize::new(0),
            violations: Mutex::new(Vec::new()),
        })
    }

    /// Call from the source at the start of pull number `ordinal` (1-based).
    pub fn on_pull(&self, ordinal: usize) {
        // Order matters: `returned` first, then `calls`, then `done`.
        let returned = self.returned.load(SeqCst);
        let calls = self.calls.load(SeqCst);
        let idle = calls == returned;
        let waiting_on_unfinished = self.ordered
            && calls == returned + 1
            && self.done.get(returned).is_some_and(|d| !d.load(SeqCst));
        let (kind, limit) = if idle || waiting_on_unfinished {
            self.strict.fetch_add(1, SeqCst);
            ("strict", returned + self.n)
        } else {
            self.loose.fetch_add(1, SeqCst);
            ("loose", calls + self.n)
        };
        if ordinal > limit {
            self.violations.lock().unwrap().push(format!(
                "pull #{ordinal} with {returned} returned, {calls} next() calls begun, \
                 buffer {} ({kind} limit {limit})",
                self.n
            ));
        }
    }

    /// Call from `f` just before it returns the result of item `index`.
    pub fn f_done(&self, index: usize) {
        if let Some(done) = self.done.get(index) {
            done.store(true, SeqCst);
        }
    }

    /// `it.next()`, counted.
    pub fn next<I: Iterator>(&self, it: &mut I) -> Option<I::Item> {
        self.calls.fetch_add(1, SeqCst);
        let item = it.next();
        if item.is_some() {
            self.returned.fetch_add(1, SeqCst);
        }
        item
    }

    /// (strict, loose) checks made so far.
    pub fn checks(&self) -> (usize, usize) {
        (self.strict.load(SeqCst), self.loose.load(SeqCst))
    }

    /// Panics with every violation seen.
    #[track_caller]
    pub fn assert_held(&self) {
        let violations = self.violations.lock().unwrap();
        assert!(
            violations.is_empty(),
            "the bound taken - returned <= {} was broken:\n{}",
            self.n,
            violations.join("\n")
        );
    }
}

// ---- drop counting ---------------------------------------------------------------------

/// Counts constructions and drops of [`Tracked`] values.
#[derive(Debug, Default)]
pub struct Ledger {
    created: AtomicUsize,
    dropped: AtomicUsize,
}

impl Ledger {
    pub fn new() -> Arc<Ledger> {
        Arc::new(Ledger::default())
    }
    /// A new tracked value.
    pub fn make(self: &Arc<Self>, value: u64) -> Tracked {
        self.created.fetch_add(1, SeqCst);
        Tracked {
            value,
            ledger: Arc::clone(self),
        }
    }
    pub fn created(&self) -> usize {
        self.created.load(SeqCst)
    }
    pub fn dropped(&self) -> usize {
        self.dropped.load(SeqCst)
    }
    /// Values constructed and not yet dropped. (Drops are counted before constructions
    /// are read, so a racing pair never shows a negative count.)
    pub fn live(&self) -> isize {
        let dropped = self.dropped() as isize;
        self.created() as isize - dropped
    }
    /// Polls until every value constructed so far has been dropped; panics otherwise.
    pub fn assert_all_dropped(&self) {
        let live = settle(|| self.live(), 0, SETTLE);
        assert_eq!(
            live,
            0,
            "leak: {} values created, {} dropped",
            self.created(),
            self.dropped()
        );
        assert_stays(|| self.live(), 0, STAY);
    }
}

/// A value whose constructions and drops are counted in its [`Ledger`].
#[derive(Debug)]
pub struct Tracked {
    pub value: u64,
    ledger: Arc<Ledger>,
}

impl Drop for Tracked {
    fn drop(&mut self) {
        self.ledger.dropped.fetch_add(1, SeqCst);
    }
}

// ---- threads ---------------------------------------------------------------------------

/// The process's thread count, from `/proc/self/status`.
#[cfg(target_os = "linux")]
pub fn thread_count() -> usize {
    let status = std::fs::read_to_string("/proc/self/status").expect("read /proc/self/status");
    status
        .lines()
        .find_map(|line| line.strip_prefix("Threads:"))
        .and_then(|n| n.trim().parse().ok())
        .expect("a Threads: line in /proc/self/status")
}

/// Live threads named `lazy-par-map-feeder` (the kernel keeps 15 bytes of a name).
#[cfg(target_os = "linux")]
pub fn feeder_threads() -> usize {
    let Ok(tasks) = std::fs::read_dir("/proc/self/task") else {
        return 0;
    };
    tasks
        .filter_map(Result::ok)
        .filter_map(|task| std::fs::read_to_string(task.path().join("comm")).ok())
        .filter(|comm| comm.trim_end() == "lazy-par-map-fe")
        .count()
}

/// The ids of the process's live threads, from `/proc/self/task`.
#[cfg(target_os = "linux")]
fn thread_ids() -> BTreeSet<u32> {
    std::fs::read_dir("/proc/self/task")
        .expect("read /proc/self/task")
        .filter_map(Result::ok)
        .filter_map(|task| task.file_name().to_str()?.parse().ok())
        .collect()
}

/// The calling thread's kernel id (`/proc/thread-self` links to `<pid>/task/<tid>`).
#[cfg(target_os = "linux")]
fn current_tid() -> u32 {
    std::fs::read_link("/proc/thread-self")
        .ok()
        .and_then(|link| link.file_name()?.to_str()?.parse().ok())
        .expect("read /proc/thread-self")
}

/// Test threads waiting in [`serial`]: the harness starts them whenever it likes, so they
/// are not leaks of the code under test.
static SERIAL_WAITERS: Mutex<BTreeSet<u32>> = Mutex::new(BTreeSet::new());

/// Serialises the tests of one binary that count threads, so that no other test of the
/// same binary starts or ends threads meanwhile. Every test of such a binary takes it.
pub fn serial() -> MutexGuard<'static, ()> {
    static LOCK: Mutex<()> = Mutex::new(());
    let tid = current_tid();
    SERIAL_WAITERS.lock().unwrap().insert(tid);
    let guard = LOCK.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
    SERIAL_WAITERS.lock().unwrap().remove(&tid);
    guard
}

/// The live threads at one moment, to tell later which threads are new.
#[derive(Debug)]
pub struct ThreadSnapshot(BTreeSet<u32>);

impl ThreadSnapshot {
    /// The threads alive now.
    pub fn take() -> ThreadSnapshot {
        ThreadSnapshot(thread_ids())
    }

    /// Threads alive now that were not in the snapshot, leaving out test threads the
    /// harness started meanwhile (they wait in [`serial`]); each as `tid (name)`.
    pub fn new_threads(&self) -> Vec<String> {
        let waiters = SERIAL_WAITERS.lock().unwrap().clone();
        thread_ids()
            .difference(&self.0)
            .filter(|tid| !waiters.contains(tid))
            .map(|tid| {
                let comm = std::fs::read_to_string(format!("/proc/self/task/{tid}/comm"))
                    .unwrap_or_default();
                format!("{tid} ({})", comm.trim_end())
            })
            .collect()
    }

    /// Polls (up to [`SETTLE`]) until no thread is alive that was not in the snapshot.
    #[track_caller]
    pub fn assert_no_new_threads(&self) {
        let clean = eventually(|| self.new_threads().is_empty(), SETTLE);
        assert!(clean, "threads left behind: {:?}", self.new_threads());
    }
}

/// Makes sure rayon's global pool has started its threads, so that it does not count as a
/// thread leak of the first adapter.
pub fn warm_global_pool() {
    let _ = rayon::current_num_threads();
    rayon::broadcast(|_| ());
}

// ---- waiting ---------------------------------------------------------------------------

/// Polls `read` until it returns `expected` or `within` has passed; returns the last value.
pub fn settle<T: PartialEq>(read: impl Fn() -> T, expected: T, within: Duration) -> T {
    let deadline = Instant::now() + within;
    loop {
        let value = read();
        if value == expected || Instant::now() >= deadline {
            return value;
        }
        std::thread::sleep(Duration::from_millis(1));
    }
}

/// Polls `cond` until it holds or `within` has passed; returns whether it held.
pub fn eventually(cond: impl Fn() -> bool, within: Duration) -> bool {
    settle(cond, true, within)
}

/// Asserts that `read` keeps returning `expected` for `period`.
#[track_caller]
pub fn assert_stays<T: PartialEq + std::fmt::Debug>(
    read: impl Fn() -> T,
    expected: T,
    period: Duration,
) {
    let deadline = Instant::now() + period;
    while Instant::now() < deadline {
        let value = read();
        assert_eq!(value, expected, "the count moved after it had settled");
        std::thread::sleep(Duration::from_millis(2));
    }
}

/// Polls `read` until it equals `expected` (within [`SETTLE`]), asserts it, and asserts it
/// stays there for [`STAY`].
#[track_caller]
pub fn assert_settles<T: PartialEq + std::fmt::Debug + Copy>(
    what: &str,
    read: impl Fn() -> T,
    expected: T,
) {
    let value = settle(&read, expected, SETTLE);
    assert_eq!(
        value, expected,
        "{what} did not settle at the expected value"
    );
    assert_stays(&read, expected, STAY);
}

/// A gate that user code waits on until the test opens it (or `limit` passes, so that a
/// broken adapter fails the test instead of hanging it). `wait` returns whether it opened.
#[derive(Debug, Default)]
pub struct Gate {
    open: Mutex<bool>,
    cv: Condvar,
}

impl Gate {
    pub fn new() -> Arc<Gate> {
        Arc::new(Gate::default())
    }
    pub fn open(&self) {
        *self.open.lock().unwrap() = true;
        self.cv.notify_all();
    }
    pub fn is_open(&self) -> bool {
        *self.open.lock().unwrap()
    }
    /// Waits until the gate opens; `false` if `limit` passed first.
    pub fn wait(&self, limit: Duration) -> bool {
        let guard = self.open.lock().unwrap();
        let (guard, _) = self
            .cv
            .wait_timeout_while(guard, limit, |open| !*open)
            .unwrap();
        *guard
    }
}

// ---- panics ----------------------------------------------------------------------------

/// A panic payload.
pub type Payload = Box<dyn Any + Send + 'static>;

/// Runs `f`, catching a panic.
pub fn catch<T>(f: impl FnOnce() -> T) -> Result<T, Payload> {
    panic::catch_unwind(AssertUnwindSafe(f))
}

/// The message of a `&str` or `String` payload.
pub fn message(payload: &Payload) -> Option<&str> {
    payload
        .downcast_ref::<&'static str>()
        .copied()
        .or_else(|| payload.downcast_ref::<String>().map(String::as_str))
}

/// Installs (once per process) a panic hook that stays silent for the panics the tests
/// cause on purpose: those whose message contains "intended", and non-string payloads.
pub fn quiet_intended_panics() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        let default = panic::take_hook();
        panic::set_hook(Box::new(move |info| {
            let payload = info.payload();
            let text = payload
                .downcast_ref::<&str>()
                .copied()
                .or_else(|| payload.downcast_ref::<String>().map(String::as_str));
            let intended = match text {
                Some(text) => text.contains("intended"),
                None => true,
            };
            if !intended {
                default(info);
            }
        }));
    });
}

// ---- timing helpers for user code --------------------------------------------------------

/// A deterministic pseudo-random number for item `i` (splitmix64).
pub fn jitter(i: u64) -> u64 {
    let mut z = i.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// Sleeps for `micros` microseconds.
pub fn sleep_us(micros: u64) {
    std::thread::sleep(Duration::from_micros(micros));
}

pub fn sleep_ms(millis: u64) {
    std::thread::sleep(Duration::from_millis(millis));
}

/// A custom pool of `threads` threads.
pub fn pool(threads: usize) -> Arc<rayon::ThreadPool> {
    Arc::new(
        rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .build()
            .expect("build a rayon pool"),
    )
}

// ---- child processes -------------------------------------------------------------------

/// The environment variable that names the test a child process runs (see [`in_child`]).
const CHILD_TEST: &str = "LPM_CHILD_TEST";

/// Whether this process is the child that [`run_in_child`] started for `test`.
pub fn is_child(test: &str) -> bool {
    std::env::var(CHILD_TEST).is_ok_and(|name| name == test)
}

/// Runs the test `test` of this test binary again in a child process (where [`is_child`]
/// is true for it) and panics unless the child exits successfully. A scenario that could
/// abort the process (a panic while a panic unwinds, a panic escaping a rayon `spawn`) runs
/// there, so that an abort fails one test instead of killing the whole test binary. The
/// child is killed if it runs past [`LIMIT_SECS`].
#[track_caller]
pub fn in_child(test: &str) {
    run_child(test);
}

/// Like [`in_child`], and prints what the child wrote to stderr (its figures) when it
/// succeeds too; run with `--nocapture` to see them.
#[track_caller]
pub fn in_child_echoed(test: &str) {
    eprint!("{}", run_child(test));
}

/// Runs `test` in a child process (see [`in_child`]); returns its stderr if it succeeds.
#[track_caller]
fn run_child(test: &str) -> String {
    let exe = std::env::current_exe().expect("the test binary's path");
    let mut child = std::process::Command::new(exe)
        .args(["--exact", test, "--nocapture", "--test-threads", "1"])
        .env(CHILD_TEST, test)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("start the child process");
    let mut stderr = child.stderr.take().expect("the child's stderr");
    let reader = std::thread::spawn(move || {
        let mut text = String::new();
        let _ = std::io::Read::read_to_string(&mut stderr, &mut text);
        text
    });
    let deadline = Instant::now() + Duration::from_secs(LIMIT_SECS);
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait for the child process") {
            break Some(status);
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(5));
    };
    let stderr = reader.join().unwrap_or_default();
    let tail: String = {
        let lines: Vec<&str> = stderr.lines().collect();
        lines[lines.len().saturating_sub(20)..].join("\n")
    };
    match status {
        Some(status) if status.success() => stderr,
        Some(status) => panic!("the child process running {test} ended with {status}:\n{tail}"),
        None => panic!("the child process running {test} hung for {LIMIT_SECS} s:\n{tail}"),
    }
}
