//! Where keyed GCRA state lives: the [`Store`] trait and the in-process [`MemoryStore`].

use std::collections::HashMap;
use std::hash::{BuildHasher, Hash};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{PoisonError, RwLock};

use crate::error::RateLimitError;
use crate::gcra::{self, Decision};
use crate::hash::FoldBuildHasher;
use crate::quota::Quota;

/// Storage of per-key GCRA state, in process or shared by several gateway nodes.
///
/// Every method is one atomic step on one key's state (its theoretical arrival time, a
/// single 64-bit number), which is exactly what a Redis Lua script (`GET` the TAT,
/// compute, `SET` it with `PX` = the debt) or a compare-and-set loop can do. The quota
/// is an argument, not state, so a shared store needs no configuration of its own; every
/// decision reads the TAT as at least [`Quota::floor_tat_ns`]. A limiter that changes a
/// quota at runtime converts the keys' states with [`Store::requota`] and
/// [`Store::requota_key`] (`docs/ratelimit.md`, "Changing a quota at runtime").
///
/// The time is an argument: this trait is for stores in the process, driven by a
/// limiter's [`Clock`](crate::Clock). A store that several gateway replicas share
/// implements [`AsyncStore`](crate::AsyncStore) instead, which reads the time itself
/// (Redis `TIME`), so that replicas' clocks need not agree, and never blocks a thread.
///
/// The in-process implementations are [`FlatStore`](crate::FlatStore) (integer ids and
/// strings, lock-free checks) and [`MemoryStore`] (any hashable key).
pub trait Store<K: ?Sized>: Send + Sync {
    /// Checks `weight` units for `key` at `now_ns` and, if admitted, consumes them.
    ///
    /// # Errors
    ///
    /// [`RateLimitError::WeightExceedsBurst`] when `weight > quota.burst()`;
    /// [`RateLimitError::TimeOverflow`]; [`RateLimitError::StoreUnavailable`] for a
    /// store that could not answer.
    fn check_and_update(&self, key: &K, now_ns: u64, quota: &Quota, weight: u64) -> Result<Decision, RateLimitError>;

    /// [`Store::check_and_update`] at a time read from `clock` when the store is ready for
    /// it (a store may read it after finding the key, so that the clock's latency overlaps
    /// the lookup). `clock` is called exactly once.
    ///
    /// # Errors
    ///
    /// As [`Store::check_and_update`].
    #[inline]
    fn check_and_update_with(
        &self,
        key: &K,
        clock: &impl Fn() -> u64,
        quota: &Quota,
        weight: u64,
    ) -> Result<Decision, RateLimitError>
    where
        Self: Sized,
    {
        self.check_and_update(key, clock(), quota, weight)
    }

    /// [`Store::check_and_update_with`] for a limiter whose quota may change meanwhile:
    /// `valid` is asked after the key's state is read and before the answer is made or
    /// anything written, and again on every retry; when it is false nothing is written
    /// and the answer is `again()` (the limiter reads its quota again and checks again;
    /// a store may instead answer [`RateLimitError::QuotaChanged`], which a limiter
    /// treats alike).
    ///
    /// A store must make sure that a state a quota change converted after `valid` said
    /// yes is not then updated from its old value (the in-process stores: a change flips
    /// a stamp in every entry of a `FlatStore`, and holds a `MemoryStore` shard's write
    /// lock). The default asks nothing and answers the check as it finds it: a check that
    /// races with a change may then be judged by the old quota.
    ///
    /// # Errors
    ///
    /// What `again` answers; [`RateLimitError::QuotaChanged`]; as
    /// [`Store::check_and_update`].
    #[inline]
    fn check_and_update_checked(
        &self,
        key: &K,
        clock: impl Fn() -> u64,
        quota: &Quota,
        weight: u64,
        valid: impl Fn() -> bool + Copy,
        again: impl FnOnce() -> Result<Decision, RateLimitError>,
    ) -> Result<Decision, RateLimitError>
    where
        Self: Sized,
    {
        let _ = (valid, again);
        self.check_and_update_with(key, &clock, quota, weight)
    }

