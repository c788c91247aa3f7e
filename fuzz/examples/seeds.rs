//! Writes the committed seed corpora, `fuzz/seeds/<target>/`, from the crates' own writers
//! and the project's fixtures (`docs/fuzzing.md`):
//!
//! ```text
//! cd fuzz && cargo run --example seeds
//! ```
//!
//! Each seed is in its target's input format (see the target's header). Running it again
//! rewrites the same files.

#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::fs;
use std::path::{Path, PathBuf};

use paygo_billing::Billing;
use paygo_credits::CreditRate;
use paygo_fuzz::ledger_mem::{MemStore, billing_commands, encode, ledger_events, new_billing, open};
use paygo_invoice::{DocumentId, SequenceRecord, SeriesName};
use paygo_ledger::Ledger;
use paygo_ledger::durable::Durable;
use paygo_pricing::PriceBook;
use paygo_pricing::litellm::{ImportOptions, import};

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).to_path_buf()
}

fn write(target: &str, name: &str, bytes: &[u8]) {
    let dir = root().join("seeds").join(target);
    fs::create_dir_all(&dir).unwrap();
    fs::write(dir.join(name), bytes).unwrap();
}

fn project(path: &str) -> String {
    fs::read_to_string(root().join("..").join(path)).unwrap_or_else(|e| panic!("{path}: {e}"))
}

fn u16_piece(out: &mut Vec<u8>, bytes: &[u8]) {
    out.extend_from_slice(
        &u16::try_from(bytes.len())
            .expect("a seed piece under 64 KiB")
            .to_le_bytes(),
    );
    out.extend_from_slice(bytes);
}

fn money_text() {
    let texts = [
        "10.00",
        "-12.25",
        "+0",
        "0.000015",
        "1892",
        "-5",
        "2.9999900000000002e-06",
        "1E+3",
        "0e-5",
        "79228162514264337593543950335",
        "0.0000000000000000000000000001",
        "1.00000000000000000000000000000000",
        "10.00 USD",
        "1000 JPY",
        "0.125 BHD",
        "9223372036854775807",
        r#"{"amount":"10.00","currency":"USD"}"#,
        r#""0.3""#,
    ];
    for (i, t) in texts.iter().enumerate() {
        write("money_text", &format!("text-{i:02}"), t.as_bytes());
    }
    let rate = serde_json::to_string(&CreditRate::default()).unwrap();
    write("money_text", "credit-rate", rate.as_bytes());
}

fn vat_id() {
    // Valid numbers of the crate's tests (`crates/paygo-vat/tests/ids.rs`), with the
    // separators and cases users type; the first byte picks the country for `parse_in`.
    let ids = [
        (0, "ATU 142 43 102"),
        (1, "BE (0)468.561.072"),
        (2, "BG 175074752"),
        (3, "CY-10259033P"),
        (4, "CZ 7103192745"),
        (5, "de 136.695.976"),
        (6, "DK 13585628"),
        (7, "EE 100594102"),
        (8, "EL 094259216"),
        (9, "ESB64717838"),
        (10, "CHE-109.298.651 TVA"),
        (11, "NO 987 008 644 MVA"),
        (12, "428.759.497"),
        (13, "GB 980 7806 84"),
        (14, "XI 980 7806 84"),
    ];
    for (i, (country, text)) in ids.iter().enumerate() {
        let mut bytes = vec![*country];
        bytes.extend_from_slice(text.as_bytes());
        write("vat_id", &format!("id-{i:02}"), &bytes);
    }
}

