//! Exact binary encodings: little-endian integers, fixed-size ledger events, and money as
//! its decimal text (never a float).
//!
//! Public for the [`Durable`](super::Durable) machines built on the ledger in other crates
//! (the billing layer writes its state with these and embeds the ledger's with
//! [`Ledger::write_state`](crate::Ledger::write_state) and
//! [`Ledger::read_state`](crate::Ledger::read_state)), so that every machine's bytes follow
//! one set of rules: fixed-width little-endian integers, lengths as `u64`, text as UTF-8
//! after its length, money as its decimal text.
//!
//! ```
//! use paygo_ledger::durable::codec::{Put, Reader};
//!
//! let mut out = Vec::new();
//! out.put_u64(42);
//! out.put_text("usd");
//! let mut r = Reader::new(&out);
//! assert_eq!(r.u64()?, 42);
//! assert_eq!(r.text()?, "usd");
//! assert!(r.is_empty());
//! # Ok::<(), paygo_ledger::LedgerError>(())
//! ```

use paygo_credits::{Credits, Money};

use crate::{Account, AccountFlags, AccountId, Event, EventResult, LedgerError, Transfer, TransferFlags, TransferId};

/// The size of one encoded [`Event`], in bytes.
pub const EVENT_LEN: usize = 104;

/// Appends little-endian values to a buffer.
pub trait Put {
    /// One byte.
    fn put_u8(&mut self, v: u8);
    /// A `u32`, 4 bytes little-endian.
    fn put_u32(&mut self, v: u32);
    /// A `u64`, 8 bytes little-endian.
    fn put_u64(&mut self, v: u64);
    /// A `u128`, 16 bytes little-endian.
    fn put_u128(&mut self, v: u128);
    /// An `i64`, 8 bytes little-endian.
    fn put_i64(&mut self, v: i64);
    /// A boolean as one byte, 0 or 1.
    fn put_bool(&mut self, v: bool);
    /// Text: its length in bytes (as [`Put::put_len`]), then its UTF-8.
    fn put_text(&mut self, text: &str);
    /// An optional `u64`: a boolean, then the value (0 when absent).
    fn put_opt_u64(&mut self, v: Option<u64>);
    /// An optional `u128`: a boolean, then the value (0 when absent).
    fn put_opt_u128(&mut self, v: Option<u128>);
    /// A length, as a `u64`.
    fn put_len(&mut self, n: usize);
}

impl Put for Vec<u8> {
    fn put_u8(&mut self, v: u8) {
        self.push(v);
    }
    fn put_u32(&mut self, v: u32) {
        self.extend_from_slice(&v.to_le_bytes());
    }
    fn put_u64(&mut self, v: u64) {
        self.extend_from_slice(&v.to_le_bytes());
    }
    fn put_u128(&mut self, v: u128) {
        self.extend_from_slice(&v.to_le_bytes());
    }
    fn put_i64(&mut self, v: i64) {
        self.extend_from_slice(&v.to_le_bytes());
    }
    fn put_bool(&mut self, v: bool) {
        self.push(u8::from(v));
    }
    fn put_text(&mut self, text: &str) {
        self.put_len(text.len());
        self.extend_from_slice(text.as_bytes());
    }
    fn put_opt_u64(&mut self, v: Option<u64>) {
        self.put_bool(v.is_some());
        self.put_u64(v.unwrap_or(0));
    }
    fn put_opt_u128(&mut self, v: Option<u128>) {
        self.put_bool(v.is_some());
        self.put_u128(v.unwrap_or(0));
    }
    fn put_len(&mut self, n: usize) {
        self.put_u64(n as u64);
    }
}

/// Reads what [`Put`] wrote; every read is bounds-checked.
#[derive(Debug)]
pub struct Reader<'a> {
    bytes: &'a [u8],
    pos: usize,
}

/// A [`LedgerError::Decode`] saying what is wrong.
pub fn bad(what: impl Into<String>) -> LedgerError {
    LedgerError::Decode { what: what.into() }
}

