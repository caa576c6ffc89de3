//! `Transfer-Encoding: chunked`, decoded incrementally as reads arrive (or a close-delimited
//! body passed on as it is).

use bytes::{Buf, BytesMut};

/// A chunked body the gateway could not have written: the connection is dropped and reopened.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ChunkError {
    #[error("chunk size is not text")]
    SizeNotText,
    #[error("bad chunk size {0:?}")]
    BadSize(String),
}

/// Decodes `Transfer-Encoding: chunked` incrementally (or passes a close-delimited body on).
pub(crate) struct ChunkedBody {
    chunked: bool,
    state: ChunkState,
}

enum ChunkState {
    Size,
    Data(usize),
    DataEnd,
    Done,
}

impl ChunkedBody {
    pub(crate) fn new(chunked: bool) -> ChunkedBody {
        ChunkedBody {
            chunked,
            state: ChunkState::Size,
        }
    }

    /// When the next chunk (not the last, empty one) is wholly in `input`: the length of its
    /// size line and of its data.
    pub(super) fn whole_chunk_ahead(&self, input: &[u8]) -> Option<(usize, usize)> {
        if !self.chunked || !matches!(self.state, ChunkState::Size) {
            return None;
        }
        let newline = memchr::memchr(b'\n', input)?;
        let line = input[..newline].strip_suffix(b"\r")?;
        let hex = line.split(|byte| *byte == b';').next()?;
        let size = usize::from_str_radix(std::str::from_utf8(hex).ok()?.trim(), 16).ok()?;
        let head = newline + 1;
        (size > 0 && input.len() >= head + size + 2).then_some((head, size))
    }

    /// Moves decoded bytes from `input` to `out`; true once the last chunk was read.
    pub(crate) fn decode(
        &mut self,
        input: &mut BytesMut,
        out: &mut BytesMut,
    ) -> Result<bool, ChunkError> {
        if !self.chunked {
            out.extend_from_slice(input);
            input.clear();
            return Ok(false);
        }
        loop {
            match self.state {
                ChunkState::Done => return Ok(true),
                ChunkState::Size => {
                    let Some(line_end) = memchr::memchr(b'\n', input)
                        .filter(|at| *at > 0)
                        .map(|at| at - 1)
                    else {
                        return Ok(false);
                    };
                    let line = std::str::from_utf8(&input[..line_end])
                        .map_err(|_| ChunkError::SizeNotText)?;
                    let hex = line.split(';').next().unwrap_or("").trim();
                    let size = usize::from_str_radix(hex, 16)
                        .map_err(|_| ChunkError::BadSize(hex.to_owned()))?;
                    input.advance(line_end + 2);
                    self.state = if size == 0 {
                        ChunkState::Done
                    } else {
                        ChunkState::Data(size)
                    };
                }
                ChunkState::Data(remaining) => {
                    if input.is_empty() {
                        return Ok(false);
                    }
                    let take = remaining.min(input.len());
                    out.extend_from_slice(&input[..take]);
                    input.advance(take);
                    self.state = if take == remaining {
                        ChunkState::DataEnd
                    } else {
                        ChunkState::Data(remaining - take)
                    };
                }
                ChunkState::DataEnd => {
                    if input.len() < 2 {
                        return Ok(false);
                    }
                    input.advance(2);
                    self.state = ChunkState::Size;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_chunked_body_split_anywhere_decodes_to_the_same_bytes() {
        let wire = b"5\r\nhello\r\nb;ext=1\r\n, SSE world\r\n0\r\n\r\n";
        for split in 0..wire.len() {
            let mut body = ChunkedBody::new(true);
            let mut out = BytesMut::new();
            let mut input = BytesMut::from(&wire[..split]);
            // The last-chunk line ends the body even before its final CRLF arrives.
            let ended_early = body.decode(&mut input, &mut out).expect("first part");
            assert_eq!(ended_early, split >= wire.len() - 2, "split at {split}");
            input.extend_from_slice(&wire[split..]);
            assert!(body.decode(&mut input, &mut out).expect("second part"));
            assert_eq!(&out[..], b"hello, SSE world", "split at {split}");
        }
        let mut input = BytesMut::from(&b"zz\r\n"[..]);
        assert!(ChunkedBody::new(true)
            .decode(&mut input, &mut BytesMut::new())
            .is_err());
    }
}
