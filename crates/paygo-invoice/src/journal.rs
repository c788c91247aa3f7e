//! The on-disk format of the file sequence store, and the decision, on open, between a torn
//! tail (cut it) and damage (refuse to open). `docs/invoice.md` explains the fault model.
//!
//! ```text
//! sequence.journal:  [slot 0][slot 1][record line][record line]...
//! slot:              magic, count, records_len, chain, store id, the last number of every
//!                    series, a copy of the last record line, checksum
//! record line:       <FNV-1a 64 of the JSON, 16 hex digits> <record JSON>\n
//! sequence.store:    the marker: "paygo-invoice sequence store v2 <store id>\n"
//! ```
//!
//! Commit `n` appends record line `n` and rewrites slot `n % 2`, then syncs the file once.
//! The slot says how many records the store had acknowledged when it was written and
//! carries a copy of the last one; the slots sit at the start of the file, so truncating the
//! journal cannot take them away, and a file too short to hold them is damage.

use std::collections::BTreeMap;

use crate::number::SEQUENCE_MAX;
use crate::storage::StorageFile;
use crate::{DocumentId, InvoiceError, SeriesName};
use serde::{Deserialize, Serialize};

/// The largest record a store accepts, in bytes (a bound on a journal line).
pub const RECORD_MAX_BYTES: usize = 1 << 20;

/// A number and the record that carries it, as a store keeps them.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct SequenceRecord {
    /// The series.
    pub series: SeriesName,
    /// The number within the series (1 is the first).
    pub sequence: u64,
    /// The id of the document that carries the number.
    pub key: DocumentId,
    /// The document, as the sealing step wrote it (the issued document's JSON).
    pub body: String,
}

/// The size of one slot: room for the largest record and the series' last numbers.
pub(crate) const SLOT_BYTES: u64 = RECORD_MAX_BYTES as u64 + (64 << 10);
/// Where the first record line starts.
pub(crate) const RECORDS_START: u64 = 2 * SLOT_BYTES;
/// The marker file: it exists once a journal was created, so a missing journal is damage.
pub(crate) const MARKER_FILE_NAME: &str = "sequence.store";
const MARKER_PREFIX: &str = "paygo-invoice sequence store v2 ";
const SLOT_MAGIC: &[u8; 8] = b"PGISLOT2";
const SLOT_FIXED: usize = 48;
/// The chain of an empty journal.
pub(crate) const CHAIN_START: u64 = 0xcbf2_9ce4_8422_2325;
const CHUNK: usize = 64 << 10;

/// FNV-1a, 64 bits: enough to tell a torn or damaged line from a whole one.
pub(crate) fn checksum(bytes: &[u8]) -> u64 {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for byte in bytes {
        hash ^= u64::from(*byte);
        hash = hash.wrapping_mul(0x0100_0000_01b3);
    }
    hash
}

/// The chain after one more record: it names every record acknowledged so far, in order.
pub(crate) fn chain(previous: u64, record_checksum: u64) -> u64 {
    let mut bytes = [0u8; 16];
    bytes[..8].copy_from_slice(&previous.to_le_bytes());
    bytes[8..].copy_from_slice(&record_checksum.to_le_bytes());
    checksum(&bytes)
}

/// A record line and its checksum.
pub(crate) fn encode_line(record: &SequenceRecord) -> Result<(Vec<u8>, u64), InvoiceError> {
    let json = serde_json::to_string(record)?;
    let sum = checksum(json.as_bytes());
    let mut line = format!("{sum:016x} ").into_bytes();
    line.extend_from_slice(json.as_bytes());
    line.push(b'\n');
    if line.len() > RECORD_MAX_BYTES {
        return Err(InvoiceError::Overflow {
            operation: "journal record size",
        });
    }
    Ok((line, sum))
}

/// A record line without its line end, if its checksum holds.
pub(crate) fn decode_line(line: &[u8]) -> Option<(SequenceRecord, u64)> {
    if line.len() < 17 || line[16] != b' ' {
        return None;
    }
    let sum = u64::from_str_radix(std::str::from_utf8(&line[..16]).ok()?, 16).ok()?;
    let json = &line[17..];
    if sum != checksum(json) {
        return None;
    }
    Some((serde_json::from_slice(json).ok()?, sum))
}

/// The next number of a series.
pub(crate) fn next_number(last: Option<&u64>) -> Result<u64, InvoiceError> {
    let next = last.copied().unwrap_or(0).checked_add(1).filter(|n| *n <= SEQUENCE_MAX);
    next.ok_or(InvoiceError::Overflow {
        operation: "sequence number",
    })
}

