//! A fast, randomly seeded hasher for the sharded store.
//!
//! std's default `RandomState` (SipHash-1-3) costs tens of nanoseconds per key, which
//! is most of a rate-limit check. This hasher mixes each 64-bit word with one folded
//! 64x64->128-bit multiply (the construction of foldhash and aHash's fallback), keyed
//! by two per-store random seeds taken from `RandomState`, so the bucket of a key is not
//! predictable from outside the process.

use std::collections::hash_map::RandomState;
use std::hash::{BuildHasher, Hasher};

/// Multiplies two words to 128 bits and folds the halves together.
#[inline]
fn fold(a: u64, b: u64) -> u64 {
    let p = u128::from(a) * u128::from(b);
    (p as u64) ^ ((p >> 64) as u64)
}

/// Odd constants (from the fractional parts of pi), mixed into the random seeds.
const PI_0: u64 = 0x243f_6a88_85a3_08d3;
const PI_1: u64 = 0x1319_8a2e_0370_7344;

/// Eight bytes from `at` (little-endian); 0 past the end, which callers never ask for.
#[inline]
fn read_u64(bytes: &[u8], at: usize) -> u64 {
    bytes
        .get(at..at + 8)
        .and_then(|b| <[u8; 8]>::try_from(b).ok())
        .map_or(0, u64::from_le_bytes)
}

/// Four bytes from `at` (little-endian); 0 past the end, which callers never ask for.
#[inline]
fn read_u32(bytes: &[u8], at: usize) -> u32 {
    bytes
        .get(at..at + 4)
        .and_then(|b| <[u8; 4]>::try_from(b).ok())
        .map_or(0, u32::from_le_bytes)
}

/// Builds [`FoldHasher`]s with one pair of random seeds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct FoldBuildHasher {
    seed: u64,
    multiplier: u64,
}

impl FoldBuildHasher {
    /// A builder with fresh random seeds (from std's `RandomState`).
    pub fn new() -> Self {
        let state = RandomState::new();
        FoldBuildHasher {
            seed: state.hash_one(PI_0) ^ PI_0,
            multiplier: state.hash_one(PI_1) | 1,
        }
    }

    /// A builder with fixed seeds, for reproducible layouts in tests and benchmarks.
    /// Do not use for keys an attacker chooses.
    pub fn with_seeds(seed: u64, multiplier: u64) -> Self {
        FoldBuildHasher {
            seed,
            multiplier: multiplier | 1,
        }
    }
}

impl Default for FoldBuildHasher {
    fn default() -> Self {
        FoldBuildHasher::new()
    }
}

impl BuildHasher for FoldBuildHasher {
    type Hasher = FoldHasher;

    #[inline]
    fn build_hasher(&self) -> FoldHasher {
        FoldHasher {
            state: self.seed,
            multiplier: self.multiplier,
        }
    }
}

/// The hasher [`FoldBuildHasher`] builds: one folded multiply per 64-bit word.
#[derive(Debug, Clone)]
pub struct FoldHasher {
    state: u64,
    multiplier: u64,
}

impl FoldHasher {
    #[inline]
    fn mix(&mut self, word: u64) {
        self.state = fold(self.state ^ word, self.multiplier ^ PI_1).rotate_left(23);
    }
}

impl Hasher for FoldHasher {
    #[inline]
    fn finish(&self) -> u64 {
        self.state
    }

    #[inline]
    fn write(&mut self, bytes: &[u8]) {
        // Whole words, the last one overlapping the one before (no byte loop and no
        // memcpy call, which made string keys three times slower); the length keeps
        // "ab" and "ab\0" apart.
        let len = bytes.len();
        let tag = (len as u64).rotate_right(8);
        if len >= 8 {
            let mut at = 0;
            while at + 8 < len {
                self.mix(read_u64(bytes, at));
                at += 8;
            }
            self.mix(read_u64(bytes, len - 8) ^ tag);
        } else if len >= 4 {
            let low = u64::from(read_u32(bytes, 0));
            let high = u64::from(read_u32(bytes, len - 4));
            self.mix((low | (high << 32)) ^ tag);
        } else {
            let word = bytes
                .iter()
                .enumerate()
                .fold(0u64, |word, (i, &b)| word | (u64::from(b) << (8 * i)));
            self.mix(word ^ tag);
        }
    }

    #[inline]
    fn write_u8(&mut self, i: u8) {
        self.mix(u64::from(i));
    }

    #[inline]
    fn write_u16(&mut self, i: u16) {
        self.mix(u64::from(i));
    }

    #[inline]
    fn write_u32(&mut self, i: u32) {
        self.mix(u64::from(i));
    }

    #[inline]
    fn write_u64(&mut self, i: u64) {
        self.mix(i);
    }

    #[inline]
    fn write_u128(&mut self, i: u128) {
        self.mix(i as u64);
        self.mix((i >> 64) as u64);
    }

    #[inline]
    fn write_usize(&mut self, i: usize) {
        self.mix(i as u64);
    }
}
