//! [`FlatStore`]: a lock-free open-addressing table for integer and string keys.
//!
//! # The design
//!
//! Each shard is a linear-probing table of slots. A slot is one *state word* and the
//! key's identity words (one for integers up to 64 bits, 16 bytes a slot; two for `u128`
//! and strings, 32 bytes a slot), in 64-byte lines. A check of a key that is present reads
//! the clock, hashes the key, probes, and updates the state word with one
//! compare-exchange: no lock, and no shared cache line is written except the key's own.
//!
//! The state word is the key's TAT XOR a mask derived from the key's hash (`word = (tat |
//! stamp) ^ mask`), with the top bit clear; bit 62 is the change stamp, which a quota change
//! flips in every entry it rewrites (a check that read the entry before then fails its
//! compare-exchange), so TATs are below 2^62 ns (146 years after 1970: the year 2116). Words with the top bit set are
//! markers: `EMPTY` (ends a probe), `DEAD` (an evicted key's slot, a tombstone
//! probes pass over and inserts reuse) and *frozen* (`word | 2^63`: the entry is being moved
//! by a rebuild). Inserts, sweeps and rebuilds take the shard's mutex; a check that finds
//! its key absent, frozen or moved takes it too and looks again.
//!
//! Why this is exact without a lock:
//! - A rebuild freezes an entry with a compare-exchange before it copies it, so a
//!   concurrent update either lands before the freeze (and is copied) or fails (and the
//!   check retries under the mutex).
//! - A reader loads the state word, then the key words, then the state word again (all
//!   acquire), and uses the word only if both loads agree; a writer writes the key words
//!   before it publishes the state word (release). So the word a reader uses was the
//!   slot's while the slot held its key: an answer that writes nothing (a refusal, a peek)
//!   never reports another key's state. After a failed compare-exchange the reader checks
//!   the key again; a compare-exchange can only succeed on the very word the reader read.
//! - The one remaining race is a reader that read key `A`'s word `x`, stalled while the
//!   slot was emptied and given to key `B`, and then finds `B`'s word equal to `x`. `B`'s
//!   word is `B`'s TAT XOR `B`'s mask and `A`'s was `A`'s TAT XOR `A`'s mask, masks being
//!   63-bit outputs of a per-store randomly seeded hash: the words are equal with
//!   probability 2^-63 per such stall, which needs a thread to stall across a whole sweep.
//! - A grown shard moves to a new table; old tables are kept (every entry frozen) until
//!   the store is dropped, so a stalled reader never reads freed memory. Tables double, so
//!   the old ones add at most the size of the current one.
//!
//! Strings are stored as a 128-bit keyed fingerprint, not as text (see [`FlatKey`]).

use std::collections::HashSet;
use std::hash::BuildHasher;
use std::marker::PhantomData;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Mutex, MutexGuard, OnceLock, PoisonError};

use crate::error::RateLimitError;
use crate::gcra::{self, Decision};
use crate::hash::FoldBuildHasher;
use crate::quota::Quota;
use crate::store::Store;

/// A key [`FlatStore`] can hold: its identity as one or two 64-bit words.
///
/// Integers are their own identity, so distinct keys never share a state. Strings are
/// identified by a 128-bit fingerprint: two independently seeded 64-bit hashes of the
/// text (seeds drawn per store from `RandomState`). Two distinct strings share a state
/// only if both hashes collide; for `n` keys the chance that any two do is about
/// `n^2 / 2^129`, which is 1.5 x 10^-27 for a million keys. The hash is fast rather than
/// cryptographic: keys an attacker can choose freely and test against the limiter (an
/// unauthenticated request's API key) should be authenticated first, or kept in the
/// exact [`MemoryStore`](crate::MemoryStore).
pub trait FlatKey: Send + Sync {
    /// Whether the identity takes two words (`u128`, strings) rather than one.
    const WIDE: bool;

    /// The identity words (the second is 0 when not [`FlatKey::WIDE`]). `seeds` are the
    /// store's hash seeds, for fingerprints.
    fn flat_id(&self, seeds: &[FoldBuildHasher; 2]) -> [u64; 2];
}

macro_rules! narrow_key {
    ($($t:ty),*) => {$(
        impl FlatKey for $t {
            const WIDE: bool = false;
            #[inline]
            #[allow(clippy::cast_sign_loss, clippy::cast_lossless, clippy::cast_possible_wrap)] // a bijection onto u64
            fn flat_id(&self, _seeds: &[FoldBuildHasher; 2]) -> [u64; 2] {
                [*self as u64, 0]
            }
        }
    )*};
}