/// What the store had acknowledged: `count` records, `records_len` bytes of record lines,
/// their chain, and the last number of every series.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Acknowledged {
    pub(crate) count: u64,
    pub(crate) records_len: u64,
    pub(crate) chain: u64,
    pub(crate) last: BTreeMap<SeriesName, u64>,
}

impl Acknowledged {
    pub(crate) fn empty() -> Acknowledged {
        Acknowledged {
            count: 0,
            records_len: 0,
            chain: CHAIN_START,
            last: BTreeMap::new(),
        }
    }

    /// One more record (already checked to follow the last number of its series).
    pub(crate) fn push(&mut self, record: &SequenceRecord, line_len: u64, sum: u64) {
        self.count += 1;
        self.records_len += line_len;
        self.chain = chain(self.chain, sum);
        self.last.insert(record.series.clone(), record.sequence);
    }
}

/// A slot: what was acknowledged when it was written, and a copy of the last record line.
#[derive(Debug, Clone)]
pub(crate) struct Slot {
    pub(crate) acknowledged: Acknowledged,
    pub(crate) store_id: u64,
    pub(crate) last_line: Vec<u8>,
}

pub(crate) fn slot_offset(count: u64) -> u64 {
    (count % 2) * SLOT_BYTES
}

pub(crate) fn encode_slot(ack: &Acknowledged, store_id: u64, last_line: &[u8]) -> Result<Vec<u8>, InvoiceError> {
    let mut series = String::new();
    for (name, n) in &ack.last {
        series.push_str(name.as_str());
        series.push(' ');
        series.push_str(&n.to_string());
        series.push('\n');
    }
    let too_large = InvoiceError::Overflow {
        operation: "journal slot size",
    };
    let total = SLOT_FIXED + series.len() + last_line.len() + 8;
    if total as u64 > SLOT_BYTES {
        return Err(too_large);
    }
    let mut bytes = Vec::with_capacity(total);
    bytes.extend_from_slice(SLOT_MAGIC);
    bytes.extend_from_slice(&ack.count.to_le_bytes());
    bytes.extend_from_slice(&ack.records_len.to_le_bytes());
    bytes.extend_from_slice(&ack.chain.to_le_bytes());
    bytes.extend_from_slice(&store_id.to_le_bytes());
    bytes.extend_from_slice(
        &u32::try_from(series.len())
            .map_err(|_| too_large.clone())?
            .to_le_bytes(),
    );
    bytes.extend_from_slice(&u32::try_from(last_line.len()).map_err(|_| too_large)?.to_le_bytes());
    bytes.extend_from_slice(series.as_bytes());
    bytes.extend_from_slice(last_line);
    let sum = checksum(&bytes);
    bytes.extend_from_slice(&sum.to_le_bytes());
    Ok(bytes)
}

fn u64_at(bytes: &[u8], at: usize) -> u64 {
    let mut word = [0u8; 8];
    word.copy_from_slice(&bytes[at..at + 8]);
    u64::from_le_bytes(word)
}

fn u32_at(bytes: &[u8], at: usize) -> u32 {
    let mut word = [0u8; 4];
    word.copy_from_slice(&bytes[at..at + 4]);
    u32::from_le_bytes(word)
}

/// Reads slot `index` (0 or 1); `None` when it is not a whole, valid slot (never written,
/// torn, or damaged).
pub(crate) fn read_slot(file: &dyn StorageFile, index: u64) -> std::io::Result<Option<Slot>> {
    let base = index * SLOT_BYTES;
    let mut fixed = [0u8; SLOT_FIXED];
    if file.read_at(base, &mut fixed)? < SLOT_FIXED || &fixed[..8] != SLOT_MAGIC {
        return Ok(None);
    }
    let series_len = u32_at(&fixed, 40) as usize;
    let line_len = u32_at(&fixed, 44) as usize;
    let total = SLOT_FIXED + series_len + line_len + 8;
    if total as u64 > SLOT_BYTES {
        return Ok(None);
    }
    let mut bytes = vec![0u8; total];
    if file.read_at(base, &mut bytes)? < total {
        return Ok(None);
    }
    let body = total - 8;
    if checksum(&bytes[..body]) != u64_at(&bytes, body) {
        return Ok(None);
    }
    let Ok(series) = std::str::from_utf8(&bytes[SLOT_FIXED..SLOT_FIXED + series_len]) else {
        return Ok(None);
    };
    let mut last = BTreeMap::new();
    for entry in series.lines() {
        let Some((name, n)) = entry.split_once(' ') else {
            return Ok(None);
        };
        let (Ok(name), Ok(n)) = (SeriesName::new(name), n.parse::<u64>()) else {
            return Ok(None);
        };
        last.insert(name, n);
    }
    Ok(Some(Slot {
        acknowledged: Acknowledged {
            count: u64_at(&bytes, 8),
            records_len: u64_at(&bytes, 16),
            chain: u64_at(&bytes, 24),
            last,
        },
        store_id: u64_at(&bytes, 32),
        last_line: bytes[SLOT_FIXED + series_len..body].to_vec(),
    }))
}

