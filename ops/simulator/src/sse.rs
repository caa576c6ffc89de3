//! Reading a Server-Sent Events stream record by record (a record ends with a blank line).

/// One record: the fields of the SSE wire format the gateway uses.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SseRecord {
    pub id: Option<String>,
    pub event: Option<String>,
    pub data: String,
    pub retry: Option<u64>,
}

/// Accumulates bytes and hands out complete records.
///
/// Records are read in place and the consumed prefix is dropped only on the next `push`, so a
/// chunk holding hundreds of records (a load test's fan-out) costs one pass, not one shift of
/// the buffer per record.
#[derive(Debug, Default)]
pub struct SseParser {
    buffer: Vec<u8>,
    /// Where the next record starts.
    start: usize,
    /// Bytes before this index hold no record end (so a partial record is not searched twice).
    scanned: usize,
}

impl SseParser {
    pub fn new() -> SseParser {
        SseParser::default()
    }

    pub fn push(&mut self, bytes: &[u8]) {
        if self.start > 0 {
            self.buffer.drain(..self.start);
            self.scanned -= self.start;
            self.start = 0;
        }
        self.buffer.extend_from_slice(bytes);
    }

    /// The next complete record, if the buffer holds one.
    pub fn next_record(&mut self) -> Option<SseRecord> {
        // A record end may straddle the previous scan's last byte.
        let from = self.scanned.saturating_sub(1).max(self.start);
        match self.buffer[from..].windows(2).position(|w| w == b"\n\n") {
            Some(offset) => {
                let end = from + offset + 2;
                let record = parse(&self.buffer[self.start..end]);
                self.start = end;
                self.scanned = end;
                Some(record)
            }
            None => {
                self.scanned = self.buffer.len();
                None
            }
        }
    }
}

fn parse(record: &[u8]) -> SseRecord {
    let text = String::from_utf8_lossy(record);
    let mut out = SseRecord::default();
    for line in text.lines() {
        let (field, value) = line.split_once(':').unwrap_or((line, ""));
        let value = value.strip_prefix(' ').unwrap_or(value);
        match field {
            "id" => out.id = Some(value.to_owned()),
            "event" => out.event = Some(value.to_owned()),
            "data" => {
                if !out.data.is_empty() {
                    out.data.push('\n');
                }
                out.data.push_str(value);
            }
            "retry" => out.retry = value.parse().ok(),
            _ => {}
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_split_across_chunks() {
        let mut parser = SseParser::new();
        parser.push(b"retry: 3000\n\nid: 1-2\nevent: ORDER_RECEIVED\nda");
        assert_eq!(parser.next_record().map(|r| r.retry), Some(Some(3000)));
        assert!(parser.next_record().is_none());
        parser.push(b"ta: {\"seq\":2}\n\n");
        let record = parser.next_record().expect("record");
        assert_eq!(record.id.as_deref(), Some("1-2"));
        assert_eq!(record.event.as_deref(), Some("ORDER_RECEIVED"));
        assert_eq!(record.data, "{\"seq\":2}");
    }
}
