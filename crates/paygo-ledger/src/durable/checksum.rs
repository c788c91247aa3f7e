//! CRC32C (Castagnoli) and BLAKE2b-256, implemented from their specifications: the
//! journal's record checksum and the hash of its chain.

/// The reflected CRC32C polynomial (iSCSI, RFC 3720).
const POLY: u32 = 0x82F6_3B78;

/// Slicing-by-8 tables: `TABLES[k][b]` is the CRC of byte `b` followed by `k` zero bytes.
static TABLES: [[u32; 256]; 8] = tables();

const fn tables() -> [[u32; 256]; 8] {
    let mut t = [[0u32; 256]; 8];
    let mut b = 0;
    while b < 256 {
        let mut crc = b as u32;
        let mut bit = 0;
        while bit < 8 {
            crc = if crc & 1 == 1 { (crc >> 1) ^ POLY } else { crc >> 1 };
            bit += 1;
        }
        t[0][b] = crc;
        b += 1;
    }
    let mut k = 1;
    while k < 8 {
        let mut b = 0;
        while b < 256 {
            let prev = t[k - 1][b];
            t[k][b] = (prev >> 8) ^ t[0][(prev & 0xFF) as usize];
            b += 1;
        }
        k += 1;
    }
    t
}

/// A running CRC32C.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Crc32c(u32);

impl Crc32c {
    pub(crate) const fn new() -> Crc32c {
        Crc32c(!0)
    }

    /// Adds `data`, eight bytes at a time (slicing-by-8).
    pub(crate) fn update(&mut self, data: &[u8]) {
        let mut crc = self.0;
        let mut chunks = data.chunks_exact(8);
        for c in &mut chunks {
            let lo = u32::from_le_bytes([c[0], c[1], c[2], c[3]]) ^ crc;
            crc = TABLES[7][(lo & 0xFF) as usize]
                ^ TABLES[6][((lo >> 8) & 0xFF) as usize]
                ^ TABLES[5][((lo >> 16) & 0xFF) as usize]
                ^ TABLES[4][(lo >> 24) as usize]
                ^ TABLES[3][c[4] as usize]
                ^ TABLES[2][c[5] as usize]
                ^ TABLES[1][c[6] as usize]
                ^ TABLES[0][c[7] as usize];
        }
        for &b in chunks.remainder() {
            crc = (crc >> 8) ^ TABLES[0][((crc ^ u32::from(b)) & 0xFF) as usize];
        }
        self.0 = crc;
    }

    pub(crate) const fn finish(self) -> u32 {
        !self.0
    }
}

/// The CRC32C (Castagnoli) of `data`: the checksum of every journal record, snapshot and
/// segment header.
///
/// ```
/// assert_eq!(paygo_ledger::durable::crc32c(b"123456789"), 0xE306_9283);
/// ```
pub fn crc32c(data: &[u8]) -> u32 {
    let mut c = Crc32c::new();
    c.update(data);
    c.finish()
}

const IV: [u64; 8] = [
    0x6a09_e667_f3bc_c908,
    0xbb67_ae85_84ca_a73b,
    0x3c6e_f372_fe94_f82b,
    0xa54f_f53a_5f1d_36f1,
    0x510e_527f_ade6_82d1,
    0x9b05_688c_2b3e_6c1f,
    0x1f83_d9ab_fb41_bd6b,
    0x5be0_cd19_137e_2179,
];

const SIGMA: [[usize; 16]; 12] = [
    [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15],
    [14, 10, 4, 8, 9, 15, 13, 6, 1, 12, 0, 2, 11, 7, 5, 3],
    [11, 8, 12, 0, 5, 2, 15, 13, 10, 14, 3, 6, 7, 1, 9, 4],
    [7, 9, 3, 1, 13, 12, 11, 14, 2, 6, 5, 10, 4, 0, 15, 8],
    [9, 0, 5, 7, 2, 4, 10, 15, 14, 1, 11, 12, 6, 8, 3, 13],
    [2, 12, 6, 10, 0, 11, 8, 3, 4, 13, 7, 5, 15, 14, 1, 9],
    [12, 5, 1, 15, 14, 13, 4, 10, 0, 7, 6, 3, 9, 2, 8, 11],
    [13, 11, 7, 14, 12, 1, 3, 9, 5, 0, 15, 4, 8, 6, 2, 10],
    [6, 15, 14, 9, 11, 3, 0, 8, 12, 2, 13, 7, 1, 4, 10, 5],
    [10, 2, 8, 4, 7, 6, 1, 5, 15, 11, 9, 14, 3, 12, 13, 0],
    [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15],
    [14, 10, 4, 8, 9, 15, 13, 6, 1, 12, 0, 2, 11, 7, 5, 3],
];

/// The size of a chain hash, in bytes.
pub(crate) const HASH_LEN: usize = 32;

/// A running `BLAKE2b` with a 256-bit digest and no key (RFC 7693).
#[derive(Debug, Clone)]
pub(crate) struct Blake2b {
    h: [u64; 8],
    buf: [u8; 128],
    buf_len: usize,
    /// Bytes compressed so far (the counter `t`).
    t: u128,
}