/// The newest valid slot, if any.
pub(crate) fn newest_slot(file: &dyn StorageFile) -> std::io::Result<Option<Slot>> {
    let a = read_slot(file, 0)?;
    let b = read_slot(file, 1)?;
    Ok(match (a, b) {
        (Some(a), Some(b)) => Some(if b.acknowledged.count > a.acknowledged.count {
            b
        } else {
            a
        }),
        (a, b) => a.or(b),
    })
}

pub(crate) fn marker_text(store_id: u64) -> String {
    format!("{MARKER_PREFIX}{store_id:016x}\n")
}

/// The store id a marker names; `None` for a damaged marker.
pub(crate) fn parse_marker(bytes: &[u8]) -> Option<u64> {
    let text = std::str::from_utf8(bytes).ok()?;
    let hex = text.strip_prefix(MARKER_PREFIX)?.strip_suffix('\n')?;
    if hex.len() != 16 {
        return None;
    }
    u64::from_str_radix(hex, 16).ok()
}

/// A streaming reader of record lines: memory bounded by the longest line.
struct Lines<'a> {
    file: &'a dyn StorageFile,
    /// Where the records region starts in the file.
    base: u64,
    /// Bytes of the records region to read.
    limit: u64,
    /// Offset (in the records region) of `buf[0]`.
    at: u64,
    buf: Vec<u8>,
    /// Offset in `buf` of the next unread byte.
    start: usize,
    eof: bool,
}

enum Next {
    /// A line without its line end (a range of the buffer); the line end follows.
    Line(usize, usize),
    /// The rest does not end in a line end within the longest line: the tail starts here.
    Tail,
    /// Nothing left.
    End,
}

impl<'a> Lines<'a> {
    fn new(file: &'a dyn StorageFile, base: u64, limit: u64) -> Lines<'a> {
        Lines {
            file,
            base,
            limit,
            at: 0,
            buf: Vec::with_capacity(CHUNK),
            start: 0,
            eof: false,
        }
    }

    /// Offset (in the records region) of the next unread byte.
    fn position(&self) -> u64 {
        self.at + self.start as u64
    }

    fn fill(&mut self) -> std::io::Result<()> {
        if self.start > 0 {
            self.buf.drain(..self.start);
            self.at += self.start as u64;
            self.start = 0;
        }
        let read_from = self.at + self.buf.len() as u64;
        let want = (self.limit.saturating_sub(read_from)).min(CHUNK as u64) as usize;
        if want == 0 {
            self.eof = true;
            return Ok(());
        }
        let old = self.buf.len();
        self.buf.resize(old + want, 0);
        let got = self.file.read_at(self.base + read_from, &mut self.buf[old..])?;
        self.buf.truncate(old + got);
        if got < want {
            self.eof = true;
        }
        Ok(())
    }

    fn next(&mut self) -> std::io::Result<Next> {
        let mut searched = 0;
        loop {
            if let Some(i) = self.buf[self.start + searched..].iter().position(|b| *b == b'\n') {
                let end = self.start + searched + i;
                let line_start = self.start;
                self.start = end + 1;
                return Ok(Next::Line(line_start, end));
            }
            searched = self.buf.len() - self.start;
            if searched >= RECORD_MAX_BYTES || self.eof {
                return Ok(if searched == 0 { Next::End } else { Next::Tail });
            }
            self.fill()?;
            // `fill` moved the unread bytes to the front of the buffer.
        }
    }
}

/// What a scan of the records region found.
pub(crate) struct Scan {
    /// The valid records, in order.
    pub(crate) found: Acknowledged,
    /// The state after `target` records, if there were that many.
    pub(crate) at_target: Option<Acknowledged>,
    /// The length of the last valid record line, with its line end (0 when none).
    pub(crate) last_len: u64,
}

/// Reads the records region (`region_len` bytes from `base`) in bounded memory, checking each line's
/// checksum and that each series counts 1, 2, 3, ..., and calls `visit` for each record. It
/// stops at the first line that is not a whole valid record: the tail, from
/// `found.records_len`. A whole line with a valid checksum that breaks the numbering is
/// damage.
pub(crate) fn scan(
    file: &dyn StorageFile,
    path: &str,
    base: u64,
    region_len: u64,
    target: u64,
    visit: &mut dyn FnMut(SequenceRecord) -> Result<(), InvoiceError>,
) -> Result<Scan, InvoiceError> {
    let io = |e: std::io::Error| io_error("read", path, &e);
    let mut lines = Lines::new(file, base, region_len);
    let mut found = Acknowledged::empty();
    let mut at_target = (target == 0).then(|| found.clone());
    let mut last_len = 0;
    loop {
        let offset = lines.position();
        let line = match lines.next().map_err(io)? {
            Next::Line(start, end) => &lines.buf[start..end],
            Next::Tail | Next::End => break,
        };
        let Some((record, sum)) = decode_line(line) else {
            break;
        };
        let expected = next_number(found.last.get(&record.series))?;
        if record.sequence != expected {
            return Err(damage(
                path,
                found.count + 1,
                base + offset,
                format!(
                    "series {} number {} follows {}: expected {expected}",
                    record.series,
                    record.sequence,
                    expected - 1
                ),
            ));
        }
        let len = line.len() as u64 + 1;
        last_len = len;
        found.push(&record, len, sum);
        if found.count == target {
            at_target = Some(found.clone());
        }
        visit(record)?;
    }
    Ok(Scan {
        found,
        at_target,
        last_len,
    })
}

/// What the bytes of the records region after the valid records are.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct TailKind {
    /// They can be one torn append (an unacknowledged commit): at most one line end, and
    /// nothing but zeros beyond the longest record line (a file system may leave a
    /// zero-filled tail after a crash).
    pub(crate) torn: bool,
    /// They are all zeros (or there are none): nothing was appended.
    pub(crate) zeros: bool,
}

