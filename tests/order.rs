//! Order: results come in input order whatever `f`'s timing; the adapter is an honest
//! iterator (`size_hint`, `ExactSizeIterator`, `FusedIterator`, chains, `Debug`).

mod common;

use common::{guarded, jitter, pool, sleep_us};
use lazy_par_map::prelude::*;
use lazy_par_map::LazyParMap;
use std::iter::FusedIterator;
use std::sync::Arc;

/// The buffer settings every order test runs under.
#[derive(Clone, Copy, Debug)]
enum Buffer {
    Slots(usize),
    Default,
    Unbounded,
}

const BUFFERS: [Buffer; 6] = [
    Buffer::Slots(1),
    Buffer::Slots(2),
    Buffer::Slots(7),
    Buffer::Slots(64),
    Buffer::Default,
    Buffer::Unbounded,
];

fn configure<I, F, R>(it: LazyParMap<I, F, R>, buffer: Buffer) -> LazyParMap<I, F, R>
where
    I: Iterator + Send + 'static,
    I::Item: Send + 'static,
    F: Fn(I::Item) -> R + Send + Sync + 'static,
    R: Send + 'static,
{
    match buffer {
        Buffer::Slots(n) => it.buffer(n),
        Buffer::Default => it,
        Buffer::Unbounded => it.unbounded(),
    }
}

/// `f` sleeps a pseudo-random 0..2 ms per item.
fn random_delay(i: u64) -> (u64, u64) {
    sleep_us(jitter(i) % 2000);
    (i, i * i)
}

/// `f` sleeps longest on the first items, so later items finish first.
fn reversed_delay(len: u64) -> impl Fn(u64) -> (u64, u64) + Send + Sync + 'static {
    move |i| {
        sleep_us((len - i) * 100);
        (i, i * i)
    }
}

fn expected(len: u64) -> Vec<(u64, u64)> {
    (0..len).map(|i| (i, i * i)).collect()
}

#[test]
fn results_follow_input_order_with_random_delays_for_every_buffer() {
    guarded(|| {
        for buffer in BUFFERS {
            let got: Vec<_> = configure((0..60u64).lazy_par_map(random_delay), buffer).collect();
            assert_eq!(got, expected(60), "buffer {buffer:?}");
        }
    });
}

#[test]
fn results_follow_input_order_when_later_items_finish_first() {
    guarded(|| {
        for buffer in BUFFERS {
            let got: Vec<_> =
                configure((0..40u64).lazy_par_map(reversed_delay(40)), buffer).collect();
            assert_eq!(got, expected(40), "buffer {buffer:?}");
        }
    });
}

#[test]
fn results_follow_input_order_on_custom_pools_of_one_to_four_threads() {
    guarded(|| {
        for threads in 1..=4 {
            let pool = pool(threads);
            for buffer in [Buffer::Slots(1), Buffer::Slots(3), Buffer::Default] {
                let got: Vec<_> = configure(
                    (0..40u64)
                        .lazy_par_map(random_delay)
                        .pool(Arc::clone(&pool)),
                    buffer,
                )
                .collect();
                assert_eq!(got, expected(40), "{threads} threads, buffer {buffer:?}");
                let got: Vec<_> = configure(
                    (0..30u64)
                        .lazy_par_map(reversed_delay(30))
                        .pool(Arc::clone(&pool)),
                    buffer,
                )
                .collect();
                assert_eq!(got, expected(30), "{threads} threads, buffer {buffer:?}");
            }
        }
    });
}

#[test]
fn results_follow_input_order_for_many_cheap_items() {
    // Cheap items travel in multi-item jobs: order must hold across job boundaries.
    guarded(|| {
        for buffer in [
            Buffer::Slots(7),
            Buffer::Slots(100),
            Buffer::Default,
            Buffer::Unbounded,
        ] {
            let got: Vec<u64> =
                configure((0..20_000u64).lazy_par_map(|x| x * 3 + 1), buffer).collect();
            let want: Vec<u64> = (0..20_000u64).map(|x| x * 3 + 1).collect();
            assert!(
                got == want,
                "buffer {buffer:?}: out of order or missing items"
            );
        }
    });
}

