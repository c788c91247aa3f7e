//! The store's `MANIFEST`: what the directory holds and how far its journal reached.
//!
//! It is rewritten (a temp file, synced, renamed, the directory synced) when the store is
//! created, at each segment roll and snapshot, when a writer opens the store and when it
//! closes it. It lists every snapshot and journal segment that must exist, with their
//! sizes, and the position (record count, byte offset in the newest segment and chain
//! hash) that the journal had reached then: recovery refuses a journal that ends before
//! it. Text, so that `cat MANIFEST` answers an operator's first question; a CRC32C over
//! the text before its last line detects damage.

use std::fmt::Write as _;
use std::path::Path;

use super::checksum::{HASH_LEN, crc32c};
use crate::LedgerError;

/// The size of a segment's header: magic, first seq, previous hash, size, crc, reserved.
pub(crate) const SEGMENT_HEADER: u64 = 64;

/// The file's name in the store's directory.
pub(crate) const MANIFEST: &str = "MANIFEST";
/// The format this version reads and writes (format 1 had a `BLAKE2b` chain and was never
/// released; format 2 had no manifest positions and no preallocated segments; format 3 had
/// no idempotency window in the ledger's state; format 4 had no payment reversals, arrears
/// or receivables account, and no auto top-up monthly cap, switch-off or buyer references
/// in the billing state).
pub(crate) const FORMAT: u32 = 5;
const TITLE: &str = "paygo-ledger durable store";

/// Where the journal had reached when the manifest was written.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Reach {
    /// Records written since the store was created.
    pub(crate) records: u64,
    /// The byte offset after the last of them in the newest segment.
    pub(crate) offset: u64,
    /// The hash of the last of them (the head of the chain).
    pub(crate) hash: [u8; HASH_LEN],
}

/// A journal segment: `journal-<index>.log`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Segment {
    /// Its number, in the order segments were made (its file's name).
    pub(crate) index: u64,
    /// The seq of its first record.
    pub(crate) first: u64,
    /// Its size in bytes: allocated when it was made, so that a shorter file is damage.
    pub(crate) bytes: u64,
}

/// The parsed manifest.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Manifest {
    pub(crate) kind: String,
    /// Incremented at each rewrite: a reader that sees it change knows a writer moved on.
    pub(crate) generation: u64,
    /// The snapshots kept: the records each covers and its size in bytes, ascending.
    pub(crate) snapshots: Vec<(u64, u64)>,
    /// The journal segments, oldest first; the last one is the one being appended to.
    pub(crate) segments: Vec<Segment>,
    /// The position the journal had reached (in the last segment).
    pub(crate) reach: Reach,
    /// Whether the writer closed the store cleanly at `reach`: the journal ends exactly there.
    pub(crate) closed: bool,
}

fn hex(hash: &[u8; HASH_LEN]) -> String {
    hash.iter().fold(String::with_capacity(2 * HASH_LEN), |mut s, b| {
        let _ = write!(s, "{b:02x}");
        s
    })
}

fn unhex(text: &str) -> Option<[u8; HASH_LEN]> {
    if text.len() != 2 * HASH_LEN || !text.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)) {
        return None;
    }
    let mut out = [0u8; HASH_LEN];
    for (i, byte) in out.iter_mut().enumerate() {
        *byte = u8::from_str_radix(text.get(2 * i..2 * i + 2)?, 16).ok()?;
    }
    Some(out)
}

impl Manifest {
    /// A new, empty store: no snapshot and no segment yet.
    pub(crate) fn new(kind: &str) -> Manifest {
        Manifest {
            kind: kind.to_owned(),
            ..Manifest::default()
        }
    }

    /// Whether the store holds nothing yet: its first snapshot and segment are listed
    /// before any record is written, so nothing was ever acknowledged.
    pub(crate) fn is_new(&self) -> bool {
        self.snapshots.is_empty() && self.segments.is_empty()
    }

    /// The text, its checksum on the last line.
    pub(crate) fn render(&self) -> String {
        let mut t = format!(
            "{TITLE}\nformat: {FORMAT}\nkind: {}\ngeneration: {}\n",
            self.kind, self.generation
        );
        for (seq, bytes) in &self.snapshots {
            let _ = writeln!(t, "snapshot: {seq} {bytes}");
        }
        for g in &self.segments {
            let _ = writeln!(t, "segment: {} {} {}", g.index, g.first, g.bytes);
        }
        let r = &self.reach;
        let _ = writeln!(t, "reach: {} {} {}", r.records, r.offset, hex(&r.hash));
        let _ = writeln!(t, "closed: {}", if self.closed { "yes" } else { "no" });
        let crc = crc32c(t.as_bytes());
        let _ = writeln!(t, "crc32c: {crc:08x}");
        t
    }