    /// What [`Store::check_and_update`] would answer, without consuming anything.
    ///
    /// # Errors
    ///
    /// As [`Store::check_and_update`].
    fn peek(&self, key: &K, now_ns: u64, quota: &Quota, weight: u64) -> Result<Decision, RateLimitError>;

    /// Adds `delta` units (or, negative, gives them back) to `key` unconditionally: the
    /// adjust step of reserve-then-adjust. The debt may exceed the capacity (later checks
    /// wait it out) and never goes below "full". The decision has `allowed: true` and no
    /// retry-after; `remaining` and `reset_ns` describe the key after the adjustment.
    ///
    /// # Errors
    ///
    /// [`RateLimitError::AdjustmentTooLarge`]; [`RateLimitError::StoreUnavailable`].
    fn adjust(&self, key: &K, now_ns: u64, quota: &Quota, delta: i64) -> Result<Decision, RateLimitError>;

    /// Forgets every key that is full at `now_ns` (forgetting it changes no answer) and
    /// returns how many were dropped. A shared store may expire keys by itself instead
    /// and return 0.
    fn evict_full(&self, now_ns: u64) -> usize;

    /// Rewrites the TAT of every key the store holds, except the keys in `except`, to
    /// `convert(tat)`, each in one atomic step (a key updated meanwhile is converted from
    /// its new TAT). `convert` returns the TAT unchanged for the keys it leaves alone.
    /// Returns how many keys were rewritten: a `MemoryStore` counts the keys whose TAT
    /// changed, a `FlatStore` every key it holds (it gives each a new stamp).
    ///
    /// A limiter calls it while it holds its checks off, to carry every key of its
    /// default quota into a new one; keys the store does not hold are full, and the
    /// limiter covers them with the new quota's floor.
    ///
    /// # Errors
    ///
    /// [`RateLimitError::StoreUnavailable`]: the store could not rewrite every key; some
    /// may be converted and others not.
    fn requota(&self, now_ns: u64, except: &[&K], convert: &dyn Fn(u64) -> u64) -> Result<usize, RateLimitError>;

    /// Rewrites the TAT of `key` (0 when the store does not hold it) to `convert(tat)`
    /// in one atomic step, storing the key if the new TAT is after `now_ns`.
    ///
    /// # Errors
    ///
    /// [`RateLimitError::StoreUnavailable`]; [`RateLimitError::TimeOverflow`] for a TAT
    /// the store cannot hold. Nothing is written then.
    fn requota_key(&self, key: &K, now_ns: u64, convert: &dyn Fn(u64) -> u64) -> Result<(), RateLimitError>;

    /// Gives back `taken_ns` of debt (units times an emission interval) that a check took
    /// when it left the key's TAT at `written_tat`: at most what of that check's own debt
    /// is still ahead of the time, read from `clock` after the key's state each try (so
    /// no earlier than any check the state includes), and never below the time.
    /// Subtracting it all could also take back the units of a later check that built on
    /// the key after the first one's debt had run out (`docs/ratelimit.md`).
    ///
    /// `valid` is asked after the key's state is read and before anything is written, as
    /// for [`Store::check_and_update_checked`], with the same duty: when it is false, or
    /// when a quota change converted the state after it said yes, nothing is given back.
    /// `taken_ns` is counted in the interval of the quota the check used; once a change
    /// has converted the key into another quota's units, subtracting it could take back
    /// far more than the check took.
    ///
    /// The undo of a refused multi-limit check. The default gives nothing back, which is
    /// safe: the key keeps the units as debt.
    ///
    /// # Errors
    ///
    /// [`RateLimitError::StoreUnavailable`].
    fn give_back(
        &self,
        key: &K,
        written_tat: u64,
        clock: &dyn Fn() -> u64,
        taken_ns: u64,
        valid: &dyn Fn() -> bool,
    ) -> Result<(), RateLimitError> {
        let _ = (key, written_tat, clock, taken_ns, valid);
        Ok(())
    }
}

