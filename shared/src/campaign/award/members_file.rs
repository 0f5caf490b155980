//! Member lists uploaded as files: one member id a line, read a page at a time.

use crate::member::MemberId;

/// Where award lists are uploaded in the migration bucket (the member-day function may read
/// only this prefix; the migration's `imports/` prefix starts an import, this one does not).
pub const FILE_PREFIX: &str = "awards/";
/// The largest member file: two million ids of 64 characters, a few minutes of dispatch.
pub const MAX_FILE_BYTES: u64 = 128 * 1024 * 1024;

/// The member ids of one page of an uploaded file: each non-empty line, trimmed. A line that
/// is not a member id travels as an empty id, which the worker counts as an unknown member:
/// every line is targeted and accounted for, and nothing that needs escaping reaches a message.
pub fn file_ids(text: &str) -> Vec<String> {
    text.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .map(|l| if MemberId::parse(l).is_some() { l.to_string() } else { String::new() })
        .collect()
}

/// Where a page of `bytes` read at `offset` of a file of `size` bytes ends: after its last
/// newline, or at its end when it reaches the end of the file (or holds no newline at all, a
/// line too long to be an id). Answers how many bytes of the page to take.
pub fn page_end(bytes: &[u8], offset: u64, size: u64) -> usize {
    if offset + bytes.len() as u64 >= size {
        return bytes.len();
    }
    bytes.iter().rposition(|b| *b == b'\n').map_or(bytes.len(), |i| i + 1)
}