/// With a large buffer and a cheap `f`, a runner claims runs of thousands of items, which
/// span several of the ring's segments (256 slots each) and wrap around the ring: every
/// item must come out once, in order, and once each when unordered (the laps).
#[test]
fn runs_spanning_several_ring_segments_keep_every_item() {
    guarded(|| {
        let n = 300_000u64;
        for buffer in [2048, 16_384, 65_536] {
            let got: Vec<u64> = (0..n)
                .lazy_par_map(|x| x.wrapping_mul(0x9e37_79b9_7f4a_7c15))
                .buffer(buffer)
                .collect();
            let want: Vec<u64> = (0..n)
                .map(|x| x.wrapping_mul(0x9e37_79b9_7f4a_7c15))
                .collect();
            assert!(
                got == want,
                "buffer {buffer}: out of order or missing items"
            );
            let mut got: Vec<u64> = (0..n)
                .lazy_par_map(|x| x)
                .buffer(buffer)
                .unordered()
                .collect();
            got.sort_unstable();
            assert!(
                got.iter().copied().eq(0..n),
                "buffer {buffer}, unordered: an item lost or yielded twice"
            );
        }
    });
}

#[test]
fn owned_non_copy_results_arrive_intact() {
    guarded(|| {
        let words: Vec<String> = (0..500).map(|i| format!("word-{i}")).collect();
        let got: Vec<String> = words
            .clone()
            .into_iter()
            .lazy_par_map(|w| w.to_uppercase())
            .buffer(16)
            .collect();
        let want: Vec<String> = words.iter().map(|w| w.to_uppercase()).collect();
        assert_eq!(got, want);
    });
}

#[test]
fn items_and_results_need_only_be_send() {
    // `Cell` is `Send` but not `Sync`: neither items nor results are shared between threads.
    guarded(|| {
        use std::cell::Cell;
        let got: Vec<u32> = (0..50u32)
            .map(Cell::new)
            .lazy_par_map(|c: Cell<u32>| Cell::new(c.get() + 1))
            .buffer(4)
            .map(Cell::into_inner)
            .collect();
        assert_eq!(got, (1..=50).collect::<Vec<_>>());
    });
}

#[test]
fn zero_sized_results_are_counted_like_any_other() {
    guarded(|| {
        for buffer in BUFFERS {
            let count = configure((0..3000u32).lazy_par_map(|_| ()), buffer).count();
            assert_eq!(count, 3000, "buffer {buffer:?}");
        }
    });
}

#[test]
fn empty_source_yields_nothing_and_never_calls_f() {
    guarded(|| {
        for buffer in BUFFERS {
            let mut it = configure(
                std::iter::empty::<u32>().lazy_par_map(|_: u32| -> u32 { panic!("f called") }),
                buffer,
            );
            assert_eq!(it.size_hint(), (0, Some(0)));
            assert_eq!(it.next(), None, "buffer {buffer:?}");
            assert_eq!(it.next(), None, "buffer {buffer:?}");
        }
    });
}

#[test]
fn size_hint_is_the_sources_minus_items_yielded() {
    guarded(|| {
        let mut it = (0..10u32).lazy_par_map(|x| x).buffer(3);
        assert_eq!(it.size_hint(), (10, Some(10)), "before start");
        it.next();
        it.next();
        it.next();
        assert_eq!(it.size_hint(), (7, Some(7)));
        let rest: Vec<_> = it.by_ref().collect();
        assert_eq!(rest.len(), 7);
        assert_eq!(it.size_hint(), (0, Some(0)), "at the end");

        // An inexact source keeps its own bounds, minus what was yielded.
        let mut it = (0..10u32)
            .filter(|x| x % 2 == 0)
            .lazy_par_map(|x| x)
            .buffer(2);
        assert_eq!(it.size_hint(), (0, Some(10)));
        it.next();
        it.next();
        assert_eq!(it.size_hint(), (0, Some(8)));

        // An infinite source stays unbounded above.
        let mut it = (0u64..).lazy_par_map(|x| x).buffer(2);
        it.next();
        assert_eq!(it.size_hint().1, None);

        // Started but nothing yielded yet.
        let it = (0..5u32).lazy_par_map(|x| x).buffer(2).start();
        assert_eq!(it.size_hint(), (5, Some(5)));
    });
}

