//! The `SequenceStore` contract suite (`paygo_invoice::contract`, feature `contract`) on
//! the memory store and the file store.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // tests fail loudly by design

#[path = "support/store.rs"]
#[allow(dead_code)]
mod store_support;

use paygo_invoice::{FileSequenceStore, MemorySequenceStore, contract};
use store_support::TempDir;

#[test]
fn the_memory_store_keeps_the_contract() {
    contract::run_all(&MemorySequenceStore::new(), "MEM");
}

#[test]
fn the_file_store_keeps_the_contract() {
    let dir = TempDir::new("contract");
    contract::run_all(&FileSequenceStore::open(&dir.0).unwrap(), "FILE");
}

#[test]
fn the_file_store_survives_reopening() {
    let dir = TempDir::new("contract-reopen");
    contract::survives_reopening(&|| FileSequenceStore::open(&dir.0).unwrap(), "FILE");
}