narrow_key!(u8, u16, u32, u64, usize, i8, i16, i32, i64, isize);

impl FlatKey for u128 {
    const WIDE: bool = true;
    #[inline]
    fn flat_id(&self, _seeds: &[FoldBuildHasher; 2]) -> [u64; 2] {
        [*self as u64, (*self >> 64) as u64]
    }
}

impl FlatKey for i128 {
    const WIDE: bool = true;
    #[inline]
    #[allow(clippy::cast_sign_loss)] // a bijection onto u128
    fn flat_id(&self, seeds: &[FoldBuildHasher; 2]) -> [u64; 2] {
        (*self as u128).flat_id(seeds)
    }
}

impl FlatKey for str {
    const WIDE: bool = true;
    #[inline]
    fn flat_id(&self, seeds: &[FoldBuildHasher; 2]) -> [u64; 2] {
        [seeds[0].hash_one(self), seeds[1].hash_one(self)]
    }
}

impl FlatKey for String {
    const WIDE: bool = true;
    #[inline]
    fn flat_id(&self, seeds: &[FoldBuildHasher; 2]) -> [u64; 2] {
        self.as_str().flat_id(seeds)
    }
}

impl<T: FlatKey + ?Sized> FlatKey for &T {
    const WIDE: bool = T::WIDE;
    #[inline]
    fn flat_id(&self, seeds: &[FoldBuildHasher; 2]) -> [u64; 2] {
        (**self).flat_id(seeds)
    }
}

/// Options of a [`FlatStore`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct FlatStoreOptions {
    /// Number of shards, rounded up to a power of two, from 1 to [`SHARDS_MAX`](crate::SHARDS_MAX).
    /// Shards only divide inserts, sweeps and rebuilds: checks of present keys take no
    /// lock at all.
    pub shards: usize,
    /// How long a key must have been full before a sweep drops it (a key that comes back
    /// within this time is found in place). [`Store::evict_full`] ignores it.
    pub idle_ns: u64,
}

impl Default for FlatStoreOptions {
    fn default() -> Self {
        FlatStoreOptions {
            shards: 16,
            idle_ns: 10 * 1_000_000_000,
        }
    }
}

const EMPTY: u64 = u64::MAX;
const DEAD: u64 = u64::MAX - 1;
const FROZEN: u64 = 1 << 63;
/// The change stamp: a quota change flips it in every entry it converts, so that a check
/// that read an entry before the change fails its compare-exchange (even where the
/// conversion leaves the TAT as it was) and reads the entry, and the quota, again.
const STAMP: u64 = 1 << 62;
/// The largest TAT a [`FlatStore`] holds (2^62 - 1 ns after 1970: the year 2116).
pub(crate) const TAT_MAX: u64 = STAMP - 1;
/// Slots per shard of a new store.
const SLOTS_MIN: usize = 16;
/// Tables per shard: the last one has `SLOTS_MIN << (LEVELS - 1)` slots, far beyond memory.
const LEVELS: usize = 44;
const MIX: u64 = 0x9e37_79b9_7f4a_7c15;

#[derive(Debug)]
#[repr(align(64))]
struct Line([AtomicU64; 8]);

/// One table of a shard: `slots` slots of `stride` words.
#[derive(Debug)]
struct Table {
    lines: Box<[Line]>,
    mask: usize,
}

impl Table {
    fn new(slots: usize, stride: usize) -> Table {
        let lines = (slots * stride).div_ceil(8);
        Table {
            lines: (0..lines)
                .map(|_| Line(std::array::from_fn(|_| AtomicU64::new(EMPTY))))
                .collect(),
            mask: slots - 1,
        }
    }

    fn slots(&self) -> usize {
        self.mask + 1
    }

    fn bytes(&self) -> usize {
        self.lines.len() * std::mem::size_of::<Line>()
    }

    /// Word `w` of slot `slot`: 0 is the state, 1 and 2 the identity. A slot never
    /// straddles two lines (the stride, 2 or 4 words, divides 8).
    #[inline]
    fn word(&self, slot: usize, stride: usize, w: usize) -> &AtomicU64 {
        let at = slot * stride;
        &self.lines[at >> 3].0[(at + w) & 7]
    }
}

