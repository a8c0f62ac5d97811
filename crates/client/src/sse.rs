//! A Server-Sent Events parser for the change stream: bytes in (in whatever chunks the network
//! gives), complete events out.
//!
//! Written here rather than taken from a crate because it is the one format this client reads
//! and the subset Rulebook sends is small: `event:`, `id:` and `data:` fields, comment lines, and
//! a blank line ending each event (the WHATWG rules for those, including `\r\n` line ends,
//! multi-line `data` joined with `\n` and one optional space after the colon). `retry:` and
//! unknown fields are ignored.

/// One event.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SseEvent {
    /// `event:` (`message` when none was sent).
    pub event: String,
    /// `id:`, when sent.
    pub id: Option<String>,
    /// `data:` lines joined with `\n`.
    pub data: String,
}

/// Turns a byte stream into events. Holds at most one unfinished line and one unfinished event;
/// a line longer than `max_line` bytes is an error, so a broken peer cannot grow it without
/// bound.
#[derive(Debug)]
pub struct SseParser {
    line: Vec<u8>,
    current: SseEvent,
    has_data: bool,
    max_line: usize,
}

/// The stream sent a line longer than the parser's limit.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("an event stream line is longer than {0} bytes")]
pub struct LineTooLong(pub usize);

impl SseParser {
    /// A parser accepting lines up to `max_line` bytes.
    pub fn new(max_line: usize) -> SseParser {
        SseParser {
            line: Vec::new(),
            current: SseEvent::default(),
            has_data: false,
            max_line,
        }
    }

    /// Feeds `bytes`; returns the events they complete, in order.
    pub fn feed(&mut self, bytes: &[u8]) -> Result<Vec<SseEvent>, LineTooLong> {
        let mut events = Vec::new();
        for &byte in bytes {
            if byte == b'\n' {
                if self.line.last() == Some(&b'\r') {
                    self.line.pop();
                }
                let line = std::mem::take(&mut self.line);
                if let Some(event) = self.line_done(&line) {
                    events.push(event);
                }
            } else {
                if self.line.len() >= self.max_line {
                    return Err(LineTooLong(self.max_line));
                }
                self.line.push(byte);
            }
        }
        Ok(events)
    }

    fn line_done(&mut self, line: &[u8]) -> Option<SseEvent> {
        if line.is_empty() {
            let event = std::mem::take(&mut self.current);
            let had = std::mem::replace(&mut self.has_data, false);
            if !had {
                return None;
            }
            return Some(SseEvent {
                event: if event.event.is_empty() {
                    "message".to_owned()
                } else {
                    event.event
                },
                ..event
            });
        }
        if line[0] == b':' {
            return None;
        }
        let text = String::from_utf8_lossy(line);
        let (field, value) = match text.split_once(':') {
            Some((field, value)) => (field, value.strip_prefix(' ').unwrap_or(value)),
            None => (&*text, ""),
        };
        match field {
            "event" => self.current.event = value.to_owned(),
            "id" => self.current.id = Some(value.to_owned()),
            "data" => {
                if self.has_data {
                    self.current.data.push('\n');
                }
                self.current.data.push_str(value);
                self.has_data = true;
            }
            _ => {}
        }
        None
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn events_come_out_whole_however_the_bytes_are_cut() {
        let text = b": hello\r\nevent: change\nid: 7\ndata: {\"a\":\ndata:1}\n\nevent: heartbeat\nid: 9\ndata: {}\n\n";
        for cut in 1..text.len() {
            let mut parser = SseParser::new(1024);
            let mut events = parser.feed(&text[..cut]).unwrap();
            events.extend(parser.feed(&text[cut..]).unwrap());
            assert_eq!(
                events,
                vec![
                    SseEvent {
                        event: "change".into(),
                        id: Some("7".into()),
                        data: "{\"a\":\n1}".into()
                    },
                    SseEvent {
                        event: "heartbeat".into(),
                        id: Some("9".into()),
                        data: "{}".into()
                    },
                ],
                "cut at {cut}"
            );
        }
    }

    #[test]
    fn a_line_over_the_limit_is_an_error_not_a_growing_buffer() {
        let mut parser = SseParser::new(8);
        assert_eq!(parser.feed(b"data: 0123456789"), Err(LineTooLong(8)));
    }

    #[test]
    fn an_event_without_data_is_not_dispatched() {
        let mut parser = SseParser::new(64);
        assert!(parser.feed(b"event: x\nid: 3\n\n").unwrap().is_empty());
    }
}