impl<'a> Reader<'a> {
    /// Reads `bytes` from the start.
    pub fn new(bytes: &'a [u8]) -> Reader<'a> {
        Reader { bytes, pos: 0 }
    }

    /// Whether every byte was read.
    pub fn is_empty(&self) -> bool {
        self.pos == self.bytes.len()
    }

    /// Every byte not read yet, taken (the reader is then empty).
    pub fn rest(&mut self) -> &'a [u8] {
        let rest = &self.bytes[self.pos..];
        self.pos = self.bytes.len();
        rest
    }

    /// The next `n` bytes.
    ///
    /// # Errors
    ///
    /// [`LedgerError::Decode`] when the data ends first or the bytes are not such a value.
    pub fn take(&mut self, n: usize) -> Result<&'a [u8], LedgerError> {
        let end = self
            .pos
            .checked_add(n)
            .filter(|&e| e <= self.bytes.len())
            .ok_or_else(|| bad(format!("{n} bytes expected at {}, the data ends first", self.pos)))?;
        let out = &self.bytes[self.pos..end];
        self.pos = end;
        Ok(out)
    }

    fn array<const N: usize>(&mut self) -> Result<[u8; N], LedgerError> {
        let mut a = [0u8; N];
        a.copy_from_slice(self.take(N)?);
        Ok(a)
    }

    /// One byte.
    ///
    /// # Errors
    ///
    /// [`LedgerError::Decode`] when the data ends first or the bytes are not such a value.
    pub fn u8(&mut self) -> Result<u8, LedgerError> {
        Ok(self.array::<1>()?[0])
    }
    /// A `u32`.
    ///
    /// # Errors
    ///
    /// [`LedgerError::Decode`] when the data ends first or the bytes are not such a value.
    pub fn u32(&mut self) -> Result<u32, LedgerError> {
        Ok(u32::from_le_bytes(self.array()?))
    }
    /// A `u64`.
    ///
    /// # Errors
    ///
    /// [`LedgerError::Decode`] when the data ends first or the bytes are not such a value.
    pub fn u64(&mut self) -> Result<u64, LedgerError> {
        Ok(u64::from_le_bytes(self.array()?))
    }
    /// A `u128`.
    ///
    /// # Errors
    ///
    /// [`LedgerError::Decode`] when the data ends first or the bytes are not such a value.
    pub fn u128(&mut self) -> Result<u128, LedgerError> {
        Ok(u128::from_le_bytes(self.array()?))
    }
    /// An `i64`.
    ///
    /// # Errors
    ///
    /// [`LedgerError::Decode`] when the data ends first or the bytes are not such a value.
    pub fn i64(&mut self) -> Result<i64, LedgerError> {
        Ok(i64::from_le_bytes(self.array()?))
    }
    /// A boolean (0 or 1; anything else is an error).
    ///
    /// # Errors
    ///
    /// [`LedgerError::Decode`] when the data ends first or the bytes are not such a value.
    pub fn bool(&mut self) -> Result<bool, LedgerError> {
        match self.u8()? {
            0 => Ok(false),
            1 => Ok(true),
            b => Err(bad(format!("a boolean is 0 or 1, found {b}"))),
        }
    }
    /// A length, which cannot exceed the bytes left (each item takes at least one).
    ///
    /// # Errors
    ///
    /// [`LedgerError::Decode`] when the data ends first or the bytes are not such a value.
    pub fn len(&mut self) -> Result<usize, LedgerError> {
        let n = self.u64()?;
        // A length can never exceed what is left to read (each item is at least a byte).
        usize::try_from(n)
            .ok()
            .filter(|&n| n <= self.bytes.len() - self.pos)
            .ok_or_else(|| bad(format!("a length of {n} is beyond the data")))
    }
    /// Text written by [`Put::put_text`].
    ///
    /// # Errors
    ///
    /// [`LedgerError::Decode`] when the data ends first or the bytes are not such a value.
    pub fn text(&mut self) -> Result<&'a str, LedgerError> {
        let n = self.len()?;
        std::str::from_utf8(self.take(n)?).map_err(|_| bad("text is not UTF-8"))
    }
    /// An optional `u64`.
    ///
    /// # Errors
    ///
    /// [`LedgerError::Decode`] when the data ends first or the bytes are not such a value.
    pub fn opt_u64(&mut self) -> Result<Option<u64>, LedgerError> {
        let some = self.bool()?;
        let v = self.u64()?;
        Ok(some.then_some(v))
    }
    /// An optional `u128`.
    ///
    /// # Errors
    ///
    /// [`LedgerError::Decode`] when the data ends first or the bytes are not such a value.
    pub fn opt_u128(&mut self) -> Result<Option<u128>, LedgerError> {
        let some = self.bool()?;
        let v = self.u128()?;
        Ok(some.then_some(v))
    }
    /// Credits, as an `i64`.
    ///
    /// # Errors
    ///
    /// [`LedgerError::Decode`] when the data ends first or the bytes are not such a value.
    pub fn credits(&mut self) -> Result<Credits, LedgerError> {
        Ok(Credits::new(self.i64()?))
    }
    /// Money written by [`put_money`].
    ///
    /// # Errors
    ///
    /// [`LedgerError::Decode`] when the data ends first or the bytes are not such a value.
    pub fn money(&mut self) -> Result<Money, LedgerError> {
        let text = self.text()?;
        text.parse::<Money>()
            .map_err(|e| bad(format!("money {text:?} does not parse: {e}")))
    }
    /// An [`EventResult`] written by [`put_result`].
    ///
    /// # Errors
    ///
    /// [`LedgerError::Decode`] when the data ends first or the bytes are not such a value.
    pub fn result(&mut self) -> Result<EventResult, LedgerError> {
        let i = self.u8()?;
        EventResult::ALL
            .get(usize::from(i))
            .copied()
            .ok_or_else(|| bad(format!("result code {i} is unknown")))
    }
}

