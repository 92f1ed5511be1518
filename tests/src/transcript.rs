//! A child's stdout as it arrives, shared between the thread that reads it
//! and one that waits for text in it (a conversation, converse.rs).
//!
//! Text is matched on bytes as they come, not on whole lines: a shell's
//! prompt does not end in a newline. A search starts at a cursor the
//! waiter keeps, so a text already matched once is not matched again.

use std::ops::Range;
use std::sync::{Condvar, Mutex, MutexGuard};
use std::time::Instant;

/// The bytes read so far, and whether the pipe has ended.
#[derive(Default)]
pub struct Transcript {
    seen: Mutex<Seen>,
    grew: Condvar,
}

#[derive(Default)]
struct Seen {
    bytes: Vec<u8>,
    closed: bool,
}

/// How a [`Transcript::wait_for`] ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Wait {
    /// The text is at this range of the transcript.
    Found(Range<usize>),
    /// The pipe ended (the child exited) without it.
    Ended,
    /// The time was up.
    TimedOut,
}

impl Transcript {
    /// An empty, open transcript.
    pub fn new() -> Self {
        Self::default()
    }

    fn seen(&self) -> MutexGuard<'_, Seen> {
        // Pushing bytes cannot panic half-way, so a poisoned lock still
        // guards a consistent transcript.
        self.seen.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Appends bytes read from the pipe and wakes the waiters.
    pub fn push(&self, bytes: &[u8]) {
        self.seen().bytes.extend_from_slice(bytes);
        self.grew.notify_all();
    }

    /// Marks the end of the pipe: waiters stop waiting.
    pub fn close(&self) {
        self.seen().closed = true;
        self.grew.notify_all();
    }

    /// Whether the pipe has ended.
    pub fn closed(&self) -> bool {
        self.seen().closed
    }

    /// How many bytes have come.
    pub fn len(&self) -> usize {
        self.seen().bytes.len()
    }

    /// Waits until `needle` occurs at or after byte `from`, the pipe ends,
    /// or `until` passes. Bytes that are already there count, so a text
    /// that came before the wait began is found at once.
    pub fn wait_for(&self, needle: &[u8], from: usize, until: Instant) -> Wait {
        let mut seen = self.seen();
        // Where the next search may start: a match must end in bytes not
        // searched yet, so only the last `needle.len() - 1` searched bytes
        // are looked at again.
        let mut start = from;
        loop {
            if let Some(at) = find(&seen.bytes, needle, start) {
                return Wait::Found(at..at + needle.len());
            }
            start = start.max(seen.bytes.len().saturating_sub(needle.len().saturating_sub(1)));
            if seen.closed {
                return Wait::Ended;
            }
            let now = Instant::now();
            if now >= until {
                return Wait::TimedOut;
            }
            seen = self.grew.wait_timeout(seen, until - now).unwrap_or_else(|e| e.into_inner()).0;
        }
    }

    /// The transcript's bytes in `range` (clamped to what has come),
    /// decoded lossily: firmware may write bytes that are not UTF-8.
    pub fn text(&self, range: Range<usize>) -> String {
        let seen = self.seen();
        let end = range.end.min(seen.bytes.len());
        String::from_utf8_lossy(&seen.bytes[range.start.min(end)..end]).into_owned()
    }

    /// Everything that came, taken out.
    pub fn take(&self) -> Vec<u8> {
        std::mem::take(&mut self.seen().bytes)
    }
}

/// Where `needle` first occurs in `haystack` at or after `from`. An empty
/// needle occurs at `from` (if `from` is within the haystack).
pub fn find(haystack: &[u8], needle: &[u8], from: usize) -> Option<usize> {
    let rest = haystack.get(from..)?;
    if needle.is_empty() {
        return Some(from);
    }
    rest.windows(needle.len()).position(|w| w == needle).map(|i| from + i)
}

/// Watches a pipe's lines for a pattern, fed the bytes in whatever pieces
/// they come: [`crate::Boot::run_until`]'s "a line contains the pattern".
pub struct LineWatch {
    pattern: Option<Vec<u8>>,
    line: Vec<u8>,
}

impl LineWatch {
    /// Watches for `pattern`; with None, never reports anything.
    pub fn new(pattern: Option<&str>) -> Self {
        Self { pattern: pattern.map(|p| p.as_bytes().to_vec()), line: Vec::new() }
    }