#[test]
fn exact_size_source_gives_an_exact_len() {
    guarded(|| {
        let mut it = (0..100u32).lazy_par_map(|x| x + 1).buffer(8);
        assert_eq!(it.len(), 100);
        for _ in 0..30 {
            it.next();
        }
        assert_eq!(it.len(), 70);
        let rest = it.by_ref().count();
        assert_eq!(rest, 70);
        assert_eq!(it.len(), 0);
        // `collect` may preallocate from `len`; the contents must still be right.
        let v: Vec<u32> = vec![5u32; 37].into_iter().lazy_par_map(|x| x * 2).collect();
        assert_eq!(v, vec![10u32; 37]);
    });
}

fn assert_fused<T: FusedIterator>(_: &T) {}

#[test]
fn adapter_is_fused_none_forever_after_the_end() {
    guarded(|| {
        for buffer in BUFFERS {
            let mut it = configure((0..5u32).lazy_par_map(|x| x), buffer);
            assert_fused(&it);
            assert_eq!(it.by_ref().count(), 5);
            for _ in 0..10 {
                assert_eq!(it.next(), None, "buffer {buffer:?}");
            }
        }
        // Even over a source that is not fused itself.
        let mut flip = false;
        let unfused = std::iter::from_fn(move || {
            flip = !flip;
            flip.then_some(1u32)
        });
        let mut it = unfused.lazy_par_map(|x| x).buffer(2);
        assert_eq!(it.next(), Some(1));
        assert_eq!(it.next(), None);
        for _ in 0..10 {
            assert_eq!(it.next(), None);
        }
    });
}

#[test]
fn works_in_the_middle_of_iterator_chains() {
    guarded(|| {
        let got: Vec<u64> = (0..1000u64)
            .filter(|x| x % 3 == 0)
            .lazy_par_map(|x| x * 2)
            .take(10)
            .collect();
        assert_eq!(got, (0..10).map(|i| i * 6).collect::<Vec<_>>());

        let got: Vec<u64> = (0u64..)
            .filter(|x| x % 7 == 1)
            .lazy_par_map(|x| x + 1)
            .buffer(5)
            .skip(2)
            .step_by(2)
            .take(5)
            .collect();
        let want: Vec<u64> = (0u64..)
            .filter(|x| x % 7 == 1)
            .map(|x| x + 1)
            .skip(2)
            .step_by(2)
            .take(5)
            .collect();
        assert_eq!(got, want);

        let pairs: Vec<(usize, char)> = "hello"
            .chars()
            .collect::<Vec<_>>()
            .into_iter()
            .lazy_par_map(|c| c.to_ascii_uppercase())
            .enumerate()
            .collect();
        assert_eq!(
            pairs,
            vec![(0, 'H'), (1, 'E'), (2, 'L'), (3, 'L'), (4, 'O')]
        );

        // Two adapters zipped, consumed alternately from one thread.
        let a = (0..100u32).lazy_par_map(|x| x * 2).buffer(3);
        let b = (0..100u32).lazy_par_map(|x| x * 3).buffer(5);
        let sums: Vec<u32> = a.zip(b).map(|(x, y)| x + y).collect();
        assert_eq!(sums, (0..100).map(|x| x * 5).collect::<Vec<_>>());
    });
}

#[test]
fn fallible_form_keeps_ok_values_in_order() {
    guarded(|| {
        let got: Result<Vec<u64>, String> = (0..200u64)
            .try_lazy_par_map(|i| {
                sleep_us(jitter(i) % 500);
                Ok::<u64, String>(i * 2)
            })
            .buffer(9)
            .collect();
        assert_eq!(got, Ok((0..200).map(|i| i * 2).collect()));
    });
}

#[test]
fn debug_output_does_not_require_a_debug_closure() {
    guarded(debug_without_debug_closure);
}

fn debug_without_debug_closure() {
    struct NotDebug;
    let captured = NotDebug;
    let f = move |x: u32| {
        let _ = &captured;
        x
    };
    let it = (0..3u32).lazy_par_map(f).buffer(2);
    let before = format!("{it:?}");
    assert!(before.contains("LazyParMap"), "{before}");
    let mut it = it;
    assert_eq!(it.next(), Some(0));
    let after = format!("{it:?}");
    assert!(after.contains("LazyParMap"), "{after}");

    let try_it = (0..3u32).try_lazy_par_map(Ok::<u32, NotDebug>);
    let text = format!("{try_it:?}");
    assert!(text.contains("TryLazyParMap"), "{text}");
}