/// Money as its decimal text with its currency (exact; never a float).
pub fn put_money(out: &mut Vec<u8>, money: &Money) {
    out.put_text(&money.to_string());
}

/// An [`EventResult`] as one byte: its position in [`EventResult::ALL`].
pub fn put_result(out: &mut Vec<u8>, result: EventResult) {
    // `ALL` lists every result, so the position is always found.
    let i = EventResult::ALL.iter().position(|r| *r == result).unwrap_or(0);
    out.put_u8(i as u8);
}

const TAG_ACCOUNT: u8 = 1;
const TAG_TRANSFER: u8 = 2;
const TAG_CLOSE: u8 = 3;

/// Appends one event in exactly [`EVENT_LEN`] bytes.
pub fn put_event(out: &mut Vec<u8>, event: &Event) {
    let mut b = [0u8; EVENT_LEN];
    match event {
        Event::CreateAccount(a) => {
            b[0] = TAG_ACCOUNT;
            b[1..3].copy_from_slice(&a.flags.0.to_le_bytes());
            b[3..5].copy_from_slice(&a.code.to_le_bytes());
            b[8..24].copy_from_slice(&a.id.0.to_le_bytes());
            b[24..40].copy_from_slice(&a.user_data.to_le_bytes());
        }
        Event::CreateTransfer(t) => {
            b[0] = TAG_TRANSFER;
            b[1..3].copy_from_slice(&t.flags.0.to_le_bytes());
            b[3..5].copy_from_slice(&t.code.to_le_bytes());
            b[5] = u8::from(t.pending_id.is_some());
            b[8..24].copy_from_slice(&t.id.0.to_le_bytes());
            b[24..40].copy_from_slice(&t.debit_account_id.0.to_le_bytes());
            b[40..56].copy_from_slice(&t.credit_account_id.0.to_le_bytes());
            b[56..72].copy_from_slice(&t.pending_id.map_or(0, |p| p.0).to_le_bytes());
            b[72..88].copy_from_slice(&t.user_data.to_le_bytes());
            b[88..96].copy_from_slice(&t.amount.get().to_le_bytes());
            b[96..104].copy_from_slice(&t.timeout_ms.to_le_bytes());
        }
        Event::CloseAccount { id, linked } => {
            b[0] = TAG_CLOSE;
            b[1] = u8::from(*linked);
            b[8..24].copy_from_slice(&id.0.to_le_bytes());
        }
    }
    out.extend_from_slice(&b);
}