    /// Takes the next bytes; true the first time a line completed by them
    /// contains the pattern.
    pub fn feed(&mut self, bytes: &[u8]) -> bool {
        let mut found = false;
        for piece in bytes.split_inclusive(|&b| b == b'\n') {
            if self.pattern.is_none() {
                break;
            }
            self.line.extend_from_slice(piece);
            if piece.ends_with(b"\n") {
                found |= self.end_line();
            }
        }
        found
    }

    /// The pipe ended: true if its last, unterminated line has the pattern.
    pub fn finish(&mut self) -> bool {
        self.end_line()
    }

    fn end_line(&mut self) -> bool {
        let line = std::mem::take(&mut self.line);
        let found = self.pattern.as_ref().is_some_and(|p| find(&line, p, 0).is_some());
        if found {
            self.pattern = None;
        }
        found
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use std::thread;
    use std::time::Duration;

    #[test]
    fn find_respects_the_cursor() {
        assert_eq!(find(b"ferrite> ps\r\nferrite> ", b"ferrite> ", 0), Some(0));
        assert_eq!(find(b"ferrite> ps\r\nferrite> ", b"ferrite> ", 1), Some(13));
        assert_eq!(find(b"ferrite> ", b"ferrite> ", 1), None);
        assert_eq!(find(b"abc", b"", 3), Some(3));
        assert_eq!(find(b"abc", b"c", 4), None);
        assert_eq!(find(b"ab", b"abc", 0), None);
    }

    #[test]
    fn text_split_across_pieces_is_found() {
        let transcript = Arc::new(Transcript::new());
        let writer = transcript.clone();
        let pieces = thread::spawn(move || {
            for piece in [&b"[4] ferr"[..], b"ite", b"> "] {
                thread::sleep(Duration::from_millis(20));
                writer.push(piece);
            }
        });
        let until = Instant::now() + Duration::from_secs(20);
        assert_eq!(transcript.wait_for(b"ferrite> ", 0, until), Wait::Found(4..13));
        pieces.join().unwrap();
        assert_eq!(transcript.text(4..13), "ferrite> ");
        assert_eq!(transcript.text(11..99), "> ");
    }

    #[test]
    fn a_match_is_not_found_twice() {
        let transcript = Transcript::new();
        transcript.push(b"ferrite> help\r\n");
        let soon = Instant::now() + Duration::from_millis(50);
        assert_eq!(transcript.wait_for(b"ferrite> ", 9, soon), Wait::TimedOut);
        transcript.push(b"ferrite> ");
        assert_eq!(transcript.wait_for(b"ferrite> ", 9, soon), Wait::Found(15..24));
    }

    #[test]
    fn the_end_of_the_pipe_stops_the_wait() {
        let transcript = Arc::new(Transcript::new());
        transcript.push(b"PANIC on cpu0\n");
        let closer = transcript.clone();
        let close = thread::spawn(move || {
            thread::sleep(Duration::from_millis(50));
            closer.close();
        });
        let started = Instant::now();
        assert_eq!(transcript.wait_for(b"ferrite> ", 0, started + Duration::from_secs(60)), Wait::Ended);
        assert!(started.elapsed() < Duration::from_secs(30));
        close.join().unwrap();
        // What came before the end is still found.
        assert_eq!(transcript.wait_for(b"PANIC", 0, Instant::now()), Wait::Found(0..5));
        assert!(transcript.closed());
        assert_eq!(transcript.take().len(), 14);
    }

    #[test]
    fn lines_are_watched_across_pieces() {
        let mut watch = LineWatch::new(Some("boot: done"));
        assert!(!watch.feed(b"x boot: do"));
        assert!(!watch.feed(b"ne y"), "the line is not complete yet");
        assert!(watch.feed(b"\nmore\n"));
        assert!(!watch.feed(b"boot: done again\n"), "reported once");
        // The last line without its newline counts when the pipe ends.
        let mut watch = LineWatch::new(Some("ferrite> "));
        assert!(!watch.feed(b"sh\nferrite> "));
        assert!(watch.finish());
        assert!(!LineWatch::new(None).feed(b"anything\n"));
        // A pattern cannot match across a line end.
        let mut watch = LineWatch::new(Some("a\nb"));
        assert!(!watch.feed(b"a\nb\n") && !watch.finish());
    }
}
