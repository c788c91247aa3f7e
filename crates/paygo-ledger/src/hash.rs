//! A fast hasher for 128-bit ids.

use std::hash::{BuildHasherDefault, Hasher};

/// Mixes a 128-bit id into 64 bits (a multiply-xorshift): ids are caller-chosen and often
/// sequential, which this spreads over the whole table. Not DoS-resistant by design: ids
/// come from the service that owns the ledger, not from the public.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct IdHasher {
    hash: u64,
}

impl Hasher for IdHasher {
    fn write(&mut self, bytes: &[u8]) {
        for chunk in bytes.chunks(8) {
            let mut word = [0u8; 8];
            word[..chunk.len()].copy_from_slice(chunk);
            self.write_u64(u64::from_le_bytes(word));
        }
    }

    fn write_u64(&mut self, n: u64) {
        let x = (self.hash ^ n).wrapping_mul(0x9E37_79B9_7F4A_7C15);
        self.hash = x ^ (x >> 29);
    }

    fn write_u128(&mut self, n: u128) {
        self.write_u64(n as u64);
        self.write_u64((n >> 64) as u64);
    }

    fn finish(&self) -> u64 {
        self.hash
    }
}

/// The `BuildHasher` of the ledger's maps.
pub(crate) type IdBuild = BuildHasherDefault<IdHasher>;
