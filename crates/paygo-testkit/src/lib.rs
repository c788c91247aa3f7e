//! Test support shared by paygo's crates (not published): one seeded generator and the
//! proptest settings every property test uses; with the `storage` feature, temp
//! directories, a storage that "crashes" and one that injects the faults of the storage
//! fault model (`docs/ledger.md`); with the `upstream` feature, a fake OpenAI-compatible
//! upstream over HTTP (`upstream::FakeUpstream`) for the metering proxy's tests.
//!
//! ```
//! use paygo_testkit::rng::Rng;
//!
//! // The same seed gives the same run everywhere.
//! let (mut a, mut b) = (Rng(7), Rng(7));
//! assert_eq!(a.next_u64(), b.next_u64());
//! assert!(a.below(10) < 10);
//! ```
//!
//! A test failure is a panic, so this crate may unwrap and panic where a library may not.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::missing_panics_doc)]

#[cfg(feature = "storage")]
pub mod faults;
pub mod rng;
#[cfg(feature = "storage")]
pub mod store;
#[cfg(feature = "upstream")]
pub mod upstream;

use proptest::test_runner::{Config, FileFailurePersistence};

/// The proptest settings of paygo's property tests: `cases` cases (or `PROPTEST_CASES`
/// when set, to run longer), failures persisted in `regressions` (a path from the crate's
/// directory, such as `"tests/properties.proptest-regressions"`: committed, replayed first).
pub fn proptest_config(cases: u32, regressions: &'static str) -> Config {
    let cases = std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(cases);
    Config {
        cases,
        failure_persistence: Some(Box::new(FileFailurePersistence::Direct(regressions))),
        ..Config::default()
    }
}
