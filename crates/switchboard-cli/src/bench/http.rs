//! A minimal HTTP/1.1 client for the SSE and poll clients: one keep-alive connection per
//! client, requests written by hand, responses parsed incrementally (headers, content-length
//! or chunked bodies, SSE lines). Hand-rolled so each client costs a few KiB and every byte on
//! the socket is counted.

use std::io;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite};

use super::scan::find;

/// Largest response head accepted.
const MAX_HEAD: usize = 64 * 1024;

/// A parsed response head.
#[derive(Debug, Clone, Copy)]
pub struct Head {
    /// Status code.
    pub status: u16,
    /// `Transfer-Encoding: chunked`.
    pub chunked: bool,
    /// `Content-Length`.
    pub content_length: Option<usize>,
    /// `Connection: close`.
    pub close: bool,
}

fn parse_head(raw: &[u8]) -> io::Result<Head> {
    let bad = || io::Error::new(io::ErrorKind::InvalidData, "malformed HTTP response head");
    let text = std::str::from_utf8(raw).map_err(|_| bad())?;
    let mut lines = text.split("\r\n");
    let status_line = lines.next().ok_or_else(bad)?;
    let mut parts = status_line.split(' ');
    if !parts.next().unwrap_or("").starts_with("HTTP/1.") {
        return Err(bad());
    }
    let status = parts.next().and_then(|s| s.parse().ok()).ok_or_else(bad)?;
    let mut head = Head {
        status,
        chunked: false,
        content_length: None,
        close: false,
    };
    for line in lines {
        let Some((k, v)) = line.split_once(':') else {
            continue;
        };
        let v = v.trim();
        if k.eq_ignore_ascii_case("content-length") {
            head.content_length = v.parse().ok();
        } else if k.eq_ignore_ascii_case("transfer-encoding") {
            head.chunked = v.to_ascii_lowercase().contains("chunked");
        } else if k.eq_ignore_ascii_case("connection") {
            head.close = v.eq_ignore_ascii_case("close");
        }
    }
    Ok(head)
}

/// Incremental decoder of a chunked body.
#[derive(Debug, Default)]
pub struct Chunked {
    state: ChunkState,
    size: usize,
}

#[derive(Debug, Default)]
enum ChunkState {
    #[default]
    Size,
    SizeExt,
    SizeLf,
    Data(usize),
    DataCr,
    DataLf,
    Trailer,
    Done,
}

impl Chunked {
    /// Feeds raw bytes; calls `out` with decoded body bytes. Returns how many input bytes were
    /// consumed and whether the body ended.
    pub fn feed(&mut self, input: &[u8], out: &mut impl FnMut(&[u8])) -> io::Result<(usize, bool)> {
        let bad = || io::Error::new(io::ErrorKind::InvalidData, "malformed chunked body");
        let size = &mut self.size;
        let mut i = 0;
        while i < input.len() {
            match self.state {
                ChunkState::Size => {
                    let b = input[i];
                    i += 1;
                    match b {
                        b'0'..=b'9' | b'a'..=b'f' | b'A'..=b'F' => {
                            let d = (b as char).to_digit(16).unwrap_or(0) as usize;
                            *size = size.checked_mul(16).ok_or_else(bad)? + d;
                        }
                        b';' | b' ' => self.state = ChunkState::SizeExt,
                        b'\r' => self.state = ChunkState::SizeLf,
                        _ => return Err(bad()),
                    }
                }
                ChunkState::SizeExt => {
                    if input[i] == b'\r' {
                        self.state = ChunkState::SizeLf;
                    }
                    i += 1;
                }
                ChunkState::SizeLf => {
                    if input[i] != b'\n' {
                        return Err(bad());
                    }
                    i += 1;
                    self.state = if *size == 0 {
                        ChunkState::Trailer
                    } else {
                        ChunkState::Data(*size)
                    };
                    *size = 0;
                }
                ChunkState::Data(rem) => {
                    let n = rem.min(input.len() - i);
                    out(&input[i..i + n]);
                    i += n;
                    self.state = if n == rem {
                        ChunkState::DataCr
                    } else {
                        ChunkState::Data(rem - n)
                    };
                }
                ChunkState::DataCr => {
                    if input[i] != b'\r' {
                        return Err(bad());
                    }
                    i += 1;
                    self.state = ChunkState::DataLf;
                }
                ChunkState::DataLf => {
                    if input[i] != b'\n' {
                        return Err(bad());
                    }
                    i += 1;
                    self.state = ChunkState::Size;
                }
                ChunkState::Trailer => {
                    // No trailers are sent; expect the final CRLF.
                    if input[i] == b'\n' {
                        self.state = ChunkState::Done;
                        return Ok((i + 1, true));
                    }
                    i += 1;
                }
                ChunkState::Done => return Ok((i, true)),
            }
        }
        Ok((i, matches!(self.state, ChunkState::Done)))
    }
}

/// Kind of the SSE event being read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SseKind {
    /// No `event:` line: a publication.
    #[default]
    Message,
    /// `event: welcome`.
    Welcome,
    /// `event: disconnect`.
    Disconnect,
    /// Any other named event (join, leave, reset).
    Other,
}

/// Incremental SSE line parser. Calls back once per `data:` line with the event's kind.
#[derive(Debug, Default)]
pub struct SseParser {
    partial: Vec<u8>,
    kind: SseKind,
}