/// The new TAT when `taken_ns` of debt that left the TAT at `written_tat` is given back
/// from `current` at `now_ns`, if anything changes (see [`Store::give_back`]).
#[inline]
pub(crate) fn given_back(current: u64, written_tat: u64, now_ns: u64, taken_ns: u64) -> Option<u64> {
    let give = taken_ns.min(written_tat.saturating_sub(now_ns));
    (give > 0 && current > now_ns).then(|| current.saturating_sub(give).max(now_ns))
}

/// Options of a [`MemoryStore`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct MemoryStoreOptions {
    /// Number of shards, rounded up to a power of two, from 1 to [`SHARDS_MAX`].
    /// More shards mean less lock contention between threads.
    pub shards: usize,
    /// A shard sweeps its idle keys when an insertion finds it holding this many keys
    /// (and then waits until it doubles). At least 1.
    pub sweep_len_min: usize,
    /// How long a key must have been full before a sweep drops it. A key that comes back
    /// within this time is found in place instead of being inserted again; 0 drops keys
    /// as soon as they are full. [`Store::evict_full`] ignores it.
    pub idle_ns: u64,
}

/// The most shards a [`MemoryStore`] may have.
pub const SHARDS_MAX: usize = 1 << 16;

impl Default for MemoryStoreOptions {
    fn default() -> Self {
        MemoryStoreOptions {
            shards: 64,
            sweep_len_min: 1024,
            idle_ns: 10 * 1_000_000_000,
        }
    }
}

/// A cache line (two, against adjacent-line prefetch) per shard, so that threads on
/// different shards do not slow each other down.
#[derive(Debug)]
#[repr(align(128))]
struct Padded<T>(T);

#[derive(Debug)]
struct Shard<K> {
    map: HashMap<K, AtomicU64, FoldBuildHasher>,
    /// The length at which the next insertion sweeps full keys.
    sweep_len: usize,
}

/// The in-process [`Store`] for any hashable key (for integer ids and strings,
/// [`FlatStore`](crate::FlatStore) is faster): a fixed array of shards, each a `RwLock<HashMap<K, AtomicU64>>`
/// with a fast seeded hasher.
///
/// A check of a known key takes its shard's read lock and updates the key's one atomic
/// word with a compare-exchange loop, so checks of one key or of many keys proceed in
/// parallel. Only a key's first check takes the write lock, to insert it.
///
/// Memory stays bounded: keys that have been full for
/// [`MemoryStoreOptions::idle_ns`] (10 s by default) are swept from a shard when an
/// insertion finds it at twice its size after the last sweep (at least
/// [`MemoryStoreOptions::sweep_len_min`] keys), and [`MemoryStore::evict_full`] drops
/// every full key on demand. Each key costs its entry (`size_of::<K>() + 8` bytes) plus one
/// control byte, at the map's load factor: see [`MemoryStore::table_bytes`] and
/// `docs/ratelimit.md` for measured numbers.
///
/// ```
/// use paygo_ratelimit::{MemoryStore, Quota, Store};
///
/// let store: MemoryStore<u64> = MemoryStore::new();
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
pub struct MemoryStore<K> {
    shards: Box<[Padded<RwLock<Shard<K>>>]>,
    mask: u64,
    hasher: FoldBuildHasher,
    sweep_len_min: usize,
    idle_ns: u64,
}

impl<K: Hash + Eq> MemoryStore<K> {
    /// A store with default options (64 shards).
    pub fn new() -> Self {
        MemoryStore::with_options(MemoryStoreOptions::default())
    }

    /// A store with the given options; out-of-range values are clamped to
    /// `1..=SHARDS_MAX` shards and a `sweep_len_min` of at least 1.
    pub fn with_options(options: MemoryStoreOptions) -> Self {
        MemoryStore::with_options_and_hasher(options, FoldBuildHasher::new())
    }

