//! A directory in memory for the invoice sequence store (its public `Storage` trait):
//! sparse files (the journal's two header slots take 2.2 MB, mostly zeros), renames that
//! move a file's content as an inode would, and advisory locks held by open handles.
//! Every call succeeds and is durable at once: damage is made by the target, at rest.

use std::collections::BTreeMap;
use std::io;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use paygo_invoice::{Storage, StorageFile};

const CHUNK: u64 = 4096;

/// A file's bytes: its length and the chunks ever written (others read as zeros).
#[derive(Debug, Clone, Default)]
pub struct Content {
    len: u64,
    chunks: BTreeMap<u64, Box<[u8]>>,
}

impl Content {
    pub fn len(&self) -> u64 {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    pub fn read(&self, offset: u64, buf: &mut [u8]) -> usize {
        if offset >= self.len {
            return 0;
        }
        let n = usize::try_from((self.len - offset).min(buf.len() as u64)).unwrap();
        let mut done = 0;
        while done < n {
            let at = offset + done as u64;
            let (index, within) = (at / CHUNK, usize::try_from(at % CHUNK).unwrap());
            let piece = (n - done).min(CHUNK as usize - within);
            let out = &mut buf[done..done + piece];
            match self.chunks.get(&index) {
                Some(chunk) => out.copy_from_slice(&chunk[within..within + piece]),
                None => out.fill(0),
            }
            done += piece;
        }
        n
    }

    pub fn write(&mut self, offset: u64, data: &[u8]) {
        let mut done = 0;
        while done < data.len() {
            let at = offset + done as u64;
            let (index, within) = (at / CHUNK, usize::try_from(at % CHUNK).unwrap());
            let piece = (data.len() - done).min(CHUNK as usize - within);
            let chunk = self
                .chunks
                .entry(index)
                .or_insert_with(|| vec![0u8; CHUNK as usize].into_boxed_slice());
            chunk[within..within + piece].copy_from_slice(&data[done..done + piece]);
            done += piece;
        }
        self.len = self.len.max(offset + data.len() as u64);
    }

    pub fn set_len(&mut self, len: u64) {
        if len < self.len {
            // What is cut reads as zeros if the file grows again.
            self.chunks.retain(|&index, _| index * CHUNK < len);
            if let Some(chunk) = self.chunks.get_mut(&(len / CHUNK)) {
                chunk[usize::try_from(len % CHUNK).unwrap()..].fill(0);
            }
        }
        self.len = len;
    }
}

#[derive(Debug, Default)]
struct Inode {
    content: Mutex<Content>,
    locked: AtomicBool,
}

/// The directory; clones share it.
#[derive(Debug, Clone, Default)]
pub struct MemDisk(Arc<Mutex<BTreeMap<String, Arc<Inode>>>>);

impl MemDisk {
    pub fn new() -> MemDisk {
        MemDisk::default()
    }

    /// An independent copy of every file (no locks held).
    #[must_use]
    pub fn copy(&self) -> MemDisk {
        let files = self.0.lock().unwrap();
        let copied = files
            .iter()
            .map(|(name, inode)| {
                let content = inode.content.lock().unwrap().clone();
                (
                    name.clone(),
                    Arc::new(Inode {
                        content: Mutex::new(content),
                        locked: AtomicBool::new(false),
                    }),
                )
            })
            .collect();
        MemDisk(Arc::new(Mutex::new(copied)))
    }

    pub fn names(&self) -> Vec<String> {
        self.0.lock().unwrap().keys().cloned().collect()
    }

    /// Changes file `name` (damage at rest); `false` when there is no such file.
    pub fn change(&self, name: &str, f: impl FnOnce(&mut Content)) -> bool {
        let files = self.0.lock().unwrap();
        let Some(inode) = files.get(name) else {
            return false;
        };
        f(&mut inode.content.lock().unwrap());
        true
    }

    /// Writes file `name` whole, creating it.
    pub fn put(&self, name: &str, bytes: &[u8]) {
        let mut content = Content::default();
        content.write(0, bytes);
        let inode = Inode {
            content: Mutex::new(content),
            locked: AtomicBool::new(false),
        };
        self.0.lock().unwrap().insert(name.to_owned(), Arc::new(inode));
    }

    pub fn delete(&self, name: &str) {
        self.0.lock().unwrap().remove(name);
    }

    pub fn len(&self, name: &str) -> Option<u64> {
        let files = self.0.lock().unwrap();
        files.get(name).map(|inode| inode.content.lock().unwrap().len())
    }
}

impl Storage for MemDisk {
    fn describe(&self, name: &str) -> String {
        format!("mem:{name}")
    }

    fn open(&self, name: &str, _read_only: bool) -> io::Result<Option<Box<dyn StorageFile>>> {
        let files = self.0.lock().unwrap();
        Ok(files.get(name).map(|inode| {
            Box::new(MemFile {
                inode: Arc::clone(inode),
                holds_lock: AtomicBool::new(false),
            }) as Box<dyn StorageFile>
        }))
    }

    fn create(&self, name: &str) -> io::Result<Box<dyn StorageFile>> {
        let inode = Arc::new(Inode::default());
        self.0.lock().unwrap().insert(name.to_owned(), Arc::clone(&inode));
        Ok(Box::new(MemFile {
            inode,
            holds_lock: AtomicBool::new(false),
        }))
    }

    fn rename(&self, from: &str, to: &str) -> io::Result<()> {
        let mut files = self.0.lock().unwrap();
        let inode = files
            .remove(from)
            .ok_or_else(|| io::Error::new(io::ErrorKind::NotFound, "no such file"))?;
        files.insert(to.to_owned(), inode);
        Ok(())
    }

    fn remove(&self, name: &str) -> io::Result<()> {
        self.0.lock().unwrap().remove(name);
        Ok(())
    }

    fn sync_dir(&self) -> io::Result<()> {
        Ok(())
    }
}

#[derive(Debug)]
struct MemFile {
    inode: Arc<Inode>,
    holds_lock: AtomicBool,
}

impl Drop for MemFile {
    fn drop(&mut self) {
        if self.holds_lock.load(Ordering::SeqCst) {
            self.inode.locked.store(false, Ordering::SeqCst);
        }
    }
}

impl StorageFile for MemFile {
    fn len(&self) -> io::Result<u64> {
        Ok(self.inode.content.lock().unwrap().len())
    }

    fn read_at(&self, offset: u64, buf: &mut [u8]) -> io::Result<usize> {
        Ok(self.inode.content.lock().unwrap().read(offset, buf))
    }

    fn write_at(&self, offset: u64, data: &[u8]) -> io::Result<()> {
        self.inode.content.lock().unwrap().write(offset, data);
        Ok(())
    }

    fn set_len(&self, len: u64) -> io::Result<()> {
        self.inode.content.lock().unwrap().set_len(len);
        Ok(())
    }

    fn sync_data(&self) -> io::Result<()> {
        Ok(())
    }

    fn try_lock(&self) -> io::Result<bool> {
        if self.holds_lock.load(Ordering::SeqCst) {
            return Ok(true);
        }
        let got = self
            .inode
            .locked
            .compare_exchange(false, true, Ordering::SeqCst, Ordering::SeqCst)
            .is_ok();
        self.holds_lock.store(got, Ordering::SeqCst);
        Ok(got)
    }
}
