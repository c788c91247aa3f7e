//! A simulated disk for the sequence store: a [`Storage`] in memory that keeps, for every
//! file, what is durable and what is only in the "page cache", and injects the faults of
//! the fault model of `docs/invoice.md` at moments a seeded random generator picks:
//!
//! - a crash: what was not synced is lost, torn (sector by sector, in any order) or
//!   zero-filled; directory changes not synced are lost or kept; a crash can also be
//!   scheduled after a number of writes, so that it falls inside a commit or an open;
//! - damage at rest: a file truncated (at a record boundary or not), emptied or deleted,
//!   bits flipped, a tail zeroed;
//! - EIO or ENOSPC on a write (part of it written) or on a sync (nothing, some or all of
//!   it made durable, and the rest possibly dropped from the cache's dirty list, as Linux
//!   does after a write-back error: the data stays readable from the cache but a later
//!   sync does not write it).

#![allow(dead_code)]

use std::collections::BTreeMap;
use std::io;
use std::sync::{Arc, Mutex, MutexGuard};

use paygo_invoice::{Storage, StorageFile};

pub(crate) const SECTOR: usize = 512;

pub(crate) use paygo_testkit::rng::Rng;

/// The generator of a run seeded with `seed` (mixed once, so that seeds 0, 1, 2 start
/// far apart).
pub(crate) fn seeded(seed: u64) -> Rng {
    Rng(seed ^ 0x9e37_79b9_7f4a_7c15)
}

/// An I/O error the disk will return.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Failure {
    /// EIO on the next write, after writing part of it.
    Write(io::ErrorKind),
    /// EIO or ENOSPC on the next sync.
    Sync(io::ErrorKind),
}

/// File content kept sparse: sectors never written read as zeros, so the two header slots
/// of a journal (2.2 MB, mostly zeros) cost only the sectors written.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Content {
    len: usize,
    sectors: BTreeMap<usize, Box<[u8; SECTOR]>>,
}

impl Content {
    pub(crate) fn len(&self) -> usize {
        self.len
    }

    fn read(&self, offset: usize, buf: &mut [u8]) -> usize {
        let from = offset.min(self.len);
        let n = buf.len().min(self.len - from);
        buf[..n].fill(0);
        for (&sector, data) in self
            .sectors
            .range(from / SECTOR..=(from + n).saturating_sub(1) / SECTOR)
        {
            let start = sector * SECTOR;
            let lo = start.max(from);
            let hi = (start + SECTOR).min(from + n);
            if lo < hi {
                buf[lo - from..hi - from].copy_from_slice(&data[lo - start..hi - start]);
            }
        }
        n
    }

    fn write(&mut self, offset: usize, data: &[u8]) {
        let mut at = offset;
        while at < offset + data.len() {
            let sector = at / SECTOR;
            let within = at % SECTOR;
            let n = (SECTOR - within).min(offset + data.len() - at);
            let slot = self.sectors.entry(sector).or_insert_with(|| Box::new([0u8; SECTOR]));
            slot[within..within + n].copy_from_slice(&data[at - offset..at - offset + n]);
            at += n;
        }
        self.len = self.len.max(offset + data.len());
    }

    fn set_len(&mut self, len: usize) {
        if len < self.len {
            let keep = len.div_ceil(SECTOR);
            self.sectors.split_off(&keep);
            if !len.is_multiple_of(SECTOR)
                && let Some(last) = self.sectors.get_mut(&(len / SECTOR))
            {
                last[len % SECTOR..].fill(0);
            }
        }
        self.len = len;
    }

    fn sector(&self, sector: usize) -> [u8; SECTOR] {
        self.sectors.get(&sector).map_or([0u8; SECTOR], |s| **s)
    }

    /// Copies sector `sector` of `from` (within `from`'s length) into this content.
    fn copy_sector(&mut self, from: &Content, sector: usize) {
        let data = from.sector(sector);
        let start = sector * SECTOR;
        let end = (start + SECTOR).min(from.len).min(self.len.max(from.len));
        if start < end {
            self.write(start, &data[..end - start]);
        }
    }

    /// Flips bit `bit` of byte `byte`.
    pub(crate) fn flip(&mut self, byte: usize, bit: u32) {
        if byte < self.len {
            let slot = self
                .sectors
                .entry(byte / SECTOR)
                .or_insert_with(|| Box::new([0u8; SECTOR]));
            slot[byte % SECTOR] ^= 1 << bit;
        }
    }

