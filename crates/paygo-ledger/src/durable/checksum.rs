//! The journal's checksum (CRC32C) and the hash of its chain (BLAKE3, 256 bits).
//!
//! Both come from their reference crates, `crc32c` and `blake3`, which use the processor's
//! CRC32 instruction and its vector units where it has them (and portable code where it does
//! not): 29 GiB/s and 7.9 GiB/s on the machine of `docs/ledger.md`, against 1.9 and 1.1 GiB/s
//! for the portable CRC32C and `BLAKE2b` this crate, which forbids `unsafe`, can write itself.
//! Replay reads and checks every record, and every durable batch is checksummed and hashed
//! before its sync returns, so the difference is a large part of both (docs/DESIGN.md).

/// Bytes of a chain hash.
pub(crate) const HASH_LEN: usize = 32;

/// A running CRC32C.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Crc32c(u32);

impl Crc32c {
    pub(crate) const fn new() -> Crc32c {
        Crc32c(0)
    }

    /// Adds `data`: the CRC of everything added so far, as if in one piece.
    pub(crate) fn update(&mut self, data: &[u8]) {
        self.0 = ::crc32c::crc32c_append(self.0, data);
    }

    pub(crate) const fn finish(self) -> u32 {
        self.0
    }
}

/// The CRC32C (Castagnoli) of `data`: the checksum of every journal record, snapshot and
/// segment header.
///
/// ```
/// assert_eq!(paygo_ledger::durable::crc32c(b"123456789"), 0xE306_9283);
/// ```
pub fn crc32c(data: &[u8]) -> u32 {
    ::crc32c::crc32c(data)
}

/// A running chain hash (BLAKE3, 256 bits).
#[derive(Debug, Clone)]
pub(crate) struct ChainHasher(blake3::Hasher);

impl ChainHasher {
    pub(crate) fn new() -> ChainHasher {
        ChainHasher(blake3::Hasher::new())
    }

    pub(crate) fn update(&mut self, data: &[u8]) {
        self.0.update(data);
    }

    pub(crate) fn finish(&self) -> [u8; HASH_LEN] {
        *self.0.finalize().as_bytes()
    }
}

/// The BLAKE3 hash (256 bits) of `data`: each journal record carries that of the record
/// before it, which makes the journal a tamper-evident chain.
///
/// ```
/// let hash = paygo_ledger::durable::chain_hash(b"");
/// assert_eq!(hash[..4], [0xaf, 0x13, 0x49, 0xb9]);
/// ```
pub fn chain_hash(data: &[u8]) -> [u8; HASH_LEN] {
    *blake3::hash(data).as_bytes()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn hex(b: &[u8; HASH_LEN]) -> String {
        crate::durable::Head { records: 0, hash: *b }.hash_hex()
    }

    #[test]
    fn crc32c_matches_the_known_vectors() {
        // RFC 3720 B.4 and the usual check value.
        assert_eq!(crc32c(b"123456789"), 0xE306_9283);
        assert_eq!(crc32c(&[0u8; 32]), 0x8A91_36AA);
        assert_eq!(crc32c(&[0xFFu8; 32]), 0x62A8_AB43);
        let inc: Vec<u8> = (0..32).collect();
        assert_eq!(crc32c(&inc), 0x46DD_794E);
        // Split updates agree with one update.
        let data: Vec<u8> = (0..1000u32).map(|i| (i * 7 + 3) as u8).collect();
        for cut in [0, 1, 7, 8, 9, 500, 999, 1000] {
            let mut c = Crc32c::new();
            c.update(&data[..cut]);
            c.update(&data[cut..]);
            assert_eq!(c.finish(), crc32c(&data));
        }
    }

    #[test]
    fn chain_hash_is_blake3_256() {
        // The BLAKE3 specification's test vectors (input byte i is i mod 251).
        let input = |len: usize| (0..len).map(|i| (i % 251) as u8).collect::<Vec<u8>>();
        assert_eq!(
            hex(&chain_hash(&input(0))),
            "af1349b9f5f9a1a6a0404dea36dcc9499bcb25c9adc112b7cc9a93cae41f3262"
        );
        assert_eq!(
            hex(&chain_hash(&input(1))),
            "2d3adedff11b61f14c886e35afa036736dcd87a74d27b5c1510225d0f592e213"
        );
        assert_eq!(
            hex(&chain_hash(&input(1024))),
            "42214739f095a406f3fc83deb889744ac00df831c10daa55189b5d121c855af7"
        );
        let data = input(5000);
        for cut in [0, 1, 1023, 1024, 1025, 4096, 4999, 5000] {
            let mut h = ChainHasher::new();
            h.update(&data[..cut]);
            h.update(&data[cut..]);
            assert_eq!(h.finish(), chain_hash(&data));
        }
    }
}
