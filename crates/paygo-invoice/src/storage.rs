//! Where a [`FileSequenceStore`](crate::FileSequenceStore) keeps its files: the
//! [`Storage`] trait, and [`DiskStorage`], a directory of the operating system's file system.
//!
//! The store reaches its files only through this trait, so a test can put a simulated disk
//! underneath that loses unsynced writes, tears them, zero-fills a tail, truncates or loses
//! a file, flips bits and fails writes and syncs (`tests/faults.rs`).

use std::fmt;
use std::fs::{File, OpenOptions};
use std::io;
use std::path::{Path, PathBuf};

/// A directory of files, as the sequence store uses it: positional reads and writes,
/// truncation, `fsync` of a file's data and of the directory, atomic rename.
///
/// What a storage must guarantee is what a POSIX file system does: data written and then
/// synced with [`StorageFile::sync_data`] survives a crash; a rename is atomic, and durable
/// once [`Storage::sync_dir`] returns. What it may do is the fault model of
/// `docs/invoice.md`: lose or tear unsynced writes, leave a zero-filled tail, and (as damage)
/// truncate or lose a file, flip bits, and fail any call.
pub trait Storage: Send + Sync + fmt::Debug {
    /// How to name file `name` in messages (its path).
    fn describe(&self, name: &str) -> String;

    /// Opens file `name` for reading, and for writing unless `read_only`; `None` when it
    /// does not exist.
    ///
    /// # Errors
    ///
    /// The storage's I/O errors.
    fn open(&self, name: &str, read_only: bool) -> io::Result<Option<Box<dyn StorageFile>>>;

    /// Creates file `name` empty (replacing any file of that name), for reading and writing.
    ///
    /// # Errors
    ///
    /// The storage's I/O errors.
    fn create(&self, name: &str) -> io::Result<Box<dyn StorageFile>>;

    /// Renames file `from` to `to`, replacing `to`, atomically.
    ///
    /// # Errors
    ///
    /// The storage's I/O errors.
    fn rename(&self, from: &str, to: &str) -> io::Result<()>;

    /// Removes file `name`; a missing file is not an error.
    ///
    /// # Errors
    ///
    /// The storage's I/O errors.
    fn remove(&self, name: &str) -> io::Result<()>;

    /// Makes the directory's entries (creations, renames, removals) durable.
    ///
    /// # Errors
    ///
    /// The storage's I/O errors.
    fn sync_dir(&self) -> io::Result<()>;
}

/// An open file of a [`Storage`].
pub trait StorageFile: Send + Sync + fmt::Debug {
    /// The file's length in bytes.
    ///
    /// # Errors
    ///
    /// The storage's I/O errors.
    fn len(&self) -> io::Result<u64>;

    /// Whether the file is empty.
    ///
    /// # Errors
    ///
    /// The storage's I/O errors.
    fn is_empty(&self) -> io::Result<bool> {
        Ok(self.len()? == 0)
    }

    /// Reads into `buf` from `offset`; returns how many bytes were read (fewer than asked only
    /// at the end of the file).
    ///
    /// # Errors
    ///
    /// The storage's I/O errors.
    fn read_at(&self, offset: u64, buf: &mut [u8]) -> io::Result<usize>;

    /// Writes all of `data` at `offset`, extending the file if needed.
    ///
    /// # Errors
    ///
    /// The storage's I/O errors; after an error, how much was written is unknown.
    fn write_at(&self, offset: u64, data: &[u8]) -> io::Result<()>;

    /// Truncates or extends (with zeros) the file to `len` bytes.
    ///
    /// # Errors
    ///
    /// The storage's I/O errors.
    fn set_len(&self, len: u64) -> io::Result<()>;

    /// Makes the file's data and length durable (`fdatasync`).
    ///
    /// # Errors
    ///
    /// The storage's I/O errors; after an error, which writes are durable is unknown.
    fn sync_data(&self) -> io::Result<()>;

    /// Takes an exclusive advisory lock, held until the file is dropped: `Ok(false)` when
    /// another open file holds it.
    ///
    /// # Errors
    ///
    /// The storage's I/O errors.
    fn try_lock(&self) -> io::Result<bool>;
}

/// A directory of the operating system's file system.
#[derive(Debug, Clone)]
pub struct DiskStorage {
    dir: PathBuf,
}