fn usage() {
    // From `crates/paygo-pricing/tests/shapes.rs`: each shape, with its details. The first
    // byte declares the shape (0 chat, 1 responses, 2 Anthropic, 3 Gemini; 9: detect only).
    let objects = [
        (
            0,
            r#"{"prompt_tokens": 1200, "completion_tokens": 300, "total_tokens": 1500,
                "prompt_tokens_details": {"cached_tokens": 200, "audio_tokens": 10},
                "completion_tokens_details": {"reasoning_tokens": 100, "audio_tokens": 5}}"#,
        ),
        (9, r#"{"output_images": 2, "image_size": "1024x1024"}"#),
        (
            1,
            r#"{"input_tokens": 1000, "input_tokens_details": {"cached_tokens": 400},
                "output_tokens": 200, "output_tokens_details": {"reasoning_tokens": 50}, "total_tokens": 1200}"#,
        ),
        (
            2,
            r#"{"input_tokens": 1000, "output_tokens": 200, "cache_creation_input_tokens": 300,
                "cache_read_input_tokens": 4000, "cache_creation": {"ephemeral_5m_input_tokens": 100,
                "ephemeral_1h_input_tokens": 200}, "server_tool_use": {"web_search_requests": 2}}"#,
        ),
        (
            3,
            r#"{"promptTokenCount": 1000, "candidatesTokenCount": 200, "thoughtsTokenCount": 50,
                "totalTokenCount": 1250, "cachedContentTokenCount": 300,
                "promptTokensDetails": [{"modality": "TEXT", "tokenCount": 700}, {"modality": "AUDIO", "tokenCount": 200},
                                        {"modality": "IMAGE", "tokenCount": 60}, {"modality": "VIDEO", "tokenCount": 40}],
                "cacheTokensDetails": [{"modality": "TEXT", "tokenCount": 230}, {"modality": "AUDIO", "tokenCount": 50},
                                       {"modality": "IMAGE", "tokenCount": 20}]}"#,
        ),
        (
            9,
            r#"{"usageMetadata": {"promptTokenCount": 10, "candidatesTokenCount": 2}, "modelVersion": "gemini-2.5-flash"}"#,
        ),
        (
            9,
            r#"{"prompt_tokens": 300000, "completion_tokens": 10, "input_duration_ms": 1500, "citation_tokens": 3}"#,
        ),
    ];
    for (i, (shape, text)) in objects.iter().enumerate() {
        let mut bytes = vec![*shape];
        bytes.extend_from_slice(text.as_bytes());
        write("usage", &format!("usage-{i:02}"), &bytes);
    }
}

fn price_catalogs() {
    let litellm = project("crates/paygo-pricing/tests/fixtures/litellm_small.json");
    let openrouter = project("crates/paygo-pricing/tests/fixtures/openrouter_small.json");
    write("price_catalog_litellm", "litellm_small.json", litellm.as_bytes());
    write(
        "price_catalog_litellm",
        "one-model.json",
        br#"{"gpt-4o": {"litellm_provider": "openai", "mode": "chat", "input_cost_per_token": 2.5e-06,
            "output_cost_per_token": 1e-05, "input_cost_per_token_above_128k_tokens": 5e-06,
            "output_cost_per_token_flex": 5e-06, "cache_read_input_token_cost": 1.25e-06}}"#,
    );
    write(
        "price_catalog_openrouter",
        "openrouter_small.json",
        openrouter.as_bytes(),
    );
    // paygo's own format, as the crate writes it: the imported fixture, and the crate's
    // documented example with a context tier.
    let (book, _) = import(&litellm, &ImportOptions::default()).unwrap();
    write(
        "price_catalog_paygo",
        "litellm_small.paygo.json",
        book.to_json().as_bytes(),
    );
    let example = PriceBook::from_json(
        r#"{"format": "paygo-prices/1", "markup": {"percent": "5", "fixed_usd": "0.0001"},
            "models": [{"id": "claude-sonnet-4-5", "aliases": ["sonnet"], "provider": "anthropic", "mode": "chat",
              "versions": [{"valid_from": "2025-09-29T00:00:00Z",
                "prices": {"input_token": "0.000003", "output_token": "0.000015",
                           "cache_read_token": "0.0000003", "cache_write_token": "0.00000375"},
                "context_tiers": [{"above_tokens": 200000,
                                   "prices": {"input_token": "0.000006", "output_token": "0.0000225"}}]}]}]}"#,
    )
    .unwrap();
    write(
        "price_catalog_paygo",
        "example.paygo.json",
        example.to_json().as_bytes(),
    );
}