/// What a shard's mutex guards: the counts that decide sweeps and rebuilds.
#[derive(Debug, Default)]
struct Counts {
    /// Keys held.
    live: usize,
    /// Slots not `EMPTY` (live keys and tombstones).
    used: usize,
}

#[derive(Debug)]
#[repr(align(128))]
struct Shard {
    current: AtomicUsize,
    /// Inline (not boxed), so that finding the current table is one load fewer.
    levels: [OnceLock<Table>; LEVELS],
    writer: Mutex<Counts>,
}

impl Shard {
    #[inline]
    fn table(&self) -> Option<&Table> {
        self.levels.get(self.current.load(Ordering::Acquire))?.get()
    }

    fn lock(&self) -> MutexGuard<'_, Counts> {
        self.writer.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// Where a probe ended.
enum Probe {
    /// The key's slot and the state word read there.
    Found(usize, u64),
    /// The key is absent.
    Absent,
    /// The key is being moved: look again under the mutex.
    Busy,
}

/// The in-process [`Store`] for integer ids and strings: lock-free checks on a flat
/// open-addressing table.
///
/// A check of a key the store holds takes no lock: it probes the key's shard and updates
/// the key's state word with one compare-exchange, so checks of one key or of many run in
/// parallel and write no shared cache line. Inserting a key, sweeping idle keys and
/// growing a table take the shard's mutex. Integer keys are stored exactly; strings as a
/// 128-bit fingerprint (see [`FlatKey`] for the collision bound). The design and its
/// proof are in `docs/ratelimit.md`.
///
/// Memory: 16 bytes a slot for keys up to 64 bits, 32 for `u128` and strings, at a load
/// between 40% and 81% after growth (about 20 to 40 bytes per `u64` key), plus the smaller
/// tables a shard has outgrown, which are kept until the store is dropped (at most as large
/// again). Keys full for [`FlatStoreOptions::idle_ns`] are swept when a shard fills up, so
/// keys that come and go reuse the same slots; [`FlatStore::evict_full`] drops every full
/// key on demand. Tables do not shrink: memory follows the most keys held at once.
///
/// ```
/// use paygo_ratelimit::{FlatStore, Quota, Store};
///
/// use paygo_ratelimit::{ManualClock, Policy, PolicyName, RateLimiter, Unit};
///
/// // The limiter for integer account ids, on a FlatStore.
/// let clock = ManualClock::new(0);
/// let policy = Policy { name: PolicyName::new("payg")?, unit: Unit::Requests, quota: Quota::pay_as_you_go() };
/// let limiter: RateLimiter<u64, _, FlatStore<u64>> =
///     RateLimiter::with_clock_and_store(policy, clock.clone(), FlatStore::new());
/// assert!(limiter.check(&7)?.allowed);
///
/// // The store alone.
/// let store: FlatStore<u64> = FlatStore::new();
/// let quota = Quota::per_second(5, 2)?;
/// assert!(store.check_and_update(&42, 0, &quota, 2)?.allowed);
/// assert!(!store.check_and_update(&42, 0, &quota, 1)?.allowed);
/// assert_eq!(store.len(), 1);
/// // 2 x T later the key is full again, and can be forgotten.
/// assert_eq!(store.evict_full(2 * quota.emission_interval_ns()), 1);
/// assert!(store.is_empty());
/// # Ok::<(), paygo_ratelimit::RateLimitError>(())
/// ```
#[derive(Debug)]
pub struct FlatStore<K: ?Sized> {
    shards: Box<[Shard]>,
    shard_mask: usize,
    seeds: [FoldBuildHasher; 2],
    mix_seed: u64,
    idle_ns: u64,
    key: PhantomData<fn(&K)>,
}

impl<K: FlatKey + ?Sized> Default for FlatStore<K> {
    fn default() -> Self {
        FlatStore::new()
    }
}

/// One folded 64x64->128-bit multiply.
#[inline]
fn fold(a: u64, b: u64) -> u64 {
    let p = u128::from(a) * u128::from(b);
    (p as u64) ^ ((p >> 64) as u64)
}

impl<K: FlatKey + ?Sized> FlatStore<K> {
    const STRIDE: usize = if K::WIDE { 4 } else { 2 };

    /// A store with default options (16 shards, keys dropped after 10 s full).
    pub fn new() -> Self {
        FlatStore::with_options(FlatStoreOptions::default())
    }

