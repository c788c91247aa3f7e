//! Helpers of the sequence store tests (`tests/store.rs` and `tests/crash.rs`).

use std::path::{Path, PathBuf};

use paygo_invoice::{DocumentId, InvoiceError, SequenceRecord, SequenceStore, SeriesName};

/// A fresh directory for one test, removed when dropped.
pub(crate) struct TempDir(pub(crate) PathBuf);

impl TempDir {
    pub(crate) fn new(name: &str) -> TempDir {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos();
        let dir = std::env::temp_dir().join(format!("paygo-invoice-{name}-{}-{nanos}", std::process::id()));
        TempDir(dir)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

pub(crate) fn series(name: &str) -> SeriesName {
    SeriesName::new(name).unwrap()
}

pub(crate) fn key(text: &str) -> DocumentId {
    DocumentId::new(text).unwrap()
}

pub(crate) fn commit(store: &dyn SequenceStore, series_name: &str, id: &str) -> Result<u64, InvoiceError> {
    store.commit(&series(series_name), &key(id), &mut |n| {
        Ok(format!("{{\"doc\":\"{id}\",\"n\":{n}}}"))
    })
}

pub(crate) fn sequences(records: &[SequenceRecord], series_name: &str) -> Vec<u64> {
    records
        .iter()
        .filter(|r| r.series.as_str() == series_name)
        .map(|r| r.sequence)
        .collect()
}

/// The byte offset in journal `path` where the record numbered `n` starts (of the last series
/// with a record numbered `n`). The header slots at the start of the file hold copies of the
/// last records: the record itself is the last occurrence.
pub(crate) fn record_start(path: &Path, n: u64) -> u64 {
    let bytes = std::fs::read(path).unwrap();
    let needle = format!("\"sequence\":{n},\"key\"");
    let at = bytes
        .windows(needle.len())
        .rposition(|w| w == needle.as_bytes())
        .expect("the record is in the journal");
    // A line is `<16 hex digits> {"series":...`.
    let open = b"{\"series\":";
    let json_start = bytes[..at]
        .windows(open.len())
        .rposition(|w| w == open)
        .expect("the record's JSON starts before its number");
    (json_start - 17) as u64
}