impl SseParser {
    /// Feeds decoded body bytes.
    pub fn feed(&mut self, mut data: &[u8], on_data: &mut impl FnMut(SseKind, &[u8])) {
        while let Some(nl) = data.iter().position(|&b| b == b'\n') {
            if self.partial.is_empty() {
                self.line(&data[..nl], on_data);
            } else {
                let mut line = std::mem::take(&mut self.partial);
                line.extend_from_slice(&data[..nl]);
                self.line(&line, on_data);
                line.clear();
                // Keep no buffer around between events (idle clients stay small).
                if line.capacity() <= 4096 {
                    self.partial = Vec::new();
                }
            }
            data = &data[nl + 1..];
        }
        if !data.is_empty() {
            self.partial.extend_from_slice(data);
        }
    }

    fn line(&mut self, line: &[u8], on_data: &mut impl FnMut(SseKind, &[u8])) {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        if line.is_empty() {
            self.kind = SseKind::Message;
        } else if let Some(v) = line.strip_prefix(b"data:") {
            on_data(self.kind, v.strip_prefix(b" ").unwrap_or(v));
        } else if let Some(v) = line.strip_prefix(b"event:") {
            self.kind = match v.strip_prefix(b" ").unwrap_or(v) {
                b"welcome" => SseKind::Welcome,
                b"disconnect" => SseKind::Disconnect,
                _ => SseKind::Other,
            };
        }
    }
}

/// One HTTP/1.1 connection with its unread bytes.
pub struct HttpConn<S> {
    /// The socket.
    pub io: S,
    /// Bytes read but not consumed yet.
    pub buf: Vec<u8>,
}

impl<S: AsyncRead + AsyncWrite + Unpin> HttpConn<S> {
    /// Wraps a connected socket.
    pub fn new(io: S) -> Self {
        Self {
            io,
            buf: Vec::new(),
        }
    }

    /// Reads more bytes into `buf`; 0 means EOF.
    pub async fn read_more(&mut self) -> io::Result<usize> {
        if self.buf.capacity() - self.buf.len() < 1024 {
            self.buf.reserve(4096);
        }
        self.io.read_buf(&mut self.buf).await
    }

    /// Reads a response head; `buf` keeps the bytes after it.
    pub async fn read_head(&mut self) -> io::Result<Head> {
        let mut searched: usize = 0;
        loop {
            if let Some(p) = find(&self.buf[searched.saturating_sub(3)..], b"\r\n\r\n") {
                let end = searched.saturating_sub(3) + p;
                let head = parse_head(&self.buf[..end])?;
                self.buf.drain(..end + 4);
                return Ok(head);
            }
            searched = self.buf.len();
            if searched > MAX_HEAD {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidData,
                    "response head too large",
                ));
            }
            if self.read_more().await? == 0 {
                return Err(io::ErrorKind::UnexpectedEof.into());
            }
        }
    }

    /// Reads a whole response (head and body).
    pub async fn read_response(&mut self) -> io::Result<(Head, Vec<u8>)> {
        let head = self.read_head().await?;
        if let Some(len) = head.content_length {
            while self.buf.len() < len {
                if self.read_more().await? == 0 {
                    return Err(io::ErrorKind::UnexpectedEof.into());
                }
            }
            let body: Vec<u8> = self.buf.drain(..len).collect();
            return Ok((head, body));
        }
        if head.chunked {
            let mut dec = Chunked::default();
            let mut body = Vec::new();
            loop {
                let (used, done) = dec.feed(&self.buf, &mut |d| body.extend_from_slice(d))?;
                self.buf.drain(..used);
                if done {
                    return Ok((head, body));
                }
                if self.read_more().await? == 0 {
                    return Err(io::ErrorKind::UnexpectedEof.into());
                }
            }
        }
        // Neither: the body runs to EOF.
        while self.read_more().await? > 0 {}
        Ok((head, std::mem::take(&mut self.buf)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chunked_and_sse() {
        let pieces: [&[u8]; 3] = [
            b"event: welcome\n",
            b"data: {\"client\":\"a\"}\n\ndata: {\"op",
            b"\":\"pub\"}\n\n",
        ];
        let mut raw = Vec::new();
        for p in pieces {
            raw.extend_from_slice(format!("{:x}\r\n", p.len()).as_bytes());
            raw.extend_from_slice(p);
            raw.extend_from_slice(b"\r\n");
        }
        raw.extend_from_slice(b"0\r\n\r\n");
        let mut events = vec![];
        let mut parser = SseParser::default();
        let mut dec = Chunked::default();
        // Feed byte by byte to exercise every state boundary.
        let mut done = false;
        for b in raw.chunks(1) {
            let (used, d) = dec
                .feed(b, &mut |x| {
                    parser.feed(x, &mut |k, data| events.push((k, data.to_vec())))
                })
                .unwrap();
            assert_eq!(used, 1);
            done = d;
        }
        assert!(done);
        assert_eq!(
            events,
            vec![
                (SseKind::Welcome, br#"{"client":"a"}"#.to_vec()),
                (SseKind::Message, br#"{"op":"pub"}"#.to_vec()),
            ]
        );
    }

    #[test]
    fn head() {
        let h = parse_head(b"HTTP/1.1 200 OK\r\ncontent-length: 12\r\nConnection: close").unwrap();
        assert_eq!(h.status, 200);
        assert_eq!(h.content_length, Some(12));
        assert!(h.close && !h.chunked);
    }
}