    /// A store with the given options; the shard count is clamped to
    /// `1..=SHARDS_MAX` and rounded up to a power of two.
    pub fn with_options(options: FlatStoreOptions) -> Self {
        FlatStore::with_options_and_hasher(options, FoldBuildHasher::new(), FoldBuildHasher::new())
    }

    /// A store with the given options and hash seeds (fixed seeds make a reproducible
    /// layout for tests; do not use them for keys an attacker chooses).
    pub fn with_options_and_hasher(options: FlatStoreOptions, first: FoldBuildHasher, second: FoldBuildHasher) -> Self {
        let shards = options.shards.clamp(1, crate::SHARDS_MAX).next_power_of_two();
        FlatStore {
            shards: (0..shards)
                .map(|_| {
                    let levels: [OnceLock<Table>; LEVELS] = std::array::from_fn(|_| OnceLock::new());
                    // The first table of every shard exists from the start.
                    let _ = levels[0].set(Table::new(SLOTS_MIN, Self::STRIDE));
                    Shard {
                        current: AtomicUsize::new(0),
                        levels,
                        writer: Mutex::new(Counts::default()),
                    }
                })
                .collect(),
            shard_mask: shards - 1,
            mix_seed: first.hash_one(0x243f_6a88_85a3_08d3_u64) | 1,
            seeds: [first, second],
            idle_ns: options.idle_ns,
            key: PhantomData,
        }
    }

    /// The hash of an identity: bits 0.. pick the slot, the top bits the shard.
    #[inline]
    fn hash(&self, id: [u64; 2]) -> u64 {
        let h = fold(id[0] ^ self.mix_seed, MIX);
        if K::WIDE {
            fold(h ^ id[1], self.mix_seed ^ MIX)
        } else {
            h
        }
    }

    /// The mask `XOR`ed into a key's state word: 63 bits of another mix of the hash.
    #[inline]
    fn word_mask(&self, hash: u64) -> u64 {
        fold(hash, self.mix_seed.rotate_left(32) | 1) >> 1
    }

    #[inline]
    fn shard(&self, hash: u64) -> &Shard {
        // Bits 40.. pick the shard; the slot takes the low bits.
        &self.shards[(hash >> 40) as usize & self.shard_mask]
    }

    /// Whether the slot's identity is `id` (acquire loads, so that a state word read after
    /// them is no older than they are).
    #[inline]
    fn matches(table: &Table, slot: usize, id: [u64; 2]) -> bool {
        table.word(slot, Self::STRIDE, 1).load(Ordering::Acquire) == id[0]
            && (!K::WIDE || table.word(slot, Self::STRIDE, 2).load(Ordering::Acquire) == id[1])
    }

    /// Finds `id` in `table`. The state word is read (acquire) before the identity, so the
    /// identity read belongs to that state word or a later one; it is read again after the
    /// identity, and only a word that has not changed is this key's. (Between the two
    /// reads the slot may have been swept and given to this key: the first word would then
    /// be another key's state, which an answer that writes nothing, such as a refusal,
    /// would otherwise report.)
    #[inline]
    fn probe(table: &Table, hash: u64, id: [u64; 2]) -> Probe {
        let mut slot = hash as usize & table.mask;
        loop {
            let word = table.word(slot, Self::STRIDE, 0).load(Ordering::Acquire);
            if word == EMPTY {
                return Probe::Absent;
            }
            if word != DEAD && Self::matches(table, slot, id) {
                if table.word(slot, Self::STRIDE, 0).load(Ordering::Acquire) != word {
                    // Changed meanwhile: read this slot again.
                    continue;
                }
                return if word & FROZEN == 0 {
                    Probe::Found(slot, word)
                } else {
                    Probe::Busy
                };
            }
            slot = (slot + 1) & table.mask;
        }
    }

    /// Runs `op` (old TAT -> new TAT, if it changes, and the answer) on a found slot with a
    /// compare-exchange loop. `None` when the slot stopped being this key's (look again
    /// under the mutex).
    #[inline]
    fn update<R>(
        table: &Table,
        slot: usize,
        mut word: u64,
        mask: u64,
        id: [u64; 2],
        op: &impl Fn(u64) -> Result<(Option<u64>, R), RateLimitError>,
        flip: u64,
    ) -> Option<Result<R, RateLimitError>> {
        let cell = table.word(slot, Self::STRIDE, 0);
        loop {
            let raw = word ^ mask;
            let (new_tat, decision) = match op(raw & TAT_MAX) {
                Ok(outcome) => outcome,
                Err(error) => return Some(Err(error)),
            };
            let Some(new_tat) = new_tat else {
                return Some(Ok(decision));
            };
            let new_word = (new_tat | ((raw & STAMP) ^ flip)) ^ mask;
            match cell.compare_exchange_weak(word, new_word, Ordering::AcqRel, Ordering::Acquire) {
                Ok(_) => return Some(Ok(decision)),
                Err(actual) => {
                    if actual & FROZEN != 0 || !Self::matches(table, slot, id) {
                        return None;
                    }
                    word = actual;
                }
            }
        }
    }

