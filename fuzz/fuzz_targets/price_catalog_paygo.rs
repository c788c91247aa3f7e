//! paygo's own price-book format (`PriceBook::from_json`, `docs/pricing.md`).
//!
//! Input: UTF-8 JSON text.
//!
//! Properties (`paygo_fuzz::check_book`): a book that loads writes itself back to text
//! that loads to the same models and markup; quoting and estimating its models never
//! panics, quotes add up and are not negative, and an estimate bounds the quote of a usage
//! within its limits.

#![no_main]

use libfuzzer_sys::fuzz_target;
use paygo_pricing::PriceBook;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(book) = PriceBook::from_json(text) {
        paygo_fuzz::check_book(&book);
    }
});
