//! `buffer(0)` and configuring after the start panic at the caller's line
//! (`#[track_caller]` all the way down), so the message points at the mistake.
//! Alone in its binary: it installs a panic hook, which is process-wide.

use lazy_par_map::prelude::*;
use std::panic::{self, AssertUnwindSafe};
use std::sync::{Arc, Mutex};

fn panic_location(f: impl FnOnce()) -> (String, u32) {
    let seen: Arc<Mutex<Option<(String, u32)>>> = Arc::default();
    let hook_seen = Arc::clone(&seen);
    let previous = panic::take_hook();
    panic::set_hook(Box::new(move |info| {
        if let Some(location) = info.location() {
            *hook_seen.lock().unwrap() = Some((location.file().to_owned(), location.line()));
        }
    }));
    let result = panic::catch_unwind(AssertUnwindSafe(f));
    panic::set_hook(previous);
    assert!(result.is_err(), "expected a panic");
    let location = seen.lock().unwrap().take();
    location.expect("the panic had a location")
}

#[test]
fn configuration_panics_point_at_the_callers_line() {
    let (file, line) = panic_location(|| {
        let _ = (0..3).lazy_par_map(|x| x).buffer(0);
    });
    assert!(file.ends_with("caller_line.rs"), "{file}");
    assert_eq!(line, line!() - 3);

    let (file, line) = panic_location(|| {
        let _ = (0..3).try_lazy_par_map(Ok::<i32, ()>).buffer(0);
    });
    assert!(file.ends_with("caller_line.rs"), "{file}");
    assert_eq!(line, line!() - 3);

    let (file, line) = panic_location(|| {
        let started = (0..3).lazy_par_map(|x| x).start();
        let _ = started.unordered();
    });
    assert!(file.ends_with("caller_line.rs"), "{file}");
    assert_eq!(line, line!() - 3);

    let (file, line) = panic_location(|| {
        let _ = (0..3).readahead(0);
    });
    assert!(file.ends_with("caller_line.rs"), "{file}");
    assert_eq!(line, line!() - 3);
}