    /// The whole operation on `key`: the lock-free path, then the mutex path that inserts
    /// the key if `op` changes a fresh (full) key's state.
    #[inline]
    fn run<R>(
        &self,
        key: &K,
        now_ns: u64,
        flip: u64,
        op: impl Fn(u64) -> Result<(Option<u64>, R), RateLimitError>,
    ) -> Result<R, RateLimitError> {
        // The state word holds TATs below 2^62.
        let op = |tat| {
            let (new_tat, decision) = op(tat)?;
            if new_tat > Some(TAT_MAX) {
                return Err(RateLimitError::TimeOverflow { now_ns });
            }
            Ok((new_tat, decision))
        };
        let id = key.flat_id(&self.seeds);
        let hash = self.hash(id);
        let mask = self.word_mask(hash);
        let shard = self.shard(hash);
        if let Some(table) = shard.table() {
            match Self::probe(table, hash, id) {
                Probe::Found(slot, word) => {
                    if let Some(result) = Self::update(table, slot, word, mask, id, &op, flip) {
                        return result;
                    }
                }
                // An absent key may be one a rebuild is moving: only the mutex path can tell.
                Probe::Absent | Probe::Busy => {}
            }
        }
        self.run_locked(shard, (hash, mask, id), now_ns, &op, flip)
    }

    /// The mutex path: nothing moves while it runs, so the probe is final.
    #[cold]
    fn run_locked<R>(
        &self,
        shard: &Shard,
        (hash, mask, id): (u64, u64, [u64; 2]),
        now_ns: u64,
        op: &impl Fn(u64) -> Result<(Option<u64>, R), RateLimitError>,
        flip: u64,
    ) -> Result<R, RateLimitError> {
        let mut counts = shard.lock();
        let table = Self::current_table(shard)?;
        if let Probe::Found(slot, word) = Self::probe(table, hash, id) {
            // Fast-path checks may still race with us, but nothing can move the slot.
            return Self::update(table, slot, word, mask, id, op, flip).unwrap_or_else(|| Err(Self::unavailable()));
        }
        let (new_tat, decision) = op(0)?;
        let Some(new_tat) = new_tat else {
            return Ok(decision);
        };
        let table = self.make_room(shard, &mut counts, now_ns.saturating_sub(self.idle_ns))?;
        let reused = Self::insert(table, hash, id, new_tat ^ mask);
        counts.live += 1;
        if !reused {
            counts.used += 1;
        }
        Ok(decision)
    }

    fn unavailable() -> RateLimitError {
        RateLimitError::StoreUnavailable {
            message: "flat store table missing or inconsistent".to_owned(),
        }
    }

    fn current_table(shard: &Shard) -> Result<&Table, RateLimitError> {
        shard.table().ok_or_else(Self::unavailable)
    }

    /// Writes an entry into the first tombstone or empty slot of its chain (under the
    /// mutex): identity first, state word last (release). Returns whether a tombstone was
    /// reused.
    fn insert(table: &Table, hash: u64, id: [u64; 2], word: u64) -> bool {
        let mut slot = hash as usize & table.mask;
        loop {
            let current = table.word(slot, Self::STRIDE, 0).load(Ordering::Acquire);
            if current == EMPTY || current == DEAD {
                table.word(slot, Self::STRIDE, 1).store(id[0], Ordering::Relaxed);
                if K::WIDE {
                    table.word(slot, Self::STRIDE, 2).store(id[1], Ordering::Relaxed);
                }
                table.word(slot, Self::STRIDE, 0).store(word, Ordering::Release);
                return current == DEAD;
            }
            slot = (slot + 1) & table.mask;
        }
    }

