//! A minimal WebSocket client that negotiates permessage-deflate (RFC 7692), for `bench fanout
//! --compression` (tungstenite has no deflate support).
//!
//! It offers the extension, insists the node accepts it with no context takeover (what
//! Switchboard answers), inflates each compressed message on its own with the node's decoder
//! (`switchboard_server::decoders::deflate`), answers pings, and masks what it sends. Server frames are never fragmented by
//! Switchboard; a fragment is reported as an error rather than assembled.

use std::io;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

/// Largest message accepted (inflated or not).
const MAX_MESSAGE: usize = 1 << 20;

/// A message from the node.
pub enum Msg {
    /// A text message (inflated when it came compressed).
    Text(Vec<u8>),
    /// A close frame: code and reason.
    Close(Option<u16>, String),
}

/// A WebSocket with permessage-deflate negotiated.
pub struct DeflateWs<S> {
    io: S,
    buf: Vec<u8>,
}

/// Inflates one message with the node's own decoder (RFC 7692, no context takeover).
fn inflate(payload: &[u8]) -> Result<Vec<u8>, String> {
    switchboard_server::decoders::deflate::decompress(payload, MAX_MESSAGE)
        .map(|b| b.to_vec())
        .map_err(|d| format!("inflate: {}", d.reason))
}

/// A masked client frame (the mask need not be secret for a load generator).
fn masked(opcode: u8, payload: &[u8]) -> Vec<u8> {
    let mask = [0x5a, 0x17, 0xc3, 0x81];
    let mut f = Vec::with_capacity(payload.len() + 14);
    f.push(0x80 | opcode);
    match payload.len() {
        n if n < 126 => f.push(0x80 | n as u8),
        n if n <= 0xffff => {
            f.push(0x80 | 126);
            f.extend_from_slice(&(n as u16).to_be_bytes());
        }
        n => {
            f.push(0x80 | 127);
            f.extend_from_slice(&(n as u64).to_be_bytes());
        }
    }
    f.extend_from_slice(&mask);
    f.extend(payload.iter().enumerate().map(|(i, b)| b ^ mask[i & 3]));
    f
}

impl<S: AsyncRead + AsyncWrite + Unpin> DeflateWs<S> {
    /// The handshake on `io`. `Err((refused, message))`: `refused` when retrying cannot help
    /// (an HTTP error, or the node did not accept the extension).
    pub async fn handshake(mut io: S, host: &str) -> Result<Self, (bool, String)> {
        let req = format!(
            "GET /ws HTTP/1.1\r\nHost: {host}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
             Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\
             Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits\r\n\r\n"
        );
        io.write_all(req.as_bytes())
            .await
            .map_err(|e| (false, e.to_string()))?;
        let mut buf = Vec::new();
        let end = loop {
            if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                break i + 4;
            }
            if buf.len() > 16 * 1024 {
                return Err((true, "handshake response head too large".into()));
            }
            let mut chunk = [0u8; 1024];
            let n = io
                .read(&mut chunk)
                .await
                .map_err(|e| (false, e.to_string()))?;
            if n == 0 {
                return Err((false, "closed during the handshake".into()));
            }
            buf.extend_from_slice(&chunk[..n]);
        };
        let head = String::from_utf8_lossy(&buf[..end]).to_ascii_lowercase();
        if !head.starts_with("http/1.1 101") {
            let line = head.lines().next().unwrap_or_default().to_owned();
            return Err((true, line));
        }
        let accepted = head.lines().any(|l| {
            l.strip_prefix("sec-websocket-extensions:")
                .is_some_and(|v| v.trim().starts_with("permessage-deflate"))
        });
        if !accepted {
            return Err((
                true,
                "the node did not accept permessage-deflate (enable websocket.compression)".into(),
            ));
        }
        Ok(Self {
            io,
            buf: buf[end..].to_vec(),
        })
    }

    /// Sends a text message (uncompressed: the bench measures what the node sends).
    pub async fn send_text(&mut self, text: &str) -> io::Result<()> {
        self.io.write_all(&masked(1, text.as_bytes())).await
    }

    /// The next text or close message; answers pings on the way.
    pub async fn next(&mut self) -> Result<Msg, String> {
        loop {
            if let Some((op, rsv1, payload)) = self.frame()? {
                match op {
                    1 if rsv1 => return inflate(&payload).map(Msg::Text),
                    1 => return Ok(Msg::Text(payload)),
                    8 => {
                        let code = (payload.len() >= 2)
                            .then(|| u16::from_be_bytes([payload[0], payload[1]]));
                        let reason = String::from_utf8_lossy(payload.get(2..).unwrap_or_default());
                        return Ok(Msg::Close(code, reason.into_owned()));
                    }
                    9 => self
                        .io
                        .write_all(&masked(10, &payload))
                        .await
                        .map_err(|e| e.to_string())?,
                    _ => {}
                }
                continue;
            }
            let mut chunk = [0u8; 4096];
            let n = self.io.read(&mut chunk).await.map_err(|e| e.to_string())?;
            if n == 0 {
                return Err("eof".into());
            }
            self.buf.extend_from_slice(&chunk[..n]);
        }
    }

    /// One complete frame from the buffer: opcode, RSV1, payload.
    fn frame(&mut self) -> Result<Option<(u8, bool, Vec<u8>)>, String> {
        let b = &self.buf;
        if b.len() < 2 {
            return Ok(None);
        }
        if b[0] & 0x80 == 0 {
            return Err("fragmented server message".into());
        }
        let (len, at) = match b[1] & 0x7f {
            126 if b.len() >= 4 => (usize::from(u16::from_be_bytes([b[2], b[3]])), 4),
            127 if b.len() >= 10 => {
                let mut l = [0u8; 8];
                l.copy_from_slice(&b[2..10]);
                (
                    usize::try_from(u64::from_be_bytes(l)).unwrap_or(usize::MAX),
                    10,
                )
            }
            126 | 127 => return Ok(None),
            n => (usize::from(n), 2),
        };
        if len > MAX_MESSAGE {
            return Err("server frame too large".into());
        }
        if b.len() < at + len {
            return Ok(None);
        }
        let (op, rsv1) = (b[0] & 0x0f, b[0] & 0x40 != 0);
        let payload = b[at..at + len].to_vec();
        self.buf.drain(..at + len);
        if self.buf.is_empty() {
            self.buf = Vec::new();
        }
        Ok(Some((op, rsv1, payload)))
    }
}

#[cfg(test)]
mod tests {
    use flate2::{Compress, Compression, FlushCompress};

    #[test]
    fn inflates_what_a_no_context_takeover_deflater_sends() {
        let msg = br#"{"op":"pub","channel":"bench:fanout","data":{"seq":1,"ts":123}}"#.repeat(4);
        let mut c = Compress::new(Compression::default(), false);
        let mut out = Vec::with_capacity(msg.len() + 64);
        c.compress_vec(&msg, &mut out, FlushCompress::Sync).unwrap();
        out.truncate(out.len() - 4);
        assert_eq!(super::inflate(&out).unwrap(), msg);
        assert!(super::inflate(&[0xff, 0xff, 0xff]).is_err());
    }
}
