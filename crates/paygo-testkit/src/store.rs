//! Helpers of the storage tests: temp directories, a storage that "crashes" (is dropped
//! without its clean close), and a storage that remembers where each record landed.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use paygo_ledger::LedgerError;
use paygo_ledger::durable::{FileStore, Head, Loaded, Recovery, Storage};

static NEXT_DIR: AtomicU64 = AtomicU64::new(0);

/// A fresh directory path under the system's temp dir (not created), removed on drop.
pub struct TempDir(pub PathBuf);

impl TempDir {
    /// A new path named after `name`, the process and a counter.
    pub fn new(name: &str) -> TempDir {
        let n = NEXT_DIR.fetch_add(1, Ordering::SeqCst);
        let path = std::env::temp_dir().join(format!("paygo-{name}-{}-{n}", std::process::id()));
        let _ = std::fs::remove_dir_all(&path);
        TempDir(path)
    }

    /// A copy of the directory's files, in a new temp dir.
    #[must_use]
    pub fn copy(&self, name: &str) -> TempDir {
        let copy = TempDir::new(name);
        std::fs::create_dir_all(&copy.0).unwrap();
        for entry in std::fs::read_dir(&self.0).unwrap() {
            let entry = entry.unwrap();
            std::fs::copy(entry.path(), copy.0.join(entry.file_name())).unwrap();
        }
        copy
    }

    /// The files whose names start with `prefix`, sorted.
    pub fn files(&self, prefix: &str) -> Vec<PathBuf> {
        let mut out: Vec<PathBuf> = std::fs::read_dir(&self.0)
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| {
                let name = p.file_name().unwrap().to_string_lossy();
                name.starts_with(prefix) && !name.ends_with(".tmp")
            })
            .collect();
        out.sort();
        out
    }

    /// The names of every file, sorted.
    pub fn names(&self) -> Vec<String> {
        let mut out: Vec<String> = std::fs::read_dir(&self.0)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        out.sort();
        out
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Where the records landed: for each append, the segment file and the byte range that
/// changed (found by comparing the directory's segments before and after).
pub type Placements = Arc<Mutex<Vec<(PathBuf, u64, u64)>>>;

/// A storage that is never closed cleanly (dropping it is a crash: the lock is released,
/// nothing else happens), and that records where each record landed.
#[derive(Debug)]
pub struct Crashing {
    /// The store it wraps.
    pub inner: FileStore,
    /// Its directory.
    pub dir: PathBuf,
    /// Where each record landed (when `track` is on).
    pub placements: Placements,
    /// Whether dropping it is a crash (the default) or a clean close.
    pub crash: bool,
    /// Whether to find where each record lands (two reads of every segment per append:
    /// off by default).
    pub track: Arc<AtomicBool>,
}

impl Crashing {
    /// A ledger store in `dir`, writable.
    pub fn open(dir: &Path) -> Crashing {
        Crashing::with(FileStore::open(dir, "ledger", true).unwrap(), dir)
    }

    /// Wraps `inner`, a store of `dir`.
    pub fn with(inner: FileStore, dir: &Path) -> Crashing {
        Crashing {
            inner,
            dir: dir.to_path_buf(),
            placements: Placements::default(),
            crash: true,
            track: Arc::new(AtomicBool::new(false)),
        }
    }
}

/// The journal segments of a store directory and their bytes, in name order.
pub(crate) fn segment_files(dir: &Path) -> Vec<(PathBuf, Vec<u8>)> {
    let mut out: Vec<(PathBuf, Vec<u8>)> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| {
            let name = p.file_name().unwrap().to_string_lossy();
            name.starts_with("journal-") && name.ends_with(".log")
        })
        .map(|p| {
            let bytes = std::fs::read(&p).unwrap();
            (p, bytes)
        })
        .collect();
    out.sort();
    out
}

/// The byte range where `after` differs from `before` (a new file: all of it).
pub fn changed(before: &[(PathBuf, Vec<u8>)], after: &[(PathBuf, Vec<u8>)]) -> Option<(PathBuf, u64, u64)> {
    let mut found = None;
    for (path, bytes) in after {
        let old = before.iter().find(|(p, _)| p == path).map(|(_, b)| b.as_slice());
        let old = old.unwrap_or(&[]);
        let common = old.len().min(bytes.len());
        let same = |i: usize| i < common && old[i] == bytes[i];
        // Whole 4 KiB pieces first: a segment is mostly unchanged.
        let mut first = 0;
        while first + 4096 <= common && old[first..first + 4096] == bytes[first..first + 4096] {
            first += 4096;
        }
        while first < bytes.len() && same(first) {
            first += 1;
        }
        if first < bytes.len() {
            let mut last = bytes.len();
            while last > first + 4096 && last <= common && old[last - 4096..last] == bytes[last - 4096..last] {
                last -= 4096;
            }
            while last > first && same(last - 1) {
                last -= 1;
            }
            found = Some((path.clone(), first as u64, last as u64));
        }
    }
    found
}

impl Storage for Crashing {
    fn load(&mut self, visit: &mut dyn FnMut(Loaded<'_>) -> Result<(), LedgerError>) -> Result<Recovery, LedgerError> {
        self.inner.load(visit)
    }

    fn append(&mut self, payload: &[u8]) -> Result<(), LedgerError> {
        if !self.track.load(Ordering::SeqCst) {
            return self.inner.append(payload);
        }
        let before = segment_files(&self.dir);
        self.inner.append(payload)?;
        let after = segment_files(&self.dir);
        // The range is what changed: it starts where the record starts (its length's
        // first byte is never zero), and may end before the record if it ends in zeros.
        if let Some(range) = changed(&before, &after) {
            self.placements.lock().unwrap().push(range);
        }
        Ok(())
    }

    fn save_snapshot(&mut self, state: &[u8]) -> Result<(), LedgerError> {
        self.inner.save_snapshot(state)
    }

    fn head(&self) -> Head {
        self.inner.head()
    }

    fn bytes_since_snapshot(&self) -> u64 {
        self.inner.bytes_since_snapshot()
    }

    fn close(&mut self) -> Result<(), LedgerError> {
        if self.crash { Ok(()) } else { self.inner.close() }
    }
}