    /// Zeroes everything from `from`.
    pub(crate) fn zero_from(&mut self, from: usize) {
        let len = self.len;
        self.set_len(from.min(len));
        self.len = len;
    }

    pub(crate) fn truncate(&mut self, len: usize) {
        self.set_len(len.min(self.len));
    }

    /// The offsets just after each line end at or after `from`.
    pub(crate) fn line_ends(&self, from: usize) -> Vec<usize> {
        let mut ends = Vec::new();
        for (&sector, data) in self.sectors.range(from / SECTOR..) {
            for (i, b) in data.iter().enumerate() {
                let at = sector * SECTOR + i;
                if *b == b'\n' && at >= from && at < self.len {
                    ends.push(at + 1);
                }
            }
        }
        ends
    }
}

#[derive(Debug, Clone, Default)]
struct File {
    /// What survives a crash.
    durable: Content,
    /// What reads return (the page cache).
    cache: Content,
    /// Sectors written since they were last made durable, which a sync writes.
    dirty: std::collections::BTreeSet<usize>,
    /// Whether the length changed since the last sync.
    len_dirty: bool,
    locked: bool,
}

#[derive(Debug, Default)]
struct State {
    files: BTreeMap<u64, File>,
    names: BTreeMap<String, u64>,
    durable_names: BTreeMap<String, u64>,
    next_inode: u64,
    /// Handles of earlier generations (before a crash) are dead.
    generation: u64,
    failure: Option<Failure>,
    /// Writes (and syncs, renames, ...) left before a crash stops the disk: `Some(0)`
    /// means every mutating call fails until [`SimDisk::crash`].
    crash_after: Option<u64>,
    crashed: bool,
    rng: Option<Rng>,
}

/// The simulated disk; clones share it.
#[derive(Debug, Clone)]
pub(crate) struct SimDisk(Arc<Mutex<State>>);

fn err(kind: io::ErrorKind, what: &str) -> io::Error {
    io::Error::new(kind, format!("simulated disk: {what}"))
}

impl SimDisk {
    pub(crate) fn new(seed: u64) -> SimDisk {
        SimDisk(Arc::new(Mutex::new(State {
            rng: Some(seeded(seed)),
            ..State::default()
        })))
    }

    fn state(&self) -> MutexGuard<'_, State> {
        self.0.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Fails the next write or sync.
    pub(crate) fn fail_next(&self, failure: Failure) {
        self.state().failure = Some(failure);
    }

    /// Stops the disk after `ops` more mutating calls (a crash inside an operation).
    pub(crate) fn crash_after(&self, ops: u64) {
        self.state().crash_after = Some(ops);
    }

    pub(crate) fn has_stopped(&self) -> bool {
        self.state().crashed
    }

    /// The crash: every file becomes what a disk may hold after power is lost, and open
    /// handles die.
    pub(crate) fn crash(&self) {
        let mut state = self.state();
        let mut rng = state.rng.take().unwrap_or_else(|| seeded(0));
        state.generation += 1;
        state.failure = None;
        state.crash_after = None;
        state.crashed = false;
        if state.names != state.durable_names && rng.chance(50) {
            state.names = state.durable_names.clone();
        } else {
            state.durable_names = state.names.clone();
        }
        for file in state.files.values_mut() {
            crash_image(file, &mut rng);
            file.cache.clone_from(&file.durable);
            file.dirty.clear();
            file.len_dirty = false;
            file.locked = false;
        }
        let live: std::collections::BTreeSet<u64> = state.names.values().copied().collect();
        state.files.retain(|inode, _| live.contains(inode));
        state.rng = Some(rng);
    }

    /// The names of the files.
    pub(crate) fn names(&self) -> Vec<String> {
        self.state().names.keys().cloned().collect()
    }

    /// The length of file `name`.
    pub(crate) fn len(&self, name: &str) -> u64 {
        let state = self.state();
        state
            .names
            .get(name)
            .and_then(|inode| state.files.get(inode))
            .map_or(0, |f| f.cache.len() as u64)
    }

    /// Changes file `name`'s content on disk (damage at rest: durable and cached alike).
    pub(crate) fn damage(&self, name: &str, change: impl FnOnce(&mut Content)) {
        let mut state = self.state();
        let Some(inode) = state.names.get(name).copied() else {
            return;
        };
        if let Some(file) = state.files.get_mut(&inode) {
            change(&mut file.cache);
            file.durable.clone_from(&file.cache);
            file.dirty.clear();
            file.len_dirty = false;
        }
    }

