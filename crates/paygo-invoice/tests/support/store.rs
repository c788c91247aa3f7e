//! Helpers of the sequence store tests (`tests/store.rs` and `tests/crash.rs`).

use std::path::PathBuf;

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