    /// Reads a manifest of a `kind` store (of any kind if `None`).
    ///
    /// # Errors
    ///
    /// [`LedgerError::Foreign`] for a file that is not a paygo manifest, or one of another
    /// format or kind; [`LedgerError::Corrupt`] for a damaged one.
    #[allow(clippy::too_many_lines)] // one check per line of the file, in its order
    pub(crate) fn parse(text: &str, path: &Path, dir: &Path, kind: Option<&str>) -> Result<Manifest, LedgerError> {
        let foreign = |why: String| LedgerError::Foreign {
            dir: dir.display().to_string(),
            why,
        };
        let bad = |what: String| LedgerError::Corrupt {
            file: path.display().to_string(),
            offset: 0,
            what,
        };
        // The checksum covers everything before its own line; checked first, so that a
        // damaged manifest is corruption, not a foreign file.
        let checksum_at = text.rfind("crc32c: ");
        if let Some(at) = checksum_at {
            // Exactly as written (8 lowercase hex digits), so that no change goes unseen.
            let stored = text[at..]
                .strip_prefix("crc32c: ")
                .and_then(|s| s.strip_suffix('\n'))
                .filter(|s| s.len() == 8 && s.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)))
                .and_then(|s| u32::from_str_radix(s, 16).ok());
            if stored != Some(crc32c(&text.as_bytes()[..at])) {
                return Err(bad("its checksum does not match".into()));
            }
        }
        let mut lines = text.lines();
        if lines.next() != Some(TITLE) {
            return Err(foreign(format!("its {MANIFEST} is not that of a paygo ledger store")));
        }
        match text.lines().find_map(|l| l.strip_prefix("format: ")) {
            Some(f) if f == FORMAT.to_string() => {}
            // Formats before 3 had no checksum line.
            Some(f) if checksum_at.is_none() => {
                return Err(foreign(format!(
                    "it is a format {f} store, and this version reads and writes format {FORMAT} only \
                     (it refuses older formats rather than read them wrongly)"
                )));
            }
            _ => return Err(bad("it names no format this version knows".into())),
        }
        if checksum_at.is_none() {
            return Err(bad("the checksum line is missing".into()));
        }
        let mut m = Manifest::default();
        let expect = |name: &str, line: Option<&str>| -> Result<String, LedgerError> {
            line.and_then(|l| l.strip_prefix(name))
                .and_then(|l| l.strip_prefix(": "))
                .map(str::to_owned)
                .ok_or_else(|| bad(format!("a {name:?} line was expected")))
        };
        let _format = expect("format", lines.next())?;
        m.kind = expect("kind", lines.next())?;
        if let Some(kind) = kind
            && m.kind != kind
        {
            return Err(foreign(format!(
                "it holds a {} store, a {kind} store was expected",
                m.kind
            )));
        }
        let number = |s: &str| s.parse::<u64>().map_err(|_| bad(format!("{s:?} is not a number")));
        m.generation = number(&expect("generation", lines.next())?)?;
        let mut line = lines.next();
        while let Some(rest) = line.and_then(|l| l.strip_prefix("snapshot: ")) {
            let (seq, bytes) = rest.split_once(' ').ok_or_else(|| bad(format!("snapshot {rest:?}")))?;
            m.snapshots.push((number(seq)?, number(bytes)?));
            line = lines.next();
        }
        while let Some(rest) = line.and_then(|l| l.strip_prefix("segment: ")) {
            let parts: Vec<&str> = rest.split(' ').collect();
            let [index, first, bytes] = parts[..] else {
                return Err(bad(format!("segment {rest:?}")));
            };
            m.segments.push(Segment {
                index: number(index)?,
                first: number(first)?,
                bytes: number(bytes)?,
            });
            line = lines.next();
        }
        let reach = expect("reach", line)?;
        let parts: Vec<&str> = reach.split(' ').collect();
        let [records, offset, hash] = parts[..] else {
            return Err(bad(format!("reach {reach:?}")));
        };
        m.reach = Reach {
            records: number(records)?,
            offset: number(offset)?,
            hash: unhex(hash).ok_or_else(|| bad(format!("hash {hash:?}")))?,
        };
        m.closed = match expect("closed", lines.next())?.as_str() {
            "yes" => true,
            "no" => false,
            other => return Err(bad(format!("closed {other:?}"))),
        };
        let ascending = m.snapshots.windows(2).all(|w| w[0].0 < w[1].0)
            && m.segments
                .windows(2)
                .all(|w| w[0].index < w[1].index && w[0].first < w[1].first);
        if !ascending {
            return Err(bad("its snapshots or segments are not in order".into()));
        }
        if m.snapshots.is_empty() != m.segments.is_empty() {
            return Err(bad(
                "it lists snapshots without segments or segments without snapshots".into()
            ));
        }
        if let Some(last) = m.segments.last()
            && m.reach.records < last.first
        {
            return Err(bad("its position is before its newest segment".into()));
        }
        // Sizes are trusted only once they fit what a writer makes: a segment holds at
        // least its header, and the journal's position lies within the newest segment
        // (recovery sizes its work from them).
        if let Some(g) = m.segments.iter().find(|g| g.bytes < SEGMENT_HEADER) {
            return Err(bad(format!(
                "segment {} is listed with {} bytes, less than a segment header",
                g.index, g.bytes
            )));
        }
        if let Some(last) = m.segments.last()
            && (m.reach.offset < SEGMENT_HEADER || m.reach.offset > last.bytes)
        {
            return Err(bad(format!(
                "its position, byte {}, is outside its newest segment of {} bytes",
                m.reach.offset, last.bytes
            )));
        }
        if let Some((seq, bytes)) = m.snapshots.iter().find(|s| s.1 < 64) {
            return Err(bad(format!(
                "snapshot {seq} is listed with {bytes} bytes, less than a snapshot header"
            )));
        }
        Ok(m)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn sample() -> Manifest {
        Manifest {
            kind: "ledger".into(),
            generation: 9,
            snapshots: vec![(0, 100), (20, 300)],
            segments: vec![
                Segment {
                    index: 0,
                    first: 0,
                    bytes: 4096,
                },
                Segment {
                    index: 3,
                    first: 20,
                    bytes: 8192,
                },
            ],
            reach: Reach {
                records: 25,
                offset: 999,
                hash: [7u8; 32],
            },
            closed: true,
        }
    }

    #[test]
    fn sizes_a_writer_cannot_make_are_refused_even_with_a_valid_checksum() {
        // Found by fuzzing (docs/fuzzing.md, L2 and L3): recovery sized its work from
        // these, and overflowed or tried to allocate 2^62 bytes.
        let (p, d) = (Path::new("/x/MANIFEST"), Path::new("/x"));
        let mut far = sample();
        far.reach.offset = 1 << 62;
        let mut short = sample();
        short.segments[0].bytes = 10;
        let mut before = sample();
        before.reach.offset = 10;
        let mut tiny_snapshot = sample();
        tiny_snapshot.snapshots[0].1 = 3;
        for m in [far, short, before, tiny_snapshot] {
            let err = Manifest::parse(&m.render(), p, d, Some("ledger")).unwrap_err();
            assert!(matches!(err, LedgerError::Corrupt { .. }), "{err}");
        }
    }

    #[test]
    fn a_manifest_round_trips_and_damage_is_detected() {
        let (p, d) = (Path::new("/x/MANIFEST"), Path::new("/x"));
        let m = sample();
        let text = m.render();
        assert_eq!(Manifest::parse(&text, p, d, Some("ledger")).unwrap(), m);
        assert!(matches!(
            Manifest::parse(&text, p, d, Some("billing")),
            Err(LedgerError::Foreign { .. })
        ));
        // Any changed character is caught by the checksum (or the grammar).
        for at in 0..text.len() {
            let mut bytes = text.clone().into_bytes();
            bytes[at] = if bytes[at] == b'1' { b'2' } else { b'1' };
            let Ok(changed) = String::from_utf8(bytes) else {
                continue;
            };
            assert!(
                Manifest::parse(&changed, p, d, Some("ledger")).is_err(),
                "change at {at}"
            );
        }
        let old = "paygo-ledger durable store\nformat: 2\nkind: ledger\n";
        let refused = Manifest::parse(old, p, d, Some("ledger"));
        assert!(
            matches!(&refused, Err(LedgerError::Foreign { why, .. }) if why.contains("format 2")),
            "{refused:?}"
        );
    }
}