    /// Deletes file `name` (damage at rest: durably).
    pub(crate) fn delete(&self, name: &str) {
        let mut state = self.state();
        state.names.remove(name);
        state.durable_names.remove(name);
    }

    /// A mutating call: counts down to a scheduled crash.
    fn mutate(state: &mut State) -> io::Result<()> {
        if state.crashed {
            return Err(err(io::ErrorKind::Other, "the machine has crashed"));
        }
        if let Some(left) = state.crash_after {
            if left == 0 {
                state.crashed = true;
                return Err(err(io::ErrorKind::Other, "the machine has crashed"));
            }
            state.crash_after = Some(left - 1);
        }
        Ok(())
    }
}

/// Turns `file.durable` into what the file holds after a crash: the durable bytes, plus any
/// of the dirty sectors (each written or not), with a length anywhere from the durable one
/// to the cached one, and sometimes a zero-filled tail beyond.
fn crash_image(file: &mut File, rng: &mut Rng) {
    if file.dirty.is_empty() && !file.len_dirty {
        return;
    }
    let mode = rng.below(4);
    if mode == 0 {
        // Everything unsynced lost.
        return;
    }
    let durable_len = file.durable.len();
    let (short, long) = (durable_len.min(file.cache.len()), durable_len.max(file.cache.len()));
    let len = match mode {
        1 => file.cache.len(),
        2 => short + rng.below((long - short) as u64 + 1) as usize,
        // A zero-filled tail: the cached length and then some.
        _ => file.cache.len() + rng.below(128 * SECTOR as u64) as usize,
    };
    let cache = &file.cache;
    let durable = &mut file.durable;
    // Sectors beyond the old durable length that are not written read as zeros.
    durable.set_len(len);
    for &sector in &file.dirty {
        if !rng.chance(50) {
            durable.copy_sector(cache, sector);
        }
    }
    durable.set_len(len);
}

impl Storage for SimDisk {
    fn describe(&self, name: &str) -> String {
        format!("simdisk:{name}")
    }

    fn open(&self, name: &str, _read_only: bool) -> io::Result<Option<Box<dyn StorageFile>>> {
        let state = self.state();
        if state.crashed {
            return Err(err(io::ErrorKind::Other, "the machine has crashed"));
        }
        Ok(state.names.get(name).map(|inode| {
            Box::new(SimFile {
                disk: self.clone(),
                inode: *inode,
                generation: state.generation,
                holds_lock: std::sync::atomic::AtomicBool::new(false),
            }) as Box<dyn StorageFile>
        }))
    }

    fn create(&self, name: &str) -> io::Result<Box<dyn StorageFile>> {
        let mut state = self.state();
        SimDisk::mutate(&mut state)?;
        if state.names.contains_key(name) {
            return Err(err(io::ErrorKind::AlreadyExists, "file exists"));
        }
        let inode = state.next_inode;
        state.next_inode += 1;
        state.files.insert(inode, File::default());
        state.names.insert(name.to_owned(), inode);
        Ok(Box::new(SimFile {
            disk: self.clone(),
            inode,
            generation: state.generation,
            holds_lock: std::sync::atomic::AtomicBool::new(false),
        }))
    }

    fn rename(&self, from: &str, to: &str) -> io::Result<()> {
        let mut state = self.state();
        SimDisk::mutate(&mut state)?;
        let inode = state
            .names
            .remove(from)
            .ok_or_else(|| err(io::ErrorKind::NotFound, "no such file"))?;
        state.names.insert(to.to_owned(), inode);
        Ok(())
    }

    fn remove(&self, name: &str) -> io::Result<()> {
        let mut state = self.state();
        SimDisk::mutate(&mut state)?;
        state.names.remove(name);
        Ok(())
    }

    fn sync_dir(&self) -> io::Result<()> {
        let mut state = self.state();
        SimDisk::mutate(&mut state)?;
        state.durable_names = state.names.clone();
        Ok(())
    }
}

#[derive(Debug)]
struct SimFile {
    disk: SimDisk,
    inode: u64,
    generation: u64,
    holds_lock: std::sync::atomic::AtomicBool,
}