    /// Makes room for one more key (under the mutex): sweeps idle keys when the table is
    /// 7/8 used, then grows it (load over 13/16) or rebuilds it in place (tombstones).
    fn make_room<'a>(
        &self,
        shard: &'a Shard,
        counts: &mut Counts,
        cutoff_ns: u64,
    ) -> Result<&'a Table, RateLimitError> {
        let table = Self::current_table(shard)?;
        let slots = table.slots();
        if (counts.used + 1) * 8 <= slots * 7 {
            return Ok(table);
        }
        counts.live -= self.sweep(table, cutoff_ns);
        let entries = Self::freeze_all(table);
        let grow = (counts.live + 1) * 16 > slots * 13;
        let level = shard.current.load(Ordering::Acquire);
        let target = if grow {
            let next = level + 1;
            let lock = shard.levels.get(next).ok_or_else(Self::unavailable)?;
            let new = lock.get_or_init(|| Table::new(slots * 2, Self::STRIDE));
            for (id, word) in &entries {
                Self::insert(new, self.hash(*id), *id, *word);
            }
            shard.current.store(next, Ordering::Release);
            new
        } else {
            for slot in 0..slots {
                table.word(slot, Self::STRIDE, 0).store(EMPTY, Ordering::Release);
            }
            for (id, word) in &entries {
                Self::insert(table, self.hash(*id), *id, *word);
            }
            table
        };
        counts.live = entries.len();
        counts.used = entries.len();
        Ok(target)
    }

    /// Freezes every live entry (so concurrent updates fail and retry under the mutex)
    /// and returns them with their final state words.
    fn freeze_all(table: &Table) -> Vec<([u64; 2], u64)> {
        let mut entries = Vec::new();
        for slot in 0..table.slots() {
            let cell = table.word(slot, Self::STRIDE, 0);
            let mut word = cell.load(Ordering::Acquire);
            while word & FROZEN == 0 {
                match cell.compare_exchange_weak(word, word | FROZEN, Ordering::AcqRel, Ordering::Acquire) {
                    Ok(_) => {
                        let id = [
                            table.word(slot, Self::STRIDE, 1).load(Ordering::Relaxed),
                            if K::WIDE {
                                table.word(slot, Self::STRIDE, 2).load(Ordering::Relaxed)
                            } else {
                                0
                            },
                        ];
                        entries.push((id, word));
                        break;
                    }
                    Err(actual) => word = actual,
                }
            }
        }
        entries
    }

    /// Turns every key full at `cutoff_ns` into a tombstone (under the mutex); returns
    /// how many.
    fn sweep(&self, table: &Table, cutoff_ns: u64) -> usize {
        let mut dropped = 0;
        for slot in 0..table.slots() {
            let cell = table.word(slot, Self::STRIDE, 0);
            let mut word = cell.load(Ordering::Acquire);
            if word & FROZEN != 0 {
                continue;
            }
            let id = [
                table.word(slot, Self::STRIDE, 1).load(Ordering::Relaxed),
                if K::WIDE {
                    table.word(slot, Self::STRIDE, 2).load(Ordering::Relaxed)
                } else {
                    0
                },
            ];
            let mask = self.word_mask(self.hash(id));
            while word & FROZEN == 0 && gcra::is_full((word ^ mask) & TAT_MAX, cutoff_ns) {
                match cell.compare_exchange_weak(word, DEAD, Ordering::AcqRel, Ordering::Acquire) {
                    Ok(_) => {
                        dropped += 1;
                        break;
                    }
                    Err(actual) => word = actual,
                }
            }
        }
        dropped
    }

    /// Number of keys held.
    pub fn len(&self) -> usize {
        self.shards.iter().map(|s| s.lock().live).sum()
    }

    /// Whether no key is held.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Bytes of every table (the current ones and the outgrown ones) and shard headers.
    pub fn table_bytes(&self) -> usize {
        self.shards
            .iter()
            .map(|s| {
                std::mem::size_of::<Shard>()
                    + s.levels.len() * std::mem::size_of::<OnceLock<Table>>()
                    + s.levels
                        .iter()
                        .filter_map(OnceLock::get)
                        .map(Table::bytes)
                        .sum::<usize>()
            })
            .sum()
    }

    /// Rewrites every live entry of the current tables (under each shard's mutex, so no
    /// rebuild moves them) to `convert(tat)`, except the identities in `except`.
    fn convert_all(
        &self,
        except: &HashSet<[u64; 2], FoldBuildHasher>,
        convert: &dyn Fn(u64) -> u64,
    ) -> Result<usize, RateLimitError> {
        let mut converted = 0;
        for shard in &self.shards {
            let _counts = shard.lock();
            let table = Self::current_table(shard)?;
            for slot in 0..table.slots() {
                let cell = table.word(slot, Self::STRIDE, 0);
                // Markers (EMPTY, DEAD, frozen) have the top bit set; under the mutex a
                // live entry of the current table is never frozen, nor given another key.
                let mut word = cell.load(Ordering::Acquire);
                if word & FROZEN != 0 {
                    continue;
                }
                let id = [
                    table.word(slot, Self::STRIDE, 1).load(Ordering::Acquire),
                    if K::WIDE {
                        table.word(slot, Self::STRIDE, 2).load(Ordering::Acquire)
                    } else {
                        0
                    },
                ];
                if except.contains(&id) {
                    continue;
                }
                let mask = self.word_mask(self.hash(id));
                while word & FROZEN == 0 {
                    // Every entry gets a new stamp, whether its TAT changes or not.
                    let raw = word ^ mask;
                    let new = convert(raw & TAT_MAX).min(TAT_MAX) | ((raw & STAMP) ^ STAMP);
                    match cell.compare_exchange_weak(word, new ^ mask, Ordering::AcqRel, Ordering::Acquire) {
                        Ok(_) => {
                            converted += 1;
                            break;
                        }
                        Err(actual) => word = actual,
                    }
                }
            }
        }
        Ok(converted)
    }

    /// Forgets every key that is full at `now_ns`; returns how many were dropped. Their
    /// slots are reused by later inserts.
    pub fn evict_full(&self, now_ns: u64) -> usize {
        let mut dropped = 0;
        for shard in &self.shards {
            let mut counts = shard.lock();
            if let Some(table) = shard.table() {
                let n = self.sweep(table, now_ns);
                counts.live -= n;
                dropped += n;
            }
        }
        dropped
    }
}

