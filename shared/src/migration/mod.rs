//! Migration: bringing members of another program in from a file (JSON Lines or CSV with the
//! same columns), one line per member. Pure: a line is parsed and validated against the rules
//! and today's date into the member it describes and the points lots its ledger records, or
//! into a reject with a stable code. The store writes the member (`store::migration`), the
//! `migration` function reads the file and counts.

mod csv;
mod decide;
pub mod export;
mod line;
#[cfg(test)]
mod tests;
mod validate;

pub use csv::{parse_csv_line, parse_header, CsvError, COLUMNS};
pub use decide::{apply_line, decide, Decision};
pub use line::*;

use serde::{Deserialize, Serialize};

/// Lines per chunk message: one chunk is one `GetObject` of a byte range and a few hundred
/// member transactions, well inside the worker's timeout, and its rejects fit in one item.
pub const CHUNK_LINES: u64 = 250;

/// Longest line accepted. A member with 50 lots and every field at its longest is under 4 KiB.
pub const MAX_LINE_BYTES: usize = 16 * 1024;

/// Most lots a line may carry: a member's transaction holds the member, its contacts, its
/// referral code and one ledger entry per lot, and DynamoDB takes at most 100 items.
pub const MAX_LOTS: usize = 50;

/// The file's format, by its key's extension.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Format {
    Jsonl,
    Csv,
}

impl Format {
    pub fn of_key(key: &str) -> Option<Format> {
        let lower = key.to_ascii_lowercase();
        if lower.ends_with(".jsonl") || lower.ends_with(".ndjson") {
            Some(Format::Jsonl)
        } else if lower.ends_with(".csv") {
            Some(Format::Csv)
        } else {
            None
        }
    }
}

/// Where the rejects of an import are written: next to the input.
pub fn rejects_key(input_key: &str) -> String {
    format!("{input_key}{REJECTS_SUFFIX}")
}

/// The import ignores objects with this suffix (its own rejects files land in the same prefix).
pub const REJECTS_SUFFIX: &str = ".rejects.jsonl";

/// One line the import did not apply.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Reject {
    pub line: u64,
    pub code: RejectCode,
    pub message: String,
}

/// A chunk's counts. `lines` = `imported` + `updated` + `unchanged` + `rejected`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Counts {
    pub lines: u64,
    pub imported: u64,
    pub updated: u64,
    pub unchanged: u64,
    pub rejected: u64,
}

impl Counts {
    pub fn add(&mut self, outcome: &Outcome) {
        self.lines += 1;
        match outcome {
            Outcome::Imported => self.imported += 1,
            Outcome::Updated => self.updated += 1,
            Outcome::Unchanged => self.unchanged += 1,
            Outcome::Rejected(..) => self.rejected += 1,
        }
    }
}

/// What became of one line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    Imported,
    Updated,
    Unchanged,
    Rejected(RejectCode, String),
}

/// One physical line of a chunk, with its 1-based number in the file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RawLine<'a> {
    pub number: u64,
    pub text: &'a [u8],
}

/// Splits a chunk's bytes into lines numbered from `first_line`; blank lines are numbered but
/// left out (a trailing newline makes no line).
pub fn split_lines(bytes: &[u8], first_line: u64) -> Vec<RawLine<'_>> {
    let mut out = Vec::new();
    let mut number = first_line;
    let mut rest = bytes;
    while !rest.is_empty() {
        let (line, next) = match rest.iter().position(|b| *b == b'\n') {
            Some(i) => (&rest[..i], &rest[i + 1..]),
            None => (rest, &rest[rest.len()..]),
        };
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        if !line.iter().all(u8::is_ascii_whitespace) {
            out.push(RawLine { number, text: line });
        }
        number += 1;
        rest = next;
    }
    out
}

/// A file's chunks: byte ranges of at most `CHUNK_LINES` lines each, cut at line ends, from
/// the byte offsets of its newlines. `skip` leading lines (a CSV header) belong to no chunk.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ChunkRange {
    pub index: u32,
    pub first_line: u64,
    /// Byte offsets, `end` exclusive.
    pub start: u64,
    pub end: u64,
}

/// Cuts `bytes` into chunks of `per_chunk` lines. Answers the chunks and the number of
/// non-blank lines they hold.
pub fn plan_chunks(bytes: &[u8], skip: u64, per_chunk: u64) -> (Vec<ChunkRange>, u64) {
    let mut chunks = Vec::new();
    let mut line = 1u64;
    let mut offset = 0usize;
    let mut start = None::<(usize, u64)>;
    let mut in_chunk = 0u64;
    let mut counted = 0u64;
    while offset < bytes.len() {
        let end = bytes[offset..]
            .iter()
            .position(|b| *b == b'\n')
            .map_or(bytes.len(), |i| offset + i + 1);
        if line > skip {
            if start.is_none() {
                start = Some((offset, line));
            }
            in_chunk += 1;
            if !bytes[offset..end].iter().all(u8::is_ascii_whitespace) {
                counted += 1;
            }
            if in_chunk == per_chunk {
                let (s, first) = start.take().unwrap_or((offset, line));
                chunks.push(ChunkRange {
                    index: chunks.len() as u32,
                    first_line: first,
                    start: s as u64,
                    end: end as u64,
                });
                in_chunk = 0;
            }
        }
        offset = end;
        line += 1;
    }
    if let Some((s, first)) = start {
        chunks.push(ChunkRange {
            index: chunks.len() as u32,
            first_line: first,
            start: s as u64,
            end: bytes.len() as u64,
        });
    }
    (chunks, counted)
}