/// The mixing function G on four words of the state, with two message words.
macro_rules! g {
    ($a:ident, $b:ident, $c:ident, $d:ident, $x:expr, $y:expr) => {
        $a = $a.wrapping_add($b).wrapping_add($x);
        $d = ($d ^ $a).rotate_right(32);
        $c = $c.wrapping_add($d);
        $b = ($b ^ $c).rotate_right(24);
        $a = $a.wrapping_add($b).wrapping_add($y);
        $d = ($d ^ $a).rotate_right(16);
        $c = $c.wrapping_add($d);
        $b = ($b ^ $c).rotate_right(63);
    };
}

impl Blake2b {
    pub(crate) fn new() -> Blake2b {
        let mut h = IV;
        // Parameter block: digest length 32, no key, fanout 1, depth 1.
        h[0] ^= 0x0101_0000 ^ HASH_LEN as u64;
        Blake2b {
            h,
            buf: [0; 128],
            buf_len: 0,
            t: 0,
        }
    }

    #[allow(clippy::similar_names)] // v0..v15 are the RFC's names
    fn compress(&mut self, block: &[u8], last: bool) {
        let mut m = [0u64; 16];
        for (w, b) in m.iter_mut().zip(block.chunks_exact(8)) {
            *w = u64::from_le_bytes([b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7]]);
        }
        // The working vector in sixteen locals, so that it stays in registers; each round's
        // message schedule is a constant row of SIGMA, so its indices are constants too.
        let [mut v0, mut v1, mut v2, mut v3, mut v4, mut v5, mut v6, mut v7] = self.h;
        let [mut v8, mut v9, mut v10, mut v11, v12, v13, v14, mut v15] = IV;
        let mut v12 = v12 ^ self.t as u64;
        let mut v13 = v13 ^ (self.t >> 64) as u64;
        let mut v14 = if last { !v14 } else { v14 };
        macro_rules! round {
            ($r:expr) => {
                let s = &SIGMA[$r];
                g!(v0, v4, v8, v12, m[s[0]], m[s[1]]);
                g!(v1, v5, v9, v13, m[s[2]], m[s[3]]);
                g!(v2, v6, v10, v14, m[s[4]], m[s[5]]);
                g!(v3, v7, v11, v15, m[s[6]], m[s[7]]);
                g!(v0, v5, v10, v15, m[s[8]], m[s[9]]);
                g!(v1, v6, v11, v12, m[s[10]], m[s[11]]);
                g!(v2, v7, v8, v13, m[s[12]], m[s[13]]);
                g!(v3, v4, v9, v14, m[s[14]], m[s[15]]);
            };
        }
        round!(0);
        round!(1);
        round!(2);
        round!(3);
        round!(4);
        round!(5);
        round!(6);
        round!(7);
        round!(8);
        round!(9);
        round!(10);
        round!(11);
        let v = [v0, v1, v2, v3, v4, v5, v6, v7, v8, v9, v10, v11, v12, v13, v14, v15];
        for i in 0..8 {
            self.h[i] ^= v[i] ^ v[i + 8];
        }
    }

    pub(crate) fn update(&mut self, mut data: &[u8]) {
        // The last block is compressed in `finish`, so a full buffer waits for more data.
        if self.buf_len > 0 {
            let take = (128 - self.buf_len).min(data.len());
            self.buf[self.buf_len..self.buf_len + take].copy_from_slice(&data[..take]);
            self.buf_len += take;
            data = &data[take..];
            if data.is_empty() {
                return;
            }
            self.t += 128;
            let block = self.buf;
            self.compress(&block, false);
            self.buf_len = 0;
        }
        while data.len() > 128 {
            self.t += 128;
            self.compress(&data[..128], false);
            data = &data[128..];
        }
        self.buf[..data.len()].copy_from_slice(data);
        self.buf_len = data.len();
    }

    pub(crate) fn finish(mut self) -> [u8; HASH_LEN] {
        self.t += self.buf_len as u128;
        self.buf[self.buf_len..].fill(0);
        let block = self.buf;
        self.compress(&block, true);
        let mut out = [0u8; HASH_LEN];
        for (i, w) in self.h.iter().take(HASH_LEN / 8).enumerate() {
            out[i * 8..i * 8 + 8].copy_from_slice(&w.to_le_bytes());
        }
        out
    }
}

/// The BLAKE2b-256 of `data` (RFC 7693, 32-byte digest, no key): the hash of the journal's
/// chain.
///
/// ```
/// let hash = paygo_ledger::durable::blake2b_256(b"");
/// assert_eq!(hash[..4], [0x0e, 0x57, 0x51, 0xc0]);
/// ```
pub fn blake2b_256(data: &[u8]) -> [u8; HASH_LEN] {
    let mut h = Blake2b::new();
    h.update(data);
    h.finish()
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
    fn blake2b_256_matches_the_known_vectors() {
        assert_eq!(
            hex(&blake2b_256(b"")),
            "0e5751c026e543b2e8ab2eb06099daa1d1e5df47778f7787faab45cdf12fe3a8"
        );
        assert_eq!(
            hex(&blake2b_256(b"abc")),
            "bddd813c634239723171ef3fee98579b94964e3bb1cb3e427262c8c068d52319"
        );
        let data: Vec<u8> = (0..1000u32).map(|i| (i * 13 + 1) as u8).collect();
        for cut in [0, 1, 127, 128, 129, 256, 999, 1000] {
            let mut h = Blake2b::new();
            h.update(&data[..cut]);
            h.update(&data[cut..]);
            assert_eq!(h.finish(), blake2b_256(&data));
        }
    }
}