/// Classifies the bytes of the records region from `from` to `to`, reading in bounded
/// chunks however long they are.
pub(crate) fn torn_tail(file: &dyn StorageFile, base: u64, from: u64, to: u64) -> std::io::Result<TailKind> {
    let mut buf = vec![0u8; CHUNK];
    let mut at = from;
    let mut newlines = 0;
    let mut kind = TailKind {
        torn: true,
        zeros: true,
    };
    while at < to {
        let want = (to - at).min(CHUNK as u64) as usize;
        let got = file.read_at(base + at, &mut buf[..want])?;
        if got == 0 {
            break;
        }
        for (i, byte) in buf[..got].iter().enumerate() {
            if *byte == 0 {
                continue;
            }
            kind.zeros = false;
            if *byte == b'\n' {
                newlines += 1;
            }
            if newlines > 1 || at - from + i as u64 >= RECORD_MAX_BYTES as u64 {
                kind.torn = false;
                return Ok(kind);
            }
        }
        at += got as u64;
    }
    Ok(kind)
}

pub(crate) fn io_error(operation: &'static str, path: &str, error: &std::io::Error) -> InvoiceError {
    InvoiceError::Store {
        operation,
        path: path.to_owned(),
        message: error.to_string(),
    }
}

pub(crate) fn damage(path: &str, line: u64, offset: u64, reason: String) -> InvoiceError {
    InvoiceError::Journal {
        path: path.to_owned(),
        line: usize::try_from(line).unwrap_or(usize::MAX),
        offset,
        reason,
    }
}

/// Whether a file starts like a journal of format 1 (record lines from its first byte, no
/// header slots): sixteen hex digits and a space.
pub(crate) fn is_format_1(file: &dyn StorageFile) -> std::io::Result<bool> {
    let mut head = [0u8; 17];
    Ok(file.read_at(0, &mut head)? == 17 && head[..16].iter().all(u8::is_ascii_hexdigit) && head[16] == b' ')
}

/// Whether a file can be a journal whose creation a crash interrupted: empty, or starting
/// with a slot's magic or with zeros (a slot not yet written).
pub(crate) fn is_unfinished_creation(file: &dyn StorageFile, len: u64) -> std::io::Result<bool> {
    if len == 0 {
        return Ok(true);
    }
    let mut head = [0u8; 8];
    let n = file.read_at(0, &mut head)?;
    Ok(len <= RECORDS_START && (head[..n] == SLOT_MAGIC[..n] || head[..n].iter().all(|b| *b == 0)))
}

/// Copies `len` bytes from `from` at `from_offset` to `to` at `to_offset`, in bounded chunks.
pub(crate) fn copy_range(
    from: &dyn StorageFile,
    from_offset: u64,
    to: &dyn StorageFile,
    to_offset: u64,
    len: u64,
) -> std::io::Result<()> {
    let mut buf = vec![0u8; CHUNK];
    let mut done = 0;
    while done < len {
        let want = (len - done).min(CHUNK as u64) as usize;
        let got = from.read_at(from_offset + done, &mut buf[..want])?;
        if got == 0 {
            return Err(std::io::Error::new(
                std::io::ErrorKind::UnexpectedEof,
                "the journal ended while it was being copied",
            ));
        }
        to.write_at(to_offset + done, &buf[..got])?;
        done += got as u64;
    }
    Ok(())
}