fn le16(b: &[u8]) -> u16 {
    u16::from_le_bytes([b[0], b[1]])
}

fn le64(b: &[u8]) -> u64 {
    let mut a = [0u8; 8];
    a.copy_from_slice(&b[..8]);
    u64::from_le_bytes(a)
}

fn le128(b: &[u8]) -> u128 {
    let mut a = [0u8; 16];
    a.copy_from_slice(&b[..16]);
    u128::from_le_bytes(a)
}

/// Reads one event of [`EVENT_LEN`] bytes.
/// Reads one event written by [`put_event`] from exactly [`EVENT_LEN`] bytes.
///
/// # Errors
///
/// [`LedgerError::Decode`] for bytes that are not such an event.
pub fn get_event(b: &[u8]) -> Result<Event, LedgerError> {
    if b.len() != EVENT_LEN {
        return Err(bad(format!("an event is {EVENT_LEN} bytes, {} given", b.len())));
    }
    match b[0] {
        TAG_ACCOUNT => Ok(Event::CreateAccount(Account {
            id: AccountId(le128(&b[8..])),
            flags: AccountFlags(le16(&b[1..])),
            code: le16(&b[3..]),
            user_data: le128(&b[24..]),
        })),
        TAG_TRANSFER => Ok(Event::CreateTransfer(Transfer {
            id: TransferId(le128(&b[8..])),
            debit_account_id: AccountId(le128(&b[24..])),
            credit_account_id: AccountId(le128(&b[40..])),
            amount: Credits::new(le64(&b[88..]).cast_signed()),
            pending_id: match b[5] {
                0 => None,
                1 => Some(TransferId(le128(&b[56..]))),
                other => return Err(bad(format!("pending id presence is 0 or 1, found {other}"))),
            },
            timeout_ms: le64(&b[96..]),
            code: le16(&b[3..]),
            flags: TransferFlags(le16(&b[1..])),
            user_data: le128(&b[72..]),
        })),
        TAG_CLOSE => Ok(Event::CloseAccount {
            id: AccountId(le128(&b[8..])),
            linked: match b[1] {
                0 => false,
                1 => true,
                other => return Err(bad(format!("linked is 0 or 1, found {other}"))),
            },
        }),
        tag => Err(bad(format!(
            "event tag {tag} is unknown (1 account, 2 transfer, 3 close)"
        ))),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn events_round_trip_in_fixed_size() {
        let events = [
            Event::CreateAccount(Account::balance(AccountId(u128::MAX - 7)).with_code(9)),
            Event::CreateTransfer(
                Transfer::pending(TransferId(5), AccountId(1), AccountId(2), Credits::new(-3), 77)
                    .with_user_data(u128::MAX),
            ),
            Event::CreateTransfer(Transfer::post(TransferId(6), TransferId(5), Credits::new(i64::MAX))),
            Event::CloseAccount {
                id: AccountId(3),
                linked: true,
            },
        ];
        for e in events {
            let mut out = Vec::new();
            put_event(&mut out, &e);
            assert_eq!(out.len(), EVENT_LEN);
            assert_eq!(get_event(&out).unwrap(), e);
        }
        assert!(get_event(&[9u8; EVENT_LEN]).is_err());
    }
}