impl<K: FlatKey + ?Sized> FlatStore<K> {
    /// Everything but the common case, kept out of line so the common case stays small.
    #[cold]
    #[inline(never)]
    fn check_slow(
        &self,
        key: &K,
        now_ns: u64,
        quota: &Quota,
        weight: u64,
        valid: impl Fn() -> bool + Copy,
        again: impl FnOnce() -> Result<Decision, RateLimitError>,
    ) -> Result<Decision, RateLimitError> {
        let result = self.run(key, now_ns, 0, |tat| {
            if !valid() {
                return Err(RateLimitError::QuotaChanged);
            }
            let outcome = gcra::check(tat, now_ns, quota, weight)?;
            Ok((outcome.new_tat, outcome.decision))
        });
        match result {
            Err(RateLimitError::QuotaChanged) => again(),
            result => result,
        }
    }

    /// A check that asks `valid` after reading the key's entry and before answering or
    /// writing; a change that starts later flips the entry's stamp, which fails the
    /// exchange (see [`Store::check_and_update_checked`]).
    #[inline]
    fn check_checked(
        &self,
        key: &K,
        clock: impl Fn() -> u64,
        quota: &Quota,
        weight: u64,
        valid: impl Fn() -> bool + Copy,
        again: impl FnOnce() -> Result<Decision, RateLimitError>,
    ) -> Result<Decision, RateLimitError> {
        // The common case written out: a present key, checked and updated in place (the
        // same arithmetic as `gcra::check`, which the general path below runs). The time
        // is read once the key's slot is found, so the clock's latency overlaps the probe.
        if weight <= quota.burst() && weight > 0 {
            let id = key.flat_id(&self.seeds);
            let hash = self.hash(id);
            if let Some(table) = self.shard(hash).table()
                && let Probe::Found(slot, mut word) = Self::probe(table, hash, id)
            {
                let now_ns = clock();
                // After the entry was read (acquire): an entry a change has converted
                // makes `valid` false.
                if !valid() {
                    return again();
                }
                let mask = self.word_mask(hash);
                let cell = table.word(slot, Self::STRIDE, 0);
                // weight <= burst, so cost <= capacity <= 2^62.
                let cost = weight * quota.emission_interval_ns();
                let room = quota.capacity_ns() - cost;
                loop {
                    // No floor here: a change writes its floor into every entry it holds,
                    // and the slow path stores a new key at the floor or later.
                    let raw = word ^ mask;
                    let debt = (raw & TAT_MAX).saturating_sub(now_ns);
                    if debt > room {
                        return Ok(gcra::decision(quota, false, debt, Some(debt - room)));
                    }
                    let new_debt = debt + cost;
                    let Some(new_tat) = now_ns.checked_add(new_debt).filter(|t| *t <= TAT_MAX) else {
                        return self.check_slow(key, now_ns, quota, weight, valid, again);
                    };
                    // The stamp is kept: a change flips it, which fails this exchange.
                    let new_word = (new_tat | (raw & STAMP)) ^ mask;
                    match cell.compare_exchange_weak(word, new_word, Ordering::AcqRel, Ordering::Acquire) {
                        Ok(_) => return Ok(gcra::decision(quota, true, new_debt, None)),
                        // The entry changed: a change may have converted it (new stamp).
                        Err(actual) if actual & FROZEN == 0 && Self::matches(table, slot, id) => {
                            if !valid() {
                                return again();
                            }
                            word = actual;
                        }
                        Err(_) => return self.check_slow(key, now_ns, quota, weight, valid, again),
                    }
                }
            }
        }
        self.check_slow(key, clock(), quota, weight, valid, again)
    }
}

