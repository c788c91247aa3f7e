//! The append-only JSON-lines files of the HTTP layer (the account directory, the usage
//! log): each line is synced before what it records is acknowledged, so a last line
//! without its newline was never acknowledged and is cut; any other unreadable line
//! refuses the open (damage is never skipped).

use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader};
use std::path::Path;

use serde::de::DeserializeOwned;

use crate::error::HttpError;

/// Opens (or creates) `path` for appending, after reading each complete line as a `T`
/// into `each` (which may refuse it with a reason).
pub(crate) fn open_lines<T: DeserializeOwned>(
    path: &Path,
    mut each: impl FnMut(T) -> Result<(), String>,
) -> Result<File, HttpError> {
    let storage = |what: String| HttpError::Storage {
        what: format!("{}: {what}", path.display()),
    };
    let file = OpenOptions::new()
        .create(true)
        .read(true)
        .append(true)
        .open(path)
        .map_err(|e| storage(e.to_string()))?;
    let mut reader = BufReader::new(&file);
    let mut line = String::new();
    let mut number = 0usize;
    loop {
        line.clear();
        let n = reader.read_line(&mut line).map_err(|e| storage(e.to_string()))?;
        if n == 0 {
            break;
        }
        number += 1;
        if !line.ends_with('\n') {
            // A torn last line: its write was never synced, so never acknowledged.
            let len = file.metadata().map_err(|e| storage(e.to_string()))?.len();
            file.set_len(len.saturating_sub(n as u64))
                .map_err(|e| storage(e.to_string()))?;
            break;
        }
        let value: T = serde_json::from_str(line.trim_end()).map_err(|e| storage(format!("line {number}: {e}")))?;
        each(value).map_err(|e| storage(format!("line {number}: {e}")))?;
    }
    Ok(file)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // tests fail loudly by design

    use super::*;

    fn read(path: &Path) -> Result<Vec<u32>, HttpError> {
        let mut seen = Vec::new();
        open_lines(path, |n: u32| {
            seen.push(n);
            Ok(())
        })?;
        Ok(seen)
    }

    #[test]
    fn a_torn_last_line_is_cut_and_any_other_damage_refuses_the_open() {
        let dir = std::env::temp_dir().join(format!("paygo-jsonl-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("lines.jsonl");
        std::fs::write(&path, "1\n2\n3").unwrap();
        assert_eq!(read(&path).unwrap(), vec![1, 2]);
        assert_eq!(
            std::fs::read_to_string(&path).unwrap(),
            "1\n2\n",
            "the torn line is cut"
        );
        std::fs::write(&path, "1\nnot a number\n3\n").unwrap();
        let error = read(&path).unwrap_err().to_string();
        assert!(error.contains("line 2"), "{error}");
        std::fs::write(&path, "1\n2\n").unwrap();
        let refused = open_lines(&path, |n: u32| if n == 2 { Err("two".into()) } else { Ok(()) });
        assert!(refused.is_err());
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
