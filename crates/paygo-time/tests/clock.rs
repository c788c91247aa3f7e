//! The clocks' promises: the system clock reads Unix time and never goes backwards (in
//! one thread, across threads through a happens-before edge, and across instances); the
//! manual clock moves only when told to, for every clone.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // tests fail loudly by design

use std::sync::Arc;
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use paygo_time::{Clock, ManualClock, SystemClock};

fn wall_ns() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_nanos() as u64
}

#[test]
fn system_clock_reads_unix_time() {
    let clock = SystemClock::new();
    // Within 50 ms of the wall clock, before and after a sleep (the calibration is
    // accurate to parts per million; the margin is for a loaded machine's scheduling).
    for _ in 0..3 {
        let (before, reading, after) = (wall_ns(), clock.now_ns(), wall_ns());
        assert!(
            reading + 50_000_000 >= before && reading <= after + 50_000_000,
            "{before} {reading} {after}"
        );
        thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn system_clock_elapsed_follows_the_wall_clock() {
    let clock = SystemClock::new();
    let (wall_a, a) = (wall_ns(), clock.now_ns());
    thread::sleep(Duration::from_millis(200));
    let (wall_b, b) = (wall_ns(), clock.now_ns());
    let (elapsed, wall_elapsed) = (b - a, wall_b - wall_a);
    // 1% of 200 ms, far more than a calibration error, less than a wrong scale.
    assert!(
        elapsed.abs_diff(wall_elapsed) < 2_000_000,
        "{elapsed} vs {wall_elapsed}"
    );
}

#[test]
fn system_clock_never_goes_backwards_in_one_thread_nor_across_instances() {
    let mut last = SystemClock::new().now_ns();
    for i in 0..1_000_000 {
        // A new instance now and then: they share the process's anchor.
        let now = if i % 1_000 == 0 {
            SystemClock::new().now_ns()
        } else {
            SystemClock::default().now_ns()
        };
        assert!(now >= last, "went back from {last} to {now}");
        last = now;
    }
}

#[test]
fn system_clock_readings_are_ordered_across_threads() {
    // A reading sent to another thread (happens-before) is never after that thread's
    // next reading.
    let clock = SystemClock::new();
    let (to_b, from_a) = mpsc::channel::<u64>();
    let (to_a, from_b) = mpsc::channel::<u64>();
    let b = thread::spawn(move || {
        for _ in 0..2_000 {
            let seen = from_a.recv().unwrap();
            let now = clock.now_ns();
            assert!(now >= seen, "{now} < {seen}");
            to_a.send(clock.now_ns()).unwrap();
        }
    });
    for _ in 0..2_000 {
        to_b.send(clock.now_ns()).unwrap();
        let seen = from_b.recv().unwrap();
        assert!(clock.now_ns() >= seen);
    }
    b.join().unwrap();
}

#[test]
fn manual_clock_is_shared_by_clones_and_moves_only_when_told() {
    let clock = ManualClock::new(7);
    let handle = clock.clone();
    assert_eq!(clock.now_ns(), 7);
    assert_eq!(handle.advance_ns(3), 10);
    assert_eq!(clock.now_ns(), 10);
    assert_eq!(handle.advance_ns(u64::MAX), u64::MAX);
    handle.set_ns(5);
    assert_eq!(clock.now_ns(), 5);
    assert_eq!(ManualClock::default().now_ns(), 0);
}

#[test]
fn manual_clock_advances_add_up_across_threads() {
    let clock = ManualClock::new(0);
    let threads: Vec<_> = (0..4)
        .map(|_| {
            let clock = clock.clone();
            thread::spawn(move || {
                for _ in 0..10_000 {
                    clock.advance_ns(3);
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    assert_eq!(clock.now_ns(), 120_000);
}

#[test]
fn blanket_impls_read_the_same_clock() {
    fn read(clock: &impl Clock) -> u64 {
        clock.now_ns()
    }
    let clock = ManualClock::new(42);
    let shared: Arc<ManualClock> = Arc::new(clock.clone());
    let dynamic: Arc<dyn Clock> = Arc::new(clock.clone());
    assert_eq!(read(&&clock), 42);
    assert_eq!(read(&shared), 42);
    assert_eq!(read(&dynamic), 42);
    clock.advance_ns(1);
    assert_eq!((read(&shared), read(&dynamic)), (43, 43));
}