    /// A store with the given options and hasher (fixed seeds make a reproducible
    /// layout for tests).
    pub fn with_options_and_hasher(options: MemoryStoreOptions, hasher: FoldBuildHasher) -> Self {
        let shards = options.shards.clamp(1, SHARDS_MAX).next_power_of_two();
        let sweep_len_min = options.sweep_len_min.max(1);
        MemoryStore {
            shards: (0..shards)
                .map(|_| {
                    Padded(RwLock::new(Shard {
                        map: HashMap::with_hasher(hasher),
                        sweep_len: sweep_len_min,
                    }))
                })
                .collect(),
            mask: shards as u64 - 1,
            hasher,
            sweep_len_min,
            idle_ns: options.idle_ns,
        }
    }

    #[inline]
    fn shard(&self, key: &K) -> &RwLock<Shard<K>> {
        // Bits 40.. pick the shard: hashbrown uses the low bits for the bucket and the
        // top 7 for its control byte, so the shard index takes neither.
        let index = (self.hasher.hash_one(key) >> 40) & self.mask;
        &self.shards[index as usize].0
    }

    /// Number of keys held.
    pub fn len(&self) -> usize {
        self.shards
            .iter()
            .map(|s| s.0.read().unwrap_or_else(PoisonError::into_inner).map.len())
            .sum()
    }

    /// Whether no key is held.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Bytes of the hash tables (entries, control bytes, shard headers), not counting
    /// heap data that keys own (a `String` key's text). Computed from std's table
    /// layout: buckets are a power of two at most 7/8 full, each bucket holds one
    /// `(K, AtomicU64)` entry and one control byte, plus 16 control bytes per table.
    pub fn table_bytes(&self) -> usize {
        let entry = std::mem::size_of::<(K, AtomicU64)>();
        let shard_bytes = std::mem::size_of::<Padded<RwLock<Shard<K>>>>();
        self.shards
            .iter()
            .map(|s| {
                let capacity = s.0.read().unwrap_or_else(PoisonError::into_inner).map.capacity();
                let buckets = if capacity == 0 {
                    0
                } else if capacity < 8 {
                    (capacity + 1).next_power_of_two()
                } else {
                    (capacity * 8 / 7).next_power_of_two()
                };
                let table = if buckets == 0 { 0 } else { buckets * (entry + 1) + 16 };
                shard_bytes + table
            })
            .sum()
    }

    /// Forgets the full keys of every shard, and returns memory to the allocator where a
    /// shard's table is more than four times larger than needed.
    pub fn evict_full(&self, now_ns: u64) -> usize {
        let mut dropped = 0;
        for shard in &self.shards {
            let mut guard = shard.0.write().unwrap_or_else(PoisonError::into_inner);
            dropped += sweep(&mut guard, now_ns, self.sweep_len_min);
            if guard.map.capacity() > 4 * guard.map.len().max(16) {
                guard.map.shrink_to_fit();
            }
        }
        dropped
    }
}

fn sweep<K>(shard: &mut Shard<K>, now_ns: u64, sweep_len_min: usize) -> usize {
    let before = shard.map.len();
    shard
        .map
        .retain(|_, tat| !gcra::is_full(tat.load(Ordering::Relaxed), now_ns));
    let after = shard.map.len();
    shard.sweep_len = after.saturating_mul(2).max(sweep_len_min);
    before - after
}

impl<K: Hash + Eq> Default for MemoryStore<K> {
    fn default() -> Self {
        MemoryStore::new()
    }
}

/// The compare-exchange loop on one key's TAT.
#[inline]
fn update(cell: &AtomicU64, now_ns: u64, quota: &Quota, weight: u64) -> Result<Decision, RateLimitError> {
    let mut current = cell.load(Ordering::Acquire);
    loop {
        let outcome = gcra::check(current, now_ns, quota, weight)?;
        let Some(new_tat) = outcome.new_tat else {
            return Ok(outcome.decision);
        };
        match cell.compare_exchange_weak(current, new_tat, Ordering::AcqRel, Ordering::Acquire) {
            Ok(_) => return Ok(outcome.decision),
            Err(actual) => current = actual,
        }
    }
}

