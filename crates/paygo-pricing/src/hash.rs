//! A fast, deterministic hasher for the model-id index.
//!
//! The index is built once from the book's own ids and only read afterwards; a lookup
//! with a chosen key cannot grow the table, so SipHash's protection against crafted
//! collisions buys nothing here, and its cost is a third of a quote.

use std::hash::{BuildHasherDefault, Hasher};

/// FxHash (the rustc hasher): a multiply and a rotate per word.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct FxHasher {
    hash: u64,
}

const SEED: u64 = 0x51_7c_c1_b7_27_22_0a_95;

impl FxHasher {
    fn add(&mut self, word: u64) {
        self.hash = (self.hash.rotate_left(5) ^ word).wrapping_mul(SEED);
    }
}

impl Hasher for FxHasher {
    fn write(&mut self, bytes: &[u8]) {
        let mut chunks = bytes.chunks_exact(8);
        for chunk in &mut chunks {
            let mut word = [0u8; 8];
            word.copy_from_slice(chunk);
            self.add(u64::from_le_bytes(word));
        }
        let rest = chunks.remainder();
        if !rest.is_empty() {
            let mut word = [0u8; 8];
            word[..rest.len()].copy_from_slice(rest);
            self.add(u64::from_le_bytes(word));
        }
    }

    fn write_u8(&mut self, n: u8) {
        self.add(u64::from(n));
    }

    fn finish(&self) -> u64 {
        self.hash
    }
}

/// The `BuildHasher` of the index.
pub(crate) type FxBuild = BuildHasherDefault<FxHasher>;
