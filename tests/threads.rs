//! Threads and fixed costs: an adapter owns no OS thread. A paused, full or idle adapter
//! holds no thread at all, the thread count returns to the pool's after many short
//! adapters, a source blocked inside `next()` never delays another adapter's feeding, and a
//! paused consumer finds the ring refilled to `c + n` promptly every time.
//!
//! The thread counts are the process's (`/proc/self/status`, Linux only), so each test that
//! reads them runs in a child process of its own (`common::in_child_echoed`), where no other
//! test starts or ends threads meanwhile. Every test here also takes [`one_at_a_time`]: the
//! timings of the others would suffer from a child starting a thousand adapters beside
//! them. Each prints its figures to stderr; `cargo test --release --test threads --
//! --nocapture` shows them.

mod common;

use common::{jitter, watchdog};
use lazy_par_map::prelude::*;
use lazy_par_map::TryNextError;
use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};
use std::sync::{mpsc, Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

/// Threads an engine may keep beyond the pool's: a few feeding threads and a timer or two.
const SMALL_CONSTANT: usize = 8;

/// A watchdog for a test in a child process: it fires before `in_child` kills the child
/// (at `common::LIMIT_SECS`), so a hang names its test.
const CHILD_LIMIT_SECS: u64 = 25;

/// Serialises the tests of this binary (see the module doc).
fn one_at_a_time() -> MutexGuard<'static, ()> {
    static LOCK: Mutex<()> = Mutex::new(());
    LOCK.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Starts rayon's global pool, so that its threads are in the baseline.
fn start_global_pool() {
    let _ = rayon::current_num_threads();
    rayon::join(|| (), || ());
    common::warm_global_pool();
}

/// Polls `cond` (every `step`) until it holds or `limit` passes; returns how long it took,
/// or `None` if it never held.
fn time_until(cond: impl Fn() -> bool, step: Duration, limit: Duration) -> Option<Duration> {
    let started = Instant::now();
    loop {
        if cond() {
            return Some(started.elapsed());
        }
        if started.elapsed() > limit {
            return None;
        }
        std::thread::sleep(step);
    }
}

// ---- 1. paused adapters hold no thread ---------------------------------------------------

/// 1,000 adapters over fast endless sources, each paused after one item and refilled to
/// `1 + 4`: the process holds the pool's threads plus a small constant, not a thread per
/// adapter.
#[cfg(target_os = "linux")]
#[test]
fn a_thousand_paused_adapters_hold_no_thread_each() {
    const TEST: &str = "a_thousand_paused_adapters_hold_no_thread_each";
    if !common::is_child(TEST) {
        let _one = one_at_a_time();
        common::in_child_echoed(TEST);
        return;
    }
    const ADAPTERS: usize = 1_000;
    const N: usize = 4;
    watchdog(CHILD_LIMIT_SECS, || {
        start_global_pool();
        let baseline = common::thread_count();
        let started = Instant::now();
        let mut adapters: Vec<_> = (0..ADAPTERS)
            .map(|k| {
                let offset = k as u64 * 1_000_000;
                (offset..).lazy_par_map(|x| x * 2).buffer(N)
            })
            .collect();
        for (k, adapter) in adapters.iter_mut().enumerate() {
            assert_eq!(adapter.next(), Some(k as u64 * 2_000_000), "adapter {k}");
        }
        let first_items = started.elapsed();
        // Each refills to exactly `1 + N` taken (the bound) and then holds still.
        let full = |adapter: &lazy_par_map::LazyParMap<_, _, u64>| {
            let taken = adapter.stats().taken;
            assert!(taken <= (1 + N) as u64, "taken {taken} > 1 + {N}");
            taken == (1 + N) as u64
        };
        let refilled = time_until(
            || adapters.iter().all(full),
            Duration::from_millis(1),
            Duration::from_secs(10),
        );
        let laggards = adapters.iter().filter(|a| !full(a)).count();
        assert!(
            refilled.is_some(),
            "{laggards} of {ADAPTERS} paused adapters were not refilled to {} within 10 s",
            1 + N
        );
        let now = common::thread_count();
        eprintln!(
            "threads: {ADAPTERS} paused adapters: {now} threads, baseline {baseline} (the pool \
             {} + the test's); first items in {first_items:.1?}, all refilled {:.1?} later",
            rayon::current_num_threads(),
            refilled.unwrap()
        );
        assert!(
            now <= baseline + SMALL_CONSTANT,
            "{ADAPTERS} paused adapters hold {} threads beyond the baseline of {baseline} \
             (at most {SMALL_CONSTANT} allowed): a thread per adapter?",
            now - baseline
        );
        // The adapters are alive up to here.
        drop(adapters);
    });
}

// ---- 2. the thread count returns after many short adapters -------------------------------

/// 2,000 adapters of 8 items one after another, then 2,000 started at once and consumed:
/// afterwards the thread count returns to the pool's plus a small constant (the issue asks
/// for within a second; the test allows 10 s and prints the figure).
#[cfg(target_os = "linux")]
#[test]
fn after_two_thousand_short_adapters_the_thread_count_returns() {
    const TEST: &str = "after_two_thousand_short_adapters_the_thread_count_returns";
    if !common::is_child(TEST) {
        let _one = one_at_a_time();
        common::in_child_echoed(TEST);
        return;
    }
    const ADAPTERS: u64 = 2_000;
    const ITEMS: u64 = 8;
    fn f(x: u64) -> u64 {
        x.wrapping_mul(0x9e37_79b9).rotate_left(7)
    }
    fn expected(k: u64) -> Vec<u64> {
        (k * ITEMS..(k + 1) * ITEMS).map(f).collect()
    }
    let settle = |baseline: usize, phase: &str| {
        let returned = time_until(
            || common::thread_count() <= baseline + SMALL_CONSTANT,
            Duration::from_millis(1),
            Duration::from_secs(10),
        );
        let now = common::thread_count();
        assert!(
            returned.is_some(),
            "after {phase}: {now} threads 10 s later, baseline {baseline} + {SMALL_CONSTANT}"
        );
        returned.unwrap()
    };
    watchdog(CHILD_LIMIT_SECS, move || {
        start_global_pool();
        let baseline = common::thread_count();

        let started = Instant::now();
        for k in 0..ADAPTERS {
            let got: Vec<u64> = (k * ITEMS..(k + 1) * ITEMS).lazy_par_map(f).collect();
            assert_eq!(got, expected(k), "adapter {k} one after another");
        }
        let one_by_one = started.elapsed();
        let after_one_by_one = settle(baseline, "2,000 adapters one after another");

        let started = Instant::now();
        let adapters: Vec<_> = (0..ADAPTERS)
            .map(|k| (k * ITEMS..(k + 1) * ITEMS).lazy_par_map(f).start())
            .collect();
        let peak = common::thread_count();
        for (k, adapter) in adapters.into_iter().enumerate() {
            let k = k as u64;
            assert_eq!(
                adapter.collect::<Vec<_>>(),
                expected(k),
                "adapter {k} at once"
            );
        }
        let at_once = started.elapsed();
        let after_at_once = settle(baseline, "2,000 adapters started at once");

        eprintln!(
            "threads: baseline {baseline}; 2,000 adapters of 8 one after another in \
             {one_by_one:.1?} ({:.1} µs an adapter), count back to <= baseline + \
             {SMALL_CONSTANT} in {after_one_by_one:.1?}; 2,000 started at once ({peak} \
             threads just after starting them) and consumed in {at_once:.1?}, count back in \
             {after_at_once:.1?}",
            one_by_one.as_secs_f64() * 1e6 / ADAPTERS as f64,
        );
    });
}

// ---- 3. blocked sources do not delay other adapters --------------------------------------

/// 64 adapters whose sources block inside `next()` for good do not slow a 65th: it runs
/// about as fast as it did before they were started.
#[test]
fn sixty_four_blocked_sources_do_not_slow_a_sixty_fifth() {
    const BLOCKED: usize = 64;
    let _one = one_at_a_time();
    common::guarded(|| {
        start_global_pool();
        let f = |x: u64| x ^ 0x5a5a;
        let run_65th = || {
            let started = Instant::now();
            let got: Vec<u64> = (0..1_000u64).lazy_par_map(f).collect();
            let took = started.elapsed();
            assert_eq!(got, (0..1_000u64).map(f).collect::<Vec<_>>());
            took
        };
        run_65th(); // warm-up: the first adapter of the process builds what engines share
        let before = (0..3).map(|_| run_65th()).min().unwrap();

        let mut senders = Vec::with_capacity(BLOCKED);
        let mut blocked = Vec::with_capacity(BLOCKED);
        let mut pulls = Vec::with_capacity(BLOCKED);
        for _ in 0..BLOCKED {
            // Nothing is ever sent: the source blocks in its first `next()` until the sender
            // is dropped at the end.
            let (tx, rx) = mpsc::channel::<u64>();
            let (source, pulled) = common::counted(rx.into_iter());
            let mut adapter = source.lazy_par_map(f).buffer(4);
            assert_eq!(adapter.try_next(), Err(TryNextError::NotReady));
            senders.push(tx);
            blocked.push(adapter);
            pulls.push(pulled);
        }
        // Every blocked source is inside `next()`: the engine fed all 64.
        let all_inside = time_until(
            || pulls.iter().all(|p| p.started() == 1),
            Duration::from_millis(1),
            Duration::from_secs(10),
        );
        let waiting = pulls.iter().filter(|p| p.started() == 0).count();
        assert!(
            all_inside.is_some(),
            "{waiting} of {BLOCKED} sources were never pulled within 10 s: a blocked source \
             delayed another adapter's feeding"
        );

        let after = run_65th();
        let again = run_65th();
        eprintln!(
            "threads: the 65th adapter (1,000 items) took {before:.2?} before (best of 3), \
             {after:.2?} with {BLOCKED} blocked sources ({again:.2?} the run after); the 64 \
             were all inside next() {:.1?} after the last start",
            all_inside.unwrap()
        );
        let allowed = before * 20 + Duration::from_millis(50);
        assert!(
            after <= allowed,
            "with {BLOCKED} blocked sources the 65th adapter took {after:?}, against {before:?} \
             before (allowed {allowed:?})"
        );
        for adapter in &mut blocked {
            assert_eq!(adapter.try_next(), Err(TryNextError::NotReady));
        }
        // The senders go: each blocked source sees its channel close and ends.
        drop(senders);
        for (k, adapter) in blocked.iter_mut().enumerate() {
            assert_eq!(
                adapter.next(),
                None,
                "blocked adapter {k} after its sender went"
            );
        }
    });
}

// ---- 4. the late refill ------------------------------------------------------------------

/// The longest a paused consumer may wait for the ring to be refilled to `c + n`.
///
/// Any correct engine refills a few slots of a cheap, fast source in well under a
/// millisecond; the limit leaves room for a thread descheduled on two busy cores, so that
/// it measures the engine, not the machine. The engine of 0.1.0 can miss the wake-up for
/// the last freed slot in a store-load race and then refills it only when the feeder's
/// timed sleep ends; that sleep's patience starts at 1 ms and doubles up to `MAX_PATIENCE`
/// (256 ms) while the consumer stays away, so a miss costs up to 256 ms, and a miss that
/// costs 200 ms or more is a late refill whatever the machine's speed.
const REFILL_LIMIT: Duration = Duration::from_millis(200);

/// A consumer that takes `c` items and pauses finds `taken = c + n` promptly, every time
/// (the issue: "within a few milliseconds every time"), and never more than that.
#[test]
fn a_paused_consumer_finds_the_ring_refilled_every_time() {
    const ROUNDS: u64 = 300;
    const SEED: u64 = 0x7e_f111;
    let _one = one_at_a_time();
    common::guarded(|| {
        start_global_pool();
        let f = |x: u64| x.wrapping_mul(3);
        let mut waits = Vec::with_capacity(ROUNDS as usize);
        let mut slow = Vec::new();
        for round in 0..ROUNDS {
            let n = 1 + jitter(SEED + 2 * round) % 64;
            let c = jitter(SEED + 2 * round + 1) % (3 * n + 1);
            let mut it = (0u64..).lazy_par_map(f).buffer(n as usize);
            if c == 0 {
                it = it.start();
            }
            for want in 0..c {
                assert_eq!(it.next(), Some(f(want)), "round {round}: n {n}, c {c}");
            }
            let paused = Instant::now();
            let deadline = paused + Duration::from_secs(5);
            loop {
                let taken = it.stats().taken;
                assert!(
                    taken <= c + n,
                    "round {round}: taken {taken} > c + n = {c} + {n}"
                );
                if taken == c + n {
                    break;
                }
                assert!(
                    Instant::now() < deadline,
                    "round {round}: n {n}, c {c}: taken {taken}, not c + n = {}, 5 s after \
                     the pause",
                    c + n
                );
                std::thread::sleep(Duration::from_micros(100));
            }
            let waited = paused.elapsed();
            assert_eq!(it.stats().yielded, c);
            waits.push(waited);
            if waited >= REFILL_LIMIT {
                slow.push(format!("round {round} (n {n}, c {c}): {waited:.1?}"));
                if slow.len() >= 10 {
                    break; // enough evidence; spare the watchdog
                }
            }
        }
        let rounds = waits.len();
        waits.sort_unstable();
        let (median, longest) = (waits[rounds / 2], waits[rounds - 1]);
        let over_5ms = waits
            .iter()
            .filter(|&&w| w > Duration::from_millis(5))
            .count();
        eprintln!(
            "threads: refill to c + n after a pause, {rounds} rounds: median {median:.2?}, \
             longest {longest:.2?}; {over_5ms} over 5 ms, {} at or over {REFILL_LIMIT:?}",
            slow.len()
        );
        assert!(
            slow.is_empty(),
            "the ring was refilled late ({} rounds at or over {REFILL_LIMIT:?}):\n{}",
            slow.len(),
            slow.join("\n")
        );
    });
}

// ---- 5. many live adapters without a thread each ---------------------------------------

/// 500 live adapters over channel sources that receive bursts with pauses, consumed
/// round-robin, all make progress in order, and (Linux) the process holds the pool's
/// threads plus the producer's plus a small constant throughout, not a thread per adapter.
///
/// The producer stays one burst ahead of the consumer, so a source never blocks inside
/// `next()`: the issue lets a blocked source hold a feeding thread, and this test is about
/// adapters that are busy, full or idle.
#[test]
fn many_live_adapters_progress_without_a_feeding_thread_each() {
    const TEST: &str = "many_live_adapters_progress_without_a_feeding_thread_each";
    if !common::is_child(TEST) {
        let _one = one_at_a_time();
        common::in_child_echoed(TEST);
        return;
    }
    const ADAPTERS: usize = 500;
    const N: usize = 4;
    /// The most a visit takes from one adapter.
    const MOST_A_VISIT: u64 = 4;
    /// The first burst covers the buffer and the first visit, so that, one burst ahead, a
    /// source always has an item ready when the adapter pulls.
    const FIRST_BURST: u64 = N as u64 + MOST_A_VISIT;
    const SEED: u64 = 0x11fe;
    // What the consumer takes from adapter `k` on pass `pass`; the producer sends as much.
    fn take(k: usize, pass: u64) -> u64 {
        1 + jitter(SEED ^ ((k as u64) << 20) ^ pass) % MOST_A_VISIT
    }
    fn len(k: usize) -> u64 {
        20 + jitter(SEED + k as u64) % 41
    }
    fn item(k: usize, i: u64) -> u64 {
        ((k as u64) << 32) | i
    }
    fn f(x: u64) -> u64 {
        x.rotate_left(9) ^ 0xabc
    }

    watchdog(CHILD_LIMIT_SECS, || {
        start_global_pool();
        #[cfg(target_os = "linux")]
        let baseline = common::thread_count();
        let started = Instant::now();
        let mut senders = Vec::with_capacity(ADAPTERS);
        let mut adapters = Vec::with_capacity(ADAPTERS);
        let mut sent = Vec::with_capacity(ADAPTERS);
        for k in 0..ADAPTERS {
            let (tx, rx) = mpsc::channel::<u64>();
            let first = FIRST_BURST.min(len(k));
            for i in 0..first {
                tx.send(item(k, i)).unwrap();
            }
            sent.push(first);
            senders.push((first < len(k)).then_some(tx));
            adapters.push(Some(rx.into_iter().lazy_par_map(f).buffer(N)));
        }
        // Rounds the producer has sent (round `r` tops up what pass `r` takes), and the
        // pass the consumer has begun (1-based).
        let rounds_sent = Arc::new(AtomicUsize::new(0));
        let pass_begun = Arc::new(AtomicUsize::new(0));
        let producer = {
            let (rounds_sent, pass_begun) = (Arc::clone(&rounds_sent), Arc::clone(&pass_begun));
            std::thread::Builder::new()
                .name("burst-producer".into())
                .spawn(move || {
                    let mut round = 0u64;
                    while senders.iter().any(Option::is_some) {
                        // One round ahead of the consumer, with a pause between bursts.
                        while pass_begun.load(SeqCst) < round as usize + 1 {
                            std::thread::sleep(Duration::from_micros(50));
                        }
                        std::thread::sleep(Duration::from_micros(jitter(round) % 2_000));
                        for (k, sender) in senders.iter_mut().enumerate() {
                            let Some(tx) = sender else { continue };
                            let burst = take(k, round).min(len(k) - sent[k]);
                            for i in sent[k]..sent[k] + burst {
                                tx.send(item(k, i)).unwrap();
                            }
                            sent[k] += burst;
                            if sent[k] == len(k) {
                                *sender = None; // the source ends
                            }
                        }
                        round += 1;
                        rounds_sent.store(round as usize, SeqCst);
                    }
                    rounds_sent.store(usize::MAX, SeqCst); // every source has ended
                })
                .expect("spawn the producer")
        };

        let mut got = vec![0u64; ADAPTERS];
        let mut live = ADAPTERS;
        let mut pass = 0u64;
        #[cfg(target_os = "linux")]
        let mut peak = 0usize;
        while live > 0 {
            // Pass `p` may take what rounds `0..p` sent.
            let limit = Instant::now() + Duration::from_secs(10);
            while rounds_sent.load(SeqCst) < pass as usize {
                assert!(
                    Instant::now() < limit,
                    "the producer stalled at pass {pass}"
                );
                std::thread::sleep(Duration::from_micros(20));
            }
            pass_begun.store(pass as usize + 1, SeqCst);
            for (k, slot) in adapters.iter_mut().enumerate() {
                let Some(adapter) = slot else { continue };
                let want = take(k, pass).min(len(k) - got[k]);
                if want == 0 {
                    assert_eq!(
                        adapter.next(),
                        None,
                        "adapter {k} after its {} items",
                        len(k)
                    );
                    *slot = None;
                    live -= 1;
                    continue;
                }
                for _ in 0..want {
                    let i = got[k];
                    assert_eq!(adapter.next(), Some(f(item(k, i))), "adapter {k}, item {i}");
                    got[k] += 1;
                }
                #[cfg(target_os = "linux")]
                if k % 50 == 49 {
                    peak = peak.max(common::thread_count());
                }
            }
            pass += 1;
        }
        producer.join().expect("the producer");
        let took = started.elapsed();
        let items: u64 = (0..ADAPTERS).map(len).sum();
        #[cfg(target_os = "linux")]
        {
            eprintln!(
                "threads: {ADAPTERS} live adapters, {items} items in {pass} passes, \
                 {took:.1?} ({:.1} µs an item); peak {peak} threads, baseline {baseline} + \
                 1 producer",
                took.as_secs_f64() * 1e6 / items as f64
            );
            assert!(
                peak <= baseline + 1 + SMALL_CONSTANT,
                "{ADAPTERS} live adapters held up to {} threads beyond the baseline of \
                 {baseline} and the producer (at most {SMALL_CONSTANT} allowed): a feeding \
                 thread per adapter?",
                peak - baseline - 1
            );
        }
        #[cfg(not(target_os = "linux"))]
        eprintln!("threads: {ADAPTERS} live adapters, {items} items in {pass} passes, {took:.1?}");
    });
}
