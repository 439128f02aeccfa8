//! The success path decides without touching the heap (checked with a counting allocator).
//!
//! This file is its own test binary so that its global allocator counts only its own test.
#![allow(
    unsafe_code,
    reason = "a GlobalAlloc implementation is unsafe by definition"
)]

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, SystemTime};

use novita_policy::{Clock, Decision, Delivery, Draw, NO_HEADERS, Outcome, Policy};

struct Counting;

static ALLOCATIONS: AtomicUsize = AtomicUsize::new(0);

// SAFETY: every call is forwarded unchanged to the system allocator; only a counter is added.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        ALLOCATIONS.fetch_add(1, Ordering::SeqCst);
        // SAFETY: the caller's contract for `alloc` is passed through as is.
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: the caller's contract for `dealloc` is passed through as is.
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

#[test]
fn the_success_path_does_not_allocate() {
    let policy = Policy::default();
    let mut state = policy.client_state();
    let clock = Clock {
        now: Duration::from_secs(5),
        wall: SystemTime::UNIX_EPOCH,
    };
    let success = Outcome::Response {
        status: 200,
        headers: &NO_HEADERS,
        body: b"",
    };

    // Make the model known to the state first, as after an earlier failure.
    let mut call = policy.start_call(clock.now, Delivery::Buffered, 2);
    let failure = Outcome::Response {
        status: 503,
        headers: &NO_HEADERS,
        body: b"",
    };
    let _ = policy.decide(&mut state, &mut call, "model", &failure, clock, Draw::HALF);

    for key in ["model", "new-model"] {
        // A model's first call creates its state once (its sending rate is measured from
        // then on); every later call on the success path allocates nothing.
        let mut first = policy.start_call(clock.now, Delivery::Buffered, 2);
        let _ = policy.admit(&mut state, &mut first, key, clock.now);
        let _ = policy.decide(&mut state, &mut first, key, &success, clock, Draw::HALF);
        let before = ALLOCATIONS.load(Ordering::SeqCst);
        let mut call = policy.start_call(clock.now, Delivery::Buffered, 2);
        let admission = policy.admit(&mut state, &mut call, key, clock.now);
        let decision = policy.decide(&mut state, &mut call, key, &success, clock, Draw::HALF);
        let after = ALLOCATIONS.load(Ordering::SeqCst);
        assert!(matches!(admission, novita_policy::Admission::Send));
        assert_eq!(decision, Decision::Done);
        assert_eq!(after - before, 0, "{key}: the success path allocated");
    }

    // The counter does count: a failure path that builds a give-up allocates.
    let before = ALLOCATIONS.load(Ordering::SeqCst);
    let mut call = policy.start_call(clock.now, Delivery::Buffered, 1);
    let bad = Outcome::Response {
        status: 400,
        headers: &NO_HEADERS,
        body: br#"{"message":"bad"}"#,
    };
    let _ = policy.decide(&mut state, &mut call, "model", &bad, clock, Draw::HALF);
    assert!(ALLOCATIONS.load(Ordering::SeqCst) > before);
}
