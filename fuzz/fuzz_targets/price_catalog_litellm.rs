//! LiteLLM's price catalog (`model_prices_and_context_window.json`) through
//! `litellm::import`, lenient and strict, and `litellm::detect_format`.
//!
//! Input: UTF-8 JSON text.
//!
//! Properties: a strict import that succeeds gives the same book as a lenient one; the
//! report counts the models imported; and every book imported keeps the properties of
//! `paygo_fuzz::check_book` (it round-trips through paygo's own format, quotes add up,
//! estimates bound quotes).

#![no_main]

use libfuzzer_sys::fuzz_target;
use paygo_pricing::litellm::{ImportOptions, detect_format, import};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let _ = detect_format(text);
    let lenient = import(text, &ImportOptions::default());
    let strict = import(
        text,
        &ImportOptions {
            strict: true,
            ..ImportOptions::default()
        },
    );
    if let Ok((book, report)) = &strict {
        let Ok((lenient, _)) = &lenient else {
            panic!("strict import accepts what lenient refuses");
        };
        assert_eq!(book.models(), lenient.models(), "strict and lenient imports differ");
        assert_eq!(report.models, book.len(), "the report counts another number of models");
    }
    if let Ok((book, _)) = &lenient {
        paygo_fuzz::check_book(book);
    }
});