impl DiskStorage {
    /// The directory `dir`, created (with its parent synced, so that it survives a crash)
    /// if it does not exist.
    ///
    /// # Errors
    ///
    /// The file system's errors.
    pub fn create(dir: impl AsRef<Path>) -> io::Result<DiskStorage> {
        let dir = dir.as_ref().to_path_buf();
        if !dir.is_dir() {
            std::fs::create_dir_all(&dir)?;
            if let Some(parent) = dir.parent().filter(|p| !p.as_os_str().is_empty()) {
                File::open(parent)?.sync_all()?;
            }
        }
        Ok(DiskStorage { dir })
    }

    /// The existing directory `dir`, which is not created.
    pub fn existing(dir: impl AsRef<Path>) -> DiskStorage {
        DiskStorage {
            dir: dir.as_ref().to_path_buf(),
        }
    }

    /// The directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }
}

impl Storage for DiskStorage {
    fn describe(&self, name: &str) -> String {
        self.dir.join(name).display().to_string()
    }

    fn open(&self, name: &str, read_only: bool) -> io::Result<Option<Box<dyn StorageFile>>> {
        match OpenOptions::new()
            .read(true)
            .write(!read_only)
            .open(self.dir.join(name))
        {
            Ok(file) => Ok(Some(Box::new(DiskFile(file)))),
            Err(error) if error.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(error) => Err(error),
        }
    }

    fn create(&self, name: &str) -> io::Result<Box<dyn StorageFile>> {
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(true)
            .open(self.dir.join(name))?;
        Ok(Box::new(DiskFile(file)))
    }

    fn rename(&self, from: &str, to: &str) -> io::Result<()> {
        std::fs::rename(self.dir.join(from), self.dir.join(to))
    }

    fn remove(&self, name: &str) -> io::Result<()> {
        match std::fs::remove_file(self.dir.join(name)) {
            Err(error) if error.kind() == io::ErrorKind::NotFound => Ok(()),
            other => other,
        }
    }

    fn sync_dir(&self) -> io::Result<()> {
        File::open(&self.dir)?.sync_all()
    }
}

#[derive(Debug)]
struct DiskFile(File);

impl StorageFile for DiskFile {
    fn len(&self) -> io::Result<u64> {
        Ok(self.0.metadata()?.len())
    }

    fn read_at(&self, offset: u64, buf: &mut [u8]) -> io::Result<usize> {
        let mut read = 0;
        while read < buf.len() {
            match positional::read(&self.0, &mut buf[read..], offset + read as u64) {
                Ok(0) => break,
                Ok(n) => read += n,
                Err(error) if error.kind() == io::ErrorKind::Interrupted => {}
                Err(error) => return Err(error),
            }
        }
        Ok(read)
    }

    fn write_at(&self, offset: u64, data: &[u8]) -> io::Result<()> {
        let mut written = 0;
        while written < data.len() {
            match positional::write(&self.0, &data[written..], offset + written as u64) {
                Ok(0) => return Err(io::Error::from(io::ErrorKind::WriteZero)),
                Ok(n) => written += n,
                Err(error) if error.kind() == io::ErrorKind::Interrupted => {}
                Err(error) => return Err(error),
            }
        }
        Ok(())
    }

    fn set_len(&self, len: u64) -> io::Result<()> {
        self.0.set_len(len)
    }

    fn sync_data(&self) -> io::Result<()> {
        self.0.sync_data()
    }

    fn try_lock(&self) -> io::Result<bool> {
        match self.0.try_lock() {
            Ok(()) => Ok(true),
            Err(std::fs::TryLockError::WouldBlock) => Ok(false),
            Err(std::fs::TryLockError::Error(error)) => Err(error),
        }
    }
}

/// Positional reads and writes (`pread`/`pwrite`), which need no shared file position.
#[cfg(unix)]
mod positional {
    use std::fs::File;
    use std::io;
    use std::os::unix::fs::FileExt;

    pub(super) fn read(file: &File, buf: &mut [u8], offset: u64) -> io::Result<usize> {
        file.read_at(buf, offset)
    }

    pub(super) fn write(file: &File, data: &[u8], offset: u64) -> io::Result<usize> {
        file.write_at(data, offset)
    }
}

/// Positional reads and writes (`ReadFile`/`WriteFile` at an offset).
#[cfg(windows)]
mod positional {
    use std::fs::File;
    use std::io;
    use std::os::windows::fs::FileExt;

    pub(super) fn read(file: &File, buf: &mut [u8], offset: u64) -> io::Result<usize> {
        file.seek_read(buf, offset)
    }

    pub(super) fn write(file: &File, data: &[u8], offset: u64) -> io::Result<usize> {
        file.seek_write(data, offset)
    }
}