/// A ledger or billing snapshot as the crate encodes it, in `ledger_snapshot`'s format.
fn snapshot_seed(kind: u8, state: &[u8], commands: &[u8], count: u8) -> Vec<u8> {
    let mut out = vec![kind, count];
    out.extend_from_slice(&5_000_000_000u64.to_le_bytes());
    u16_piece(&mut out, state);
    out.extend_from_slice(commands);
    out
}

fn ledger_seeds() {
    // The crate's own writer: a durable handle over an in-memory storage journals the
    // turns (the records) and the snapshots exactly as it would on disk.
    let store = MemStore::default();
    let shared = open(&store, Ledger::new, 1_000).unwrap();
    let events = ledger_events();
    for chunk in events.chunks(4) {
        shared.submit(chunk.to_vec()).unwrap();
    }
    let ledger_state = shared.read(encode).unwrap();
    drop(shared);
    let data = store.data();
    let empty_ledger = encode(&Ledger::new());

    let store = MemStore::default();
    let shared = open(&store, new_billing, 1_000).unwrap();
    let commands = billing_commands();
    for chunk in commands.chunks(3) {
        shared.submit(chunk.to_vec()).unwrap();
    }
    let billing_state = shared.read(encode).unwrap();
    drop(shared);
    let billing_data = store.data();
    let empty_billing = encode(&new_billing());

    // ledger_snapshot: states, with commands to run on them.
    let mut encoded_events = Vec::new();
    Ledger::encode_commands(&events[4..6], &mut encoded_events);
    write(
        "ledger_snapshot",
        "ledger",
        &snapshot_seed(0, &ledger_state, &encoded_events, 2),
    );
    write(
        "ledger_snapshot",
        "ledger-empty",
        &snapshot_seed(0, &empty_ledger, &[], 0),
    );
    let mut encoded_commands = Vec::new();
    Billing::encode_commands(&commands[4..8], &mut encoded_commands);
    write(
        "ledger_snapshot",
        "billing",
        &snapshot_seed(1, &billing_state, &encoded_commands, 4),
    );
    write(
        "ledger_snapshot",
        "billing-empty",
        &snapshot_seed(1, &empty_billing, &[], 0),
    );

    // ledger_journal: a snapshot (given, or the target's own) and the records after it.
    let journal = |kind: u8, start: Option<&[u8]>, records: &[Vec<u8>]| {
        let mut out = vec![kind | if start.is_some() { 2 } else { 0 }];
        if let Some(state) = start {
            u16_piece(&mut out, state);
        }
        for r in records {
            u16_piece(&mut out, r);
        }
        out
    };
    write(
        "ledger_journal",
        "ledger-from-empty",
        &journal(0, Some(&empty_ledger), &data.records),
    );
    write("ledger_journal", "ledger-more", &journal(0, None, &data.records[2..]));
    write(
        "ledger_journal",
        "billing-from-empty",
        &journal(1, Some(&empty_billing), &billing_data.records),
    );
    write(
        "ledger_journal",
        "billing-more",
        &journal(1, None, &billing_data.records[1..]),
    );

    // ledger_store: settings, then operations (`fuzz_targets/ledger_store.rs`): submits of
    // generated commands (opcode 0..=0x7f: count - 1 in the low bits), a snapshot (0x80),
    // the clock (0xa0), the end of writing (0xe0), then damage operations.
    let mut ledger_ops = vec![0b0000_0000];
    // 4 accounts (opcode 3: four events): op 0, id, flags (2: may not go below zero).
    ledger_ops.extend_from_slice(&[3, 0, 1, 2, 0, 2, 2, 0, 3, 0, 0, 4, 0]);
    // 2 transfers: op 2, id, flags, accounts (debit | credit << 3), amount (u16), timeout.
    ledger_ops.extend_from_slice(&[1, 2, 10, 0, 0x0c, 0x10, 0x27, 0, 2, 11, 0, 0x14, 0xe8, 0x03, 0]);
    // A snapshot, 4 seconds, then a pending transfer (flag 2) from 1 to 3.
    ledger_ops.extend_from_slice(&[0x80, 0xa0, 0xa0, 0x0f]);
    ledger_ops.extend_from_slice(&[0, 2, 12, 2, 0x19, 0x64, 0, 1]);
    write("ledger_store", "ledger-clean", &ledger_ops);
    let mut crashed = ledger_ops.clone();
    crashed[0] = 0b0010_0010;
    // The end of writing, then a flip (op 0): file 1, offset 32, xor 0x55.
    crashed.extend_from_slice(&[0xe0, 0x00, 0x01, 0x40, 0x00, 0x55]);
    write("ledger_store", "ledger-crash-flip", &crashed);
    let mut billing_ops = vec![0b0000_1001];
    // Commands: op, customer, id, method, amount (u16), then the op's own bytes.
    billing_ops.extend_from_slice(&[1, 0, 1, 0, 0, 0, 0, 0, 2, 0, 0, 0, 0]); // open 1 and 2
    billing_ops.extend_from_slice(&[0, 1, 1, 0, 3, 0, 0, 0xe8, 0x03]); // top up $10 by PayPal
    billing_ops.extend_from_slice(&[1, 2, 1, 1, 0, 0x64, 0, 10, 4, 1, 1, 0, 0x32, 0]); // hold 100, capture 50
    // A snapshot, the end of writing, then a forged manifest (op 7): line 5, its last number 3.
    billing_ops.extend_from_slice(&[0x80, 0xe0, 0x07, 0x05, 0x00, 0x03, 0x01]);
    write("ledger_store", "billing-snapshot-forged", &billing_ops);
}