impl<K: FlatKey + ?Sized> Store<K> for FlatStore<K> {
    #[inline]
    fn check_and_update(&self, key: &K, now_ns: u64, quota: &Quota, weight: u64) -> Result<Decision, RateLimitError> {
        self.check_and_update_with(key, &|| now_ns, quota, weight)
    }

    #[inline]
    fn check_and_update_with(
        &self,
        key: &K,
        clock: &impl Fn() -> u64,
        quota: &Quota,
        weight: u64,
    ) -> Result<Decision, RateLimitError> {
        self.check_checked(key, clock, quota, weight, || true, || Err(RateLimitError::QuotaChanged))
    }

    #[inline]
    fn check_and_update_checked(
        &self,
        key: &K,
        clock: impl Fn() -> u64,
        quota: &Quota,
        weight: u64,
        valid: impl Fn() -> bool + Copy,
        again: impl FnOnce() -> Result<Decision, RateLimitError>,
    ) -> Result<Decision, RateLimitError> {
        self.check_checked(key, clock, quota, weight, valid, again)
    }

    fn peek(&self, key: &K, now_ns: u64, quota: &Quota, weight: u64) -> Result<Decision, RateLimitError> {
        self.run(key, now_ns, 0, |tat| {
            Ok((None, gcra::check(tat, now_ns, quota, weight)?.decision))
        })
    }

    fn adjust(&self, key: &K, now_ns: u64, quota: &Quota, delta: i64) -> Result<Decision, RateLimitError> {
        self.run(key, now_ns, 0, |tat| {
            let (new_tat, decision) = gcra::adjust(tat, now_ns, quota, delta)?;
            // Giving back to a full key changes nothing: do not insert it.
            let changes = new_tat != tat && (new_tat > now_ns || tat > now_ns);
            Ok((changes.then_some(new_tat), decision))
        })
    }

    fn evict_full(&self, now_ns: u64) -> usize {
        FlatStore::evict_full(self, now_ns)
    }

    fn requota(&self, _now_ns: u64, except: &[&K], convert: &dyn Fn(u64) -> u64) -> Result<usize, RateLimitError> {
        let except: HashSet<[u64; 2], FoldBuildHasher> = except.iter().map(|k| k.flat_id(&self.seeds)).collect();
        self.convert_all(&except, convert)
    }

    fn requota_key(&self, key: &K, now_ns: u64, convert: &dyn Fn(u64) -> u64) -> Result<(), RateLimitError> {
        // A held key is rewritten with a new stamp even if its TAT stays (an absent key
        // reads as 0 and is stored only if the new TAT is in debt; a held key has a TAT
        // of 0 only if it was given back to a clock reading of 0).
        self.run(key, now_ns, STAMP, |tat| {
            let new = convert(tat).min(TAT_MAX);
            Ok(((new > now_ns || tat != 0).then_some(new), ()))
        })
    }

    fn give_back(
        &self,
        key: &K,
        written_tat: u64,
        clock: &dyn Fn() -> u64,
        taken_ns: u64,
        valid: &dyn Fn() -> bool,
    ) -> Result<(), RateLimitError> {
        // Asked after each read of the entry; the stamp a change flips fails the exchange
        // of a state read before it, and the next try asks again.
        self.run(key, 0, 0, |tat| {
            if !valid() {
                return Ok((None, ()));
            }
            Ok((crate::store::given_back(tat, written_tat, clock(), taken_ns), ()))
        })
    }
}