#[inline]
fn update_adjust(cell: &AtomicU64, now_ns: u64, quota: &Quota, delta: i64) -> Result<Decision, RateLimitError> {
    let mut current = cell.load(Ordering::Acquire);
    loop {
        let (new_tat, decision) = gcra::adjust(current, now_ns, quota, delta)?;
        match cell.compare_exchange_weak(current, new_tat, Ordering::AcqRel, Ordering::Acquire) {
            Ok(_) => return Ok(decision),
            Err(actual) => current = actual,
        }
    }
}

impl<K: Hash + Eq> MemoryStore<K> {
    /// Runs `op` on the key's cell under the shard's lock, inserting the key (as full)
    /// if it is absent; an insertion into a shard at its sweep length sweeps idle keys
    /// first.
    #[inline]
    fn with_cell<R>(
        &self,
        key: &K,
        now_ns: u64,
        owned: impl FnOnce() -> K,
        op: impl Fn(&AtomicU64) -> Result<R, RateLimitError>,
    ) -> Result<R, RateLimitError> {
        let shard = self.shard(key);
        {
            let guard = shard.read().unwrap_or_else(PoisonError::into_inner);
            if let Some(cell) = guard.map.get(key) {
                return op(cell);
            }
        }
        let mut guard = shard.write().unwrap_or_else(PoisonError::into_inner);
        if !guard.map.contains_key(key) && guard.map.len() >= guard.sweep_len {
            sweep(&mut guard, now_ns.saturating_sub(self.idle_ns), self.sweep_len_min);
        }
        let cell = guard.map.entry(owned()).or_insert_with(|| AtomicU64::new(0));
        op(cell)
    }
}

/// Rewrites one cell to `convert(tat)`, under its shard's write lock (no one else touches
/// it meanwhile); whether it changed.
fn convert_cell(cell: &AtomicU64, convert: &dyn Fn(u64) -> u64) -> bool {
    let current = cell.load(Ordering::Acquire);
    let new = convert(current);
    cell.store(new, Ordering::Release);
    new != current
}

impl<K: Hash + Eq + Clone + Send + Sync> MemoryStore<K> {
    /// A check that asks `valid` under the shard's lock, before it answers or writes: a
    /// quota change converts a shard under its write lock, so no change can convert the
    /// key between the question and the update.
    #[inline]
    fn check_checked(
        &self,
        key: &K,
        now_ns: u64,
        quota: &Quota,
        weight: u64,
        valid: impl Fn() -> bool + Copy,
        again: impl FnOnce() -> Result<Decision, RateLimitError>,
    ) -> Result<Decision, RateLimitError> {
        let shard = self.shard(key);
        {
            let guard = shard.read().unwrap_or_else(PoisonError::into_inner);
            if let Some(cell) = guard.map.get(key) {
                if valid() {
                    return update(cell, now_ns, quota, weight);
                }
            } else if valid() {
                drop(guard);
                return self.check_fresh(key, now_ns, quota, weight, valid, again);
            }
        }
        again()
    }

    /// The rest of [`MemoryStore::check_checked`] for a key it does not hold yet.
    #[cold]
    fn check_fresh(
        &self,
        key: &K,
        now_ns: u64,
        quota: &Quota,
        weight: u64,
        valid: impl Fn() -> bool,
        again: impl FnOnce() -> Result<Decision, RateLimitError>,
    ) -> Result<Decision, RateLimitError> {
        // A fresh key is full: insert it only if the check changes its state.
        let fresh = gcra::check(0, now_ns, quota, weight)?;
        if fresh.new_tat.is_none() {
            return Ok(fresh.decision);
        }
        match self.with_cell(
            key,
            now_ns,
            || key.clone(),
            |cell| {
                if !valid() {
                    return Err(RateLimitError::QuotaChanged);
                }
                update(cell, now_ns, quota, weight)
            },
        ) {
            Err(RateLimitError::QuotaChanged) => again(),
            result => result,
        }
    }
}