fn invoice_seeds() {
    // Mode 0: commits by the crate's writer, bodies from the golden documents.
    let golden = project("crates/paygo-invoice/tests/golden/INV-2026-000001.json");
    let mut ops = vec![0u8];
    let commit = |out: &mut Vec<u8>, op: u8, key: &[u8], body: &[u8]| {
        out.push(op);
        out.push(u8::try_from(key.len() - 1).unwrap());
        out.extend_from_slice(key);
        u16_piece(out, body);
    };
    commit(&mut ops, 0, b"top-up-1", golden.as_bytes());
    commit(&mut ops, 1, b"refund-1", br#"{"credit_note":1}"#);
    commit(&mut ops, 0, b"top-up-2", br#"{"n":2}"#);
    commit(&mut ops, 0x10, b"failed", b"{}"); // a seal that fails
    write("invoice_journal", "written", &ops);
    let mut reopened = ops.clone();
    reopened.push(0xe0); // reopen
    commit(&mut reopened, 2, b"after", br#"{"n":3}"#);
    reopened.push(0xf0); // end of writing
    reopened.extend_from_slice(&[0, 3, 0xf6, 0xff, 0x41]); // flip a byte of the last line
    write("invoice_journal", "reopened-damaged", &reopened);
    let mut torn = ops.clone();
    torn.push(0xf0);
    torn.extend_from_slice(&[4, 3, 0, 0, 9, 0, b'0', b'1', b'2', b'3', b'4', b'5', b'6', b'7', b'8']); // a torn line
    torn.extend_from_slice(&[5, 3, 0, 0, 17, 0]);
    torn.extend_from_slice(br#"{"series":"A/1",}"#);
    write("invoice_journal", "torn-and-line", &torn);

    // Mode 1: a format-1 journal, lines as the crate serializes records.
    let mut lines = vec![1u8];
    for (n, series) in [(1, "INV-2026"), (2, "INV-2026"), (1, "CN-2026")] {
        let record = SequenceRecord {
            series: SeriesName::new(series).unwrap(),
            sequence: n,
            key: DocumentId::new(&format!("doc-{series}-{n}")).unwrap(),
            body: format!("{{\"n\":{n}}}"),
        };
        let json = serde_json::to_string(&record).unwrap();
        let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
        for byte in json.as_bytes() {
            hash ^= u64::from(*byte);
            hash = hash.wrapping_mul(0x0100_0000_01b3);
        }
        lines.extend_from_slice(format!("{hash:016x} {json}\n").as_bytes());
    }
    write("invoice_journal", "format-1", &lines);
}

fn main() {
    money_text();
    vat_id();
    usage();
    price_catalogs();
    ledger_seeds();
    invoice_seeds();
    println!("seeds written to {}", root().join("seeds").display());
}