impl SimFile {
    fn with<R>(
        &self,
        mutating: bool,
        f: impl FnOnce(&mut File, &mut Rng, Option<Failure>) -> io::Result<R>,
    ) -> io::Result<R> {
        let mut state = self.disk.state();
        if state.generation != self.generation {
            return Err(err(io::ErrorKind::Other, "the handle died in a crash"));
        }
        if mutating {
            SimDisk::mutate(&mut state)?;
        } else if state.crashed {
            return Err(err(io::ErrorKind::Other, "the machine has crashed"));
        }
        let failure = if mutating { state.failure } else { None };
        let mut rng = state.rng.take().unwrap_or_else(|| seeded(0));
        let State {
            files, failure: slot, ..
        } = &mut *state;
        let result = match files.get_mut(&self.inode) {
            Some(file) => f(file, &mut rng, failure),
            None => Err(err(io::ErrorKind::NotFound, "the file was deleted")),
        };
        if let Err(error) = &result
            && error.to_string().contains("injected")
        {
            *slot = None;
        }
        state.rng = Some(rng);
        result
    }
}

fn mark(file: &mut File, from: usize, to: usize) {
    if from < to {
        for sector in from / SECTOR..=(to - 1) / SECTOR {
            file.dirty.insert(sector);
        }
    }
}

impl StorageFile for SimFile {
    fn len(&self) -> io::Result<u64> {
        self.with(false, |file, _, _| Ok(file.cache.len() as u64))
    }

    fn read_at(&self, offset: u64, buf: &mut [u8]) -> io::Result<usize> {
        self.with(false, |file, _, _| {
            Ok(file.cache.read(usize::try_from(offset).unwrap_or(usize::MAX), buf))
        })
    }

    fn write_at(&self, offset: u64, data: &[u8]) -> io::Result<()> {
        self.with(true, |file, rng, failure| {
            let from = offset as usize;
            let (data, result) = match failure {
                Some(Failure::Write(kind)) => {
                    let part = rng.below(data.len() as u64 + 1) as usize;
                    (&data[..part], Err(err(kind, "injected write failure")))
                }
                _ => (data, Ok(())),
            };
            let to = from + data.len();
            if file.cache.len() < to {
                file.len_dirty = true;
            }
            file.cache.write(from, data);
            mark(file, from, to);
            result
        })
    }

    fn set_len(&self, len: u64) -> io::Result<()> {
        self.with(true, |file, _, _| {
            file.cache.set_len(len as usize);
            file.len_dirty = true;
            Ok(())
        })
    }

    fn sync_data(&self) -> io::Result<()> {
        self.with(true, |file, rng, failure| {
            let Some(Failure::Sync(kind)) = failure else {
                let durable = &mut file.durable;
                durable.set_len(file.cache.len());
                for sector in std::mem::take(&mut file.dirty) {
                    durable.copy_sector(&file.cache, sector);
                }
                durable.set_len(file.cache.len());
                file.len_dirty = false;
                return Ok(());
            };
            // Some of the dirty sectors reach the disk; the others stay dirty, or are
            // dropped from the dirty list while their data stays in the cache.
            let drop = rng.chance(50);
            let durable_len = if rng.chance(50) {
                file.cache.len()
            } else {
                file.durable.len()
            };
            file.durable.set_len(file.cache.len().max(file.durable.len()));
            let sectors: Vec<usize> = file.dirty.iter().copied().collect();
            for sector in sectors {
                if rng.chance(50) {
                    file.durable.copy_sector(&file.cache, sector);
                    file.dirty.remove(&sector);
                } else if drop {
                    file.dirty.remove(&sector);
                }
            }
            file.durable.set_len(durable_len);
            if durable_len == file.cache.len() {
                file.len_dirty = false;
            }
            Err(err(kind, "injected sync failure"))
        })
    }

    fn try_lock(&self) -> io::Result<bool> {
        self.with(false, |file, _, _| {
            if file.locked {
                return Ok(false);
            }
            file.locked = true;
            self.holds_lock.store(true, std::sync::atomic::Ordering::Relaxed);
            Ok(true)
        })
    }
}

impl Drop for SimFile {
    fn drop(&mut self) {
        if self.holds_lock.load(std::sync::atomic::Ordering::Relaxed) {
            let mut state = self.disk.state();
            if state.generation == self.generation
                && let Some(file) = state.files.get_mut(&self.inode)
            {
                file.locked = false;
            }
        }
    }
}
