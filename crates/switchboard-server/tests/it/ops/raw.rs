//! A raw WebSocket client over a plain TCP socket: full control of the socket (receive buffer
//! size, source address, when to read) for slow-consumer and limit tests.

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};

use crate::harness::WAIT;

/// A server frame.
#[derive(Debug)]
pub struct Frame {
    pub opcode: u8,
    /// RSV1: compressed with permessage-deflate (the payload is left as it came).
    pub rsv1: bool,
    pub payload: Vec<u8>,
}

impl Frame {
    /// The close code of a close frame.
    pub fn close_code(&self) -> Option<u16> {
        (self.opcode == 8 && self.payload.len() >= 2)
            .then(|| u16::from_be_bytes([self.payload[0], self.payload[1]]))
    }

    pub fn json(&self) -> Option<Value> {
        (self.opcode == 1).then(|| serde_json::from_slice(&self.payload).expect("JSON text"))
    }
}

pub struct RawWs {
    pub tcp: TcpStream,
    buf: Vec<u8>,
    /// The response head of the handshake.
    pub head: String,
}

/// Connects a TCP socket, optionally from `from` and with a small receive buffer.
pub async fn tcp(addr: SocketAddr, from: Option<IpAddr>, rcvbuf: Option<u32>) -> TcpStream {
    let sock = TcpSocket::new_v4().unwrap();
    if let Some(n) = rcvbuf {
        sock.set_recv_buffer_size(n).unwrap();
    }
    if let Some(ip) = from {
        sock.bind(SocketAddr::new(ip, 0)).unwrap();
    }
    sock.connect(addr).await.expect("tcp connects")
}

impl RawWs {
    /// Opens `path` on `addr`; `Err((status, body))` when the server refuses the upgrade.
    pub async fn open(
        addr: SocketAddr,
        path: &str,
        from: Option<IpAddr>,
        rcvbuf: Option<u32>,
    ) -> Result<RawWs, (u16, String)> {
        Self::open_with(addr, path, from, rcvbuf, "").await
    }

    /// [`RawWs::open`] with extra request header lines (each ending in `\r\n`).
    pub async fn open_with(
        addr: SocketAddr,
        path: &str,
        from: Option<IpAddr>,
        rcvbuf: Option<u32>,
        extra: &str,
    ) -> Result<RawWs, (u16, String)> {
        let mut tcp = tcp(addr, from, rcvbuf).await;
        let req = format!(
            "GET {path} HTTP/1.1\r\nHost: {addr}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
             Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n{extra}\r\n"
        );
        tcp.write_all(req.as_bytes()).await.unwrap();
        let mut buf = Vec::new();
        let head_end = loop {
            if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                break i + 4;
            }
            let mut chunk = [0u8; 1024];
            let n = tokio::time::timeout(WAIT, tcp.read(&mut chunk))
                .await
                .expect("handshake reply in time")
                .unwrap();
            assert!(n > 0, "closed during the handshake");
            buf.extend_from_slice(&chunk[..n]);
        };
        let head = String::from_utf8_lossy(&buf[..head_end]).to_string();
        let status: u16 = head.split(' ').nth(1).unwrap().parse().unwrap();
        if status != 101 {
            // Error bodies are small JSON with a content-length; read what is there.
            let mut rest = buf[head_end..].to_vec();
            let len = head
                .lines()
                .find_map(|l| {
                    l.to_ascii_lowercase()
                        .strip_prefix("content-length:")
                        .map(|v| v.trim().parse::<usize>().unwrap())
                })
                .unwrap_or(0);
            while rest.len() < len {
                let mut chunk = [0u8; 1024];
                let n = tcp.read(&mut chunk).await.unwrap();
                if n == 0 {
                    break;
                }
                rest.extend_from_slice(&chunk[..n]);
            }
            return Err((status, String::from_utf8_lossy(&rest).to_string()));
        }
        Ok(RawWs {
            tcp,
            buf: buf[head_end..].to_vec(),
            head,
        })
    }

    /// Sends a masked text frame.
    pub async fn send_text(&mut self, text: &str) {
        self.tcp
            .write_all(&masked(1, text.as_bytes()))
            .await
            .unwrap();
    }

    /// Parses one complete frame from the buffer, if there is one.
    fn parse(&mut self) -> Option<Frame> {
        let b = &self.buf;
        if b.len() < 2 {
            return None;
        }
        let opcode = b[0] & 0x0f;
        let rsv1 = b[0] & 0x40 != 0;
        let (len, mut at) = match b[1] & 0x7f {
            126 if b.len() >= 4 => (u16::from_be_bytes([b[2], b[3]]) as usize, 4),
            127 if b.len() >= 10 => (
                u64::from_be_bytes(b[2..10].try_into().unwrap()) as usize,
                10,
            ),
            126 | 127 => return None,
            n => (n as usize, 2),
        };
        assert_eq!(b[1] & 0x80, 0, "server frames are unmasked");
        if b.len() < at + len {
            return None;
        }
        let payload = b[at..at + len].to_vec();
        at += len;
        self.buf.drain(..at);
        Some(Frame {
            opcode,
            rsv1,
            payload,
        })
    }

    /// The next frame; `None` when the connection ended (EOF or reset) first.
    pub async fn frame(&mut self) -> Option<Frame> {
        loop {
            if let Some(f) = self.parse() {
                return Some(f);
            }
            let mut chunk = [0u8; 16 * 1024];
            let n = tokio::time::timeout(WAIT, self.tcp.read(&mut chunk))
                .await
                .expect("a frame or the end in time")
                .unwrap_or(0);
            if n == 0 {
                return None;
            }
            self.buf.extend_from_slice(&chunk[..n]);
        }
    }

    /// The next JSON message, skipping control frames and pings; `None` at a close or the end.
    pub async fn json(&mut self) -> Option<Value> {
        loop {
            let f = self.frame().await?;
            if f.opcode == 8 {
                return None;
            }
            if let Some(v) = f.json()
                && v["op"] != "ping"
            {
                return Some(v);
            }
        }
    }

    /// Sends a command and waits for the reply with its id, dropping pushes.
    pub async fn request(&mut self, cmd: Value) -> Value {
        let id = cmd["id"].clone();
        self.send_text(&cmd.to_string()).await;
        loop {
            let v = self.json().await.expect("reply before close");
            if v["id"] == id {
                return v;
            }
        }
    }
}

/// A masked client frame.
pub fn masked(opcode: u8, payload: &[u8]) -> Vec<u8> {
    let mask = [0x12u8, 0x34, 0x56, 0x78];
    let mut f = vec![0x80 | opcode];
    match payload.len() {
        n if n < 126 => f.push(0x80 | n as u8),
        n if n <= u16::MAX as usize => {
            f.push(0x80 | 126);
            f.extend_from_slice(&(n as u16).to_be_bytes());
        }
        n => {
            f.push(0x80 | 127);
            f.extend_from_slice(&(n as u64).to_be_bytes());
        }
    }
    f.extend_from_slice(&mask);
    f.extend(payload.iter().enumerate().map(|(i, b)| b ^ mask[i % 4]));
    f
}

/// Waits until the peer closes `tcp` (EOF or reset); panics after `limit`.
pub async fn closed_within(tcp: &mut TcpStream, limit: Duration) {
    let mut chunk = [0u8; 4096];
    tokio::time::timeout(limit, async {
        loop {
            match tcp.read(&mut chunk).await {
                Ok(0) | Err(_) => return,
                Ok(_) => {}
            }
        }
    })
    .await
    .expect("the server closes the connection");
}