impl<K: Hash + Eq + Clone + Send + Sync> Store<K> for MemoryStore<K> {
    #[inline]
    fn check_and_update(&self, key: &K, now_ns: u64, quota: &Quota, weight: u64) -> Result<Decision, RateLimitError> {
        let shard = self.shard(key);
        {
            let guard = shard.read().unwrap_or_else(PoisonError::into_inner);
            if let Some(cell) = guard.map.get(key) {
                return update(cell, now_ns, quota, weight);
            }
        }
        // A fresh key is full: insert it only if the check changes its state.
        let fresh = gcra::check(0, now_ns, quota, weight)?;
        if fresh.new_tat.is_none() {
            return Ok(fresh.decision);
        }
        self.with_cell(key, now_ns, || key.clone(), |cell| update(cell, now_ns, quota, weight))
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
        self.check_checked(key, clock(), quota, weight, valid, again)
    }

    fn peek(&self, key: &K, now_ns: u64, quota: &Quota, weight: u64) -> Result<Decision, RateLimitError> {
        let guard = self.shard(key).read().unwrap_or_else(PoisonError::into_inner);
        let tat = guard.map.get(key).map_or(0, |cell| cell.load(Ordering::Acquire));
        Ok(gcra::check(tat, now_ns, quota, weight)?.decision)
    }

    fn adjust(&self, key: &K, now_ns: u64, quota: &Quota, delta: i64) -> Result<Decision, RateLimitError> {
        if delta <= 0 {
            // Giving back to a key we do not hold (a full key) changes nothing.
            let guard = self.shard(key).read().unwrap_or_else(PoisonError::into_inner);
            return match guard.map.get(key) {
                Some(cell) => update_adjust(cell, now_ns, quota, delta),
                None => Ok(gcra::adjust(0, now_ns, quota, delta)?.1),
            };
        }
        self.with_cell(
            key,
            now_ns,
            || key.clone(),
            |cell| update_adjust(cell, now_ns, quota, delta),
        )
    }

    fn evict_full(&self, now_ns: u64) -> usize {
        MemoryStore::evict_full(self, now_ns)
    }

    fn requota(&self, _now_ns: u64, except: &[&K], convert: &dyn Fn(u64) -> u64) -> Result<usize, RateLimitError> {
        let except: std::collections::HashSet<&K, FoldBuildHasher> = except.iter().copied().collect();
        let mut converted = 0;
        for shard in &self.shards {
            // The write lock: a check holds the read lock from its question to its update
            // (see `check_and_update_checked`), so none is halfway through on this shard.
            let guard = shard.0.write().unwrap_or_else(PoisonError::into_inner);
            for (key, cell) in &guard.map {
                if !except.contains(key) && convert_cell(cell, convert) {
                    converted += 1;
                }
            }
        }
        Ok(converted)
    }

    fn requota_key(&self, key: &K, now_ns: u64, convert: &dyn Fn(u64) -> u64) -> Result<(), RateLimitError> {
        // The write lock, as for `requota`.
        let mut guard = self.shard(key).write().unwrap_or_else(PoisonError::into_inner);
        if let Some(cell) = guard.map.get(key) {
            convert_cell(cell, convert);
        } else {
            let tat = convert(0);
            // Absent and still full: nothing to store.
            if tat > now_ns {
                guard.map.insert(key.clone(), AtomicU64::new(tat));
            }
        }
        Ok(())
    }

    fn give_back(
        &self,
        key: &K,
        written_tat: u64,
        clock: &dyn Fn() -> u64,
        taken_ns: u64,
        valid: &dyn Fn() -> bool,
    ) -> Result<(), RateLimitError> {
        let guard = self.shard(key).read().unwrap_or_else(PoisonError::into_inner);
        // Under the read lock, as a check's question: a change converts under the write
        // lock, so it cannot land between `valid` and the update.
        if !valid() {
            return Ok(());
        }
        // An absent key is full: there is nothing to give back.
        if let Some(cell) = guard.map.get(key) {
            // `Err` only when there is nothing to give back: nothing to do then.
            let _ = cell.fetch_update(Ordering::AcqRel, Ordering::Acquire, |current| {
                given_back(current, written_tat, clock(), taken_ns)
            });
        }
        Ok(())
    }
}
