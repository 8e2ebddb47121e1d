//! The worker process (`switchboard bench worker`, hidden): holds up to ~8,000 client sessions
//! and reports to the parent.
//!
//! Protocol, kept deliberately small: the parent writes one JSON [`WorkerSpec`] line to the
//! worker's stdin, then plain commands, one per line: `stats`, `report` (stats plus the latency
//! histogram) and `stop`. The worker writes JSON [`Event`] lines to stdout: `progress` (every
//! 100 ms while something changes), `ready` once every session was attempted, and `stats` as the
//! answer to a command. It exits on `stop`, when stdin closes (the parent died) and when its
//! lifetime runs out, so it never outlives a run.

use std::collections::BTreeMap;
use std::io::Write as _;
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use anyhow::{Context as _, Result};
use futures_util::{SinkExt, StreamExt};
use hdrhistogram::Histogram;
use serde::{Deserialize, Serialize};
use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncWrite, AsyncWriteExt, BufReader, ReadBuf};
use tokio::net::{TcpSocket, TcpStream};
use tokio::sync::Semaphore;
use tokio::time::{Instant, MissedTickBehavior};
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;

use super::Transport;
use super::h2;
use super::http::{Chunked, HttpConn, SseKind, SseParser};
use super::scan::{each_ts, excerpt, first_ts, string_field, unix_micros, url_encode};
use super::tls::{ALPN_H2, ALPN_HTTP1, MaybeTls};
use super::wsdeflate::{DeflateWs, Msg};

/// Latency histogram shards per worker (sessions record into `id % SHARDS`).
const SHARDS: usize = 8;
/// Highest latency recorded (µs); larger values saturate.
const MAX_LATENCY_US: u64 = 300_000_000;
/// Distinct error/close keys kept per worker; the rest are counted as `(other)`.
const MAX_KEYS: usize = 48;
/// Attempts per session before it counts as failed.
const ATTEMPTS: u32 = 3;
/// Time allowed for one session to get ready (connect, handshake, subscribe).
const SETUP_TIMEOUT: Duration = Duration::from_secs(30);

/// What one worker does.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct WorkerSpec {
    /// Worker number (for messages).
    pub index: usize,
    /// Transport of every session.
    pub transport: Transport,
    /// Server port on 127.0.0.1.
    pub port: u16,
    /// Source addresses; session `n` binds `sources[n % len]`.
    pub sources: Vec<Ipv4Addr>,
    /// First global session number.
    pub first: u64,
    /// Sessions to hold.
    pub count: u64,
    /// Channel (with `spread == 0`) or channel prefix.
    pub channel: String,
    /// When above 0, session `n` uses `<channel>-<n % spread>`.
    pub spread: u64,
    /// HMAC secret to mint each session's token (user `bench-<n>`).
    pub secret: String,
    /// Token lifetime.
    pub token_ttl_secs: u64,
    /// `timeout=` of poll requests (0 = plain polling).
    pub poll_timeout: u64,
    /// Pause between poll requests in ms (0 = poll again at once: long-polling).
    pub poll_interval_ms: u64,
    /// Sessions being set up at the same time.
    pub connect_concurrency: usize,
    /// The worker exits after this long whatever happens.
    pub lifetime_secs: u64,
    /// With TLS: PEM certificates to trust (`--ca`); `None` = plain TCP.
    #[serde(default)]
    pub ca: Option<PathBuf>,
    /// `sse-h2`: streams per HTTP/2 connection.
    #[serde(default)]
    pub streams_per_connection: u64,
    /// `ws`: offer permessage-deflate (and require it).
    #[serde(default)]
    pub deflate: bool,
}

impl WorkerSpec {
    fn channel_for(&self, n: u64) -> String {
        if self.spread == 0 {
            self.channel.clone()
        } else {
            format!("{}-{}", self.channel, n % self.spread)
        }
    }

    fn host(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// `sse-h2`: the connection group of session `n` (a group shares one HTTP/2 connection).
    fn h2_group(&self, n: u64) -> u64 {
        (n - self.first) / self.streams_per_connection.max(1)
    }

    /// The TLS connector of every session, with the ALPN of the transport.
    fn tls(&self) -> Result<Option<tokio_rustls::TlsConnector>> {
        let Some(ca) = &self.ca else { return Ok(None) };
        let alpn = if self.transport == Transport::SseH2 {
            ALPN_H2
        } else {
            ALPN_HTTP1
        };
        let config = super::tls::client_config(ca, &[alpn])?;
        Ok(Some(tokio_rustls::TlsConnector::from(Arc::new(config))))
    }
}

/// Worker → parent messages (one JSON object per stdout line).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "ev", rename_all = "snake_case")]
pub enum Event {
    /// Counters while things change.
    Progress {
        /// Sessions ready.
        connected: u64,
        /// Sessions that failed to get ready.
        failed: u64,
        /// Publications received.
        received: u64,
        /// Other messages received (join/leave pushes, replies, pings).
        #[serde(default)]
        other: u64,
    },
    /// Every session was attempted.
    Ready {
        /// Sessions ready.
        connected: u64,
        /// Sessions that failed.
        failed: u64,
    },
    /// Answer to `stats` / `report`.
    Stats(Stats),
}

/// A worker's counters (summed over workers by the parent).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Stats {
    /// Sessions ready.
    pub connected: u64,
    /// Sessions that failed to get ready.
    pub failed: u64,
    /// Publications received (with a `ts`).
    pub received: u64,
    /// Other messages received (replies, join/leave, pings, keep-alives).
    pub other: u64,
    /// Bytes read from sockets (headers, framing and bodies; no TCP/IP headers).
    pub bytes_in: u64,
    /// Bytes written to sockets.
    pub bytes_out: u64,
    /// HTTP requests sent (SSE/poll requests and WebSocket handshakes).
    pub requests: u64,
    /// Time of the last publication received (unix µs).
    pub last_rx_us: u64,
    /// Ready sessions that received at least one publication.
    #[serde(default)]
    pub receiving: u64,
    /// Session setup failures and runtime errors, by kind.
    pub errors: BTreeMap<String, u64>,
    /// Sessions that ended after being ready, by reason.
    pub closed: BTreeMap<String, u64>,
    /// Latency histogram as `(µs, count)` pairs (only in `report`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hist: Option<Vec<(u64, u64)>>,
}

struct Shared {
    connected: AtomicU64,
    failed: AtomicU64,
    received: AtomicU64,
    other: AtomicU64,
    bytes_in: AtomicU64,
    bytes_out: AtomicU64,
    requests: AtomicU64,
    last_rx_us: AtomicU64,
    receiving: AtomicU64,
    hists: Vec<Mutex<Histogram<u64>>>,
    errors: Mutex<BTreeMap<String, u64>>,
    closed: Mutex<BTreeMap<String, u64>>,
}

/// A new latency histogram (1 µs .. 300 s, 3 significant digits).
pub fn new_histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, MAX_LATENCY_US, 3).expect("static histogram bounds")
}

fn bump(map: &Mutex<BTreeMap<String, u64>>, key: String) {
    let mut m = map.lock().unwrap_or_else(|e| e.into_inner());
    let key = if m.len() < MAX_KEYS || m.contains_key(&key) {
        key
    } else {
        "(other)".to_owned()
    };
    *m.entry(key).or_default() += 1;
}

impl Shared {
    fn new() -> Self {
        Self {
            connected: AtomicU64::new(0),
            failed: AtomicU64::new(0),
            received: AtomicU64::new(0),
            other: AtomicU64::new(0),
            bytes_in: AtomicU64::new(0),
            bytes_out: AtomicU64::new(0),
            requests: AtomicU64::new(0),
            last_rx_us: AtomicU64::new(0),
            receiving: AtomicU64::new(0),
            hists: (0..SHARDS).map(|_| Mutex::new(new_histogram())).collect(),
            errors: Mutex::new(BTreeMap::new()),
            closed: Mutex::new(BTreeMap::new()),
        }
    }

    fn publication(&self, session: u64, ts: u64) {
        let now = unix_micros();
        let latency = now.saturating_sub(ts).max(1);
        self.hists[session as usize % SHARDS]
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .saturating_record(latency);
        self.received.fetch_add(1, Relaxed);
        self.last_rx_us.fetch_max(now, Relaxed);
    }

    fn error(&self, key: String) {
        bump(&self.errors, key);
    }

    fn closed(&self, key: String) {
        bump(&self.closed, key);
    }

    fn stats(&self, with_hist: bool) -> Stats {
        let hist = with_hist.then(|| {
            let mut all = new_histogram();
            for h in &self.hists {
                let h = h.lock().unwrap_or_else(|e| e.into_inner());
                let _ = all.add(&*h);
            }
            all.iter_recorded()
                .map(|v| (v.value_iterated_to(), v.count_at_value()))
                .collect()
        });
        Stats {
            connected: self.connected.load(Relaxed),
            failed: self.failed.load(Relaxed),
            received: self.received.load(Relaxed),
            other: self.other.load(Relaxed),
            bytes_in: self.bytes_in.load(Relaxed),
            bytes_out: self.bytes_out.load(Relaxed),
            requests: self.requests.load(Relaxed),
            last_rx_us: self.last_rx_us.load(Relaxed),
            receiving: self.receiving.load(Relaxed),
            errors: self
                .errors
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .clone(),
            closed: self
                .closed
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .clone(),
            hist,
        }
    }
}

/// A TCP stream that counts the bytes it moves.
struct Counted {
    io: TcpStream,
    sh: Arc<Shared>,
}

impl AsyncRead for Counted {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let this = self.get_mut();
        let before = buf.filled().len();
        let r = Pin::new(&mut this.io).poll_read(cx, buf);
        if let Poll::Ready(Ok(())) = r {
            this.sh
                .bytes_in
                .fetch_add((buf.filled().len() - before) as u64, Relaxed);
        }
        r
    }
}

impl AsyncWrite for Counted {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        let this = self.get_mut();
        let r = Pin::new(&mut this.io).poll_write(cx, buf);
        if let Poll::Ready(Ok(n)) = r {
            this.sh.bytes_out.fetch_add(n as u64, Relaxed);
        }
        r
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_shutdown(cx)
    }
}

/// A setup failure: its summary and whether another attempt may help.
struct SetupError {
    key: String,
    retry: bool,
}

fn transient(what: &str, e: impl std::fmt::Display) -> SetupError {
    SetupError {
        key: format!("{what}: {e}"),
        retry: true,
    }
}

fn refused(what: &str, e: impl std::fmt::Display) -> SetupError {
    SetupError {
        key: format!("{what}: {e}"),
        retry: false,
    }
}

/// A client socket: TCP, with TLS when the URL is https.
type Conn = MaybeTls<Counted>;

/// An SSE stream after its `welcome` event.
struct SseStream {
    c: HttpConn<Conn>,
    chunked: bool,
    dec: Chunked,
    sse: SseParser,
}

/// An SSE stream over HTTP/2 after its `welcome` event.
struct H2Sse {
    body: hyper::body::Incoming,
    sse: SseParser,
}

/// Context of one session.
struct Sess {
    n: u64,
    spec: Arc<WorkerSpec>,
    sh: Arc<Shared>,
    tls: Option<tokio_rustls::TlsConnector>,
    /// `sse-h2`: the connection this session's stream shares.
    h2: Option<Arc<h2::Slot>>,
    channel: String,
    token: String,
    /// Publications this session received.
    got: AtomicU64,
}

impl Sess {
    fn publication(&self, ts: u64) {
        if self.got.fetch_add(1, Relaxed) == 0 {
            self.sh.receiving.fetch_add(1, Relaxed);
        }
        self.sh.publication(self.n, ts);
    }

    /// A TCP connection from source address `slot % sources`.
    async fn tcp(&self, slot: u64) -> Result<Counted, SetupError> {
        let src = self.spec.sources[(slot as usize) % self.spec.sources.len()];
        let dst = SocketAddr::V4(SocketAddrV4::new(Ipv4Addr::LOCALHOST, self.spec.port));
        let sock = TcpSocket::new_v4().map_err(|e| transient("socket", e))?;
        if src != Ipv4Addr::LOCALHOST {
            // Another source address: its own 28k ephemeral ports.
            sock.bind(SocketAddr::V4(SocketAddrV4::new(src, 0)))
                .map_err(|e| transient("bind", e))?;
        }
        let io = sock
            .connect(dst)
            .await
            .map_err(|e| transient("tcp connect", e))?;
        let _ = io.set_nodelay(true);
        Ok(Counted {
            io,
            sh: self.sh.clone(),
        })
    }

    /// A connection from source address `slot % sources`, with TLS when the URL is https.
    async fn connect(&self, slot: u64) -> Result<Conn, SetupError> {
        let tcp = self.tcp(slot).await?;
        let Some(tls) = &self.tls else {
            return Ok(MaybeTls::Plain(tcp));
        };
        let s = tls
            .connect(super::tls::server_name(), tcp)
            .await
            .map_err(|e| {
                // A certificate the client does not trust will not be trusted on a retry.
                if e.kind() == std::io::ErrorKind::InvalidData {
                    refused("tls handshake", e)
                } else {
                    transient("tls handshake", e)
                }
            })?;
        Ok(MaybeTls::Tls(Box::new(s)))
    }

    // ---- WebSocket ----

    async fn open_ws(&self) -> Result<WebSocketStream<Conn>, SetupError> {
        let io = self.connect(self.n).await?;
        let cfg = WebSocketConfig::default()
            .read_buffer_size(4096)
            .write_buffer_size(0)
            .max_write_buffer_size(64 * 1024)
            .max_message_size(Some(1 << 20))
            .max_frame_size(Some(1 << 20));
        self.sh.requests.fetch_add(1, Relaxed);
        let url = format!("ws://{}/ws", self.spec.host());
        let (mut ws, _) = tokio_tungstenite::client_async_with_config(url, io, Some(cfg))
            .await
            .map_err(|e| match e {
                tokio_tungstenite::tungstenite::Error::Http(r) => refused(
                    "ws handshake",
                    format!(
                        "HTTP {} {}",
                        r.status(),
                        r.body().as_deref().map(excerpt).unwrap_or_default()
                    ),
                ),
                e => transient("ws handshake", e),
            })?;
        let connect = format!(r#"{{"id":1,"op":"connect","token":"{}"}}"#, self.token);
        ws.send(Message::text(connect))
            .await
            .map_err(|e| transient("ws send", e))?;
        self.await_reply(&mut ws, 1, "connect").await?;
        let sub = format!(
            r#"{{"id":2,"op":"subscribe","channel":{}}}"#,
            serde_json::to_string(&self.channel).unwrap_or_default()
        );
        ws.send(Message::text(sub))
            .await
            .map_err(|e| transient("ws send", e))?;
        self.await_reply(&mut ws, 2, "subscribe").await?;
        Ok(ws)
    }

    async fn await_reply(
        &self,
        ws: &mut WebSocketStream<Conn>,
        id: u64,
        what: &str,
    ) -> Result<(), SetupError> {
        let prefix = format!(r#"{{"id":{id},"#);
        loop {
            match ws.next().await {
                Some(Ok(Message::Text(t))) => {
                    let b = t.as_bytes();
                    if b.starts_with(prefix.as_bytes()) {
                        if b[prefix.len()..].starts_with(br#""ok""#) {
                            return Ok(());
                        }
                        return Err(refused(what, excerpt(b)));
                    }
                    self.sh.other.fetch_add(1, Relaxed);
                }
                Some(Ok(Message::Close(f))) => {
                    return Err(refused(
                        what,
                        format!(
                            "closed {}",
                            f.map(|f| format!("{} {}", u16::from(f.code), f.reason.as_str()))
                                .unwrap_or_default()
                        ),
                    ));
                }
                Some(Ok(_)) => {}
                Some(Err(e)) => return Err(transient(what, e)),
                None => return Err(transient(what, "connection closed")),
            }
        }
    }

    async fn run_ws(&self, mut ws: WebSocketStream<Conn>) {
        loop {
            match ws.next().await {
                Some(Ok(Message::Text(t))) => {
                    let b = t.as_bytes();
                    match b
                        .starts_with(br#"{"op":"pub""#)
                        .then(|| first_ts(b))
                        .flatten()
                    {
                        Some(ts) => self.publication(ts),
                        None => {
                            self.sh.other.fetch_add(1, Relaxed);
                        }
                    }
                }
                Some(Ok(Message::Close(f))) => {
                    self.sh.closed(format!(
                        "ws close {}",
                        f.map(|f| format!("{} {}", u16::from(f.code), f.reason.as_str()))
                            .unwrap_or_else(|| "(no code)".into())
                    ));
                    return;
                }
                Some(Ok(_)) => {}
                Some(Err(e)) => {
                    self.sh.closed(format!("ws error: {e}"));
                    return;
                }
                None => {
                    self.sh.closed("ws eof".into());
                    return;
                }
            }
        }
    }

    // ---- WebSocket with permessage-deflate ----

    async fn open_ws_deflate(&self) -> Result<DeflateWs<Conn>, SetupError> {
        let io = self.connect(self.n).await?;
        self.sh.requests.fetch_add(1, Relaxed);
        let mut ws = DeflateWs::handshake(io, &self.spec.host())
            .await
            .map_err(|(fatal, e)| {
                if fatal {
                    refused("ws handshake", e)
                } else {
                    transient("ws handshake", e)
                }
            })?;
        let sub = serde_json::to_string(&self.channel).unwrap_or_default();
        let commands = [
            (
                1,
                format!(r#"{{"id":1,"op":"connect","token":"{}"}}"#, self.token),
                "connect",
            ),
            (
                2,
                format!(r#"{{"id":2,"op":"subscribe","channel":{sub}}}"#),
                "subscribe",
            ),
        ];
        for (id, cmd, what) in commands {
            ws.send_text(&cmd)
                .await
                .map_err(|e| transient("ws send", e))?;
            let prefix = format!(r#"{{"id":{id},"#);
            loop {
                match ws.next().await.map_err(|e| transient(what, e))? {
                    Msg::Text(b) if b.starts_with(prefix.as_bytes()) => {
                        if b[prefix.len()..].starts_with(br#""ok""#) {
                            break;
                        }
                        return Err(refused(what, excerpt(&b)));
                    }
                    Msg::Text(_) => {
                        self.sh.other.fetch_add(1, Relaxed);
                    }
                    Msg::Close(code, reason) => {
                        return Err(refused(what, format!("closed {code:?} {reason}")));
                    }
                }
            }
        }
        Ok(ws)
    }

    async fn run_ws_deflate(&self, mut ws: DeflateWs<Conn>) {
        loop {
            match ws.next().await {
                Ok(Msg::Text(b)) => match b
                    .starts_with(br#"{"op":"pub""#)
                    .then(|| first_ts(&b))
                    .flatten()
                {
                    Some(ts) => self.publication(ts),
                    None => {
                        self.sh.other.fetch_add(1, Relaxed);
                    }
                },
                Ok(Msg::Close(code, reason)) => {
                    let code = code.map_or_else(|| "(no code)".into(), |c| c.to_string());
                    self.sh.closed(format!("ws close {code} {reason}"));
                    return;
                }
                Err(e) => {
                    self.sh.closed(format!("ws error: {e}"));
                    return;
                }
            }
        }
    }

    // ---- SSE ----

    async fn open_sse(&self) -> Result<SseStream, SetupError> {
        let mut c = HttpConn::new(self.connect(self.n).await?);
        let req = format!(
            "GET /sse?channel={} HTTP/1.1\r\nHost: {}\r\nAccept: text/event-stream\r\nAuthorization: Bearer {}\r\n\r\n",
            url_encode(&self.channel),
            self.spec.host(),
            self.token
        );
        self.sh.requests.fetch_add(1, Relaxed);
        c.io.write_all(req.as_bytes())
            .await
            .map_err(|e| transient("sse request", e))?;
        let head = c.read_head().await.map_err(|e| transient("sse head", e))?;
        if head.status != 200 {
            let _ = tokio::time::timeout(Duration::from_millis(500), c.read_more()).await;
            return Err(refused(
                "sse",
                format!("HTTP {} {}", head.status, excerpt(&c.buf)),
            ));
        }
        let mut dec = Chunked::default();
        let mut sse = SseParser::default();
        loop {
            let mut welcome = false;
            self.feed_sse(&mut c, head.chunked, &mut dec, &mut sse, &mut welcome)
                .map_err(|e| transient("sse body", e))?;
            if welcome {
                return Ok(SseStream {
                    c,
                    chunked: head.chunked,
                    dec,
                    sse,
                });
            }
            match c.read_more().await {
                Ok(0) => return Err(transient("sse", "stream ended before welcome")),
                Ok(_) => {}
                Err(e) => return Err(transient("sse read", e)),
            }
        }
    }

    /// Counts one SSE `data:` line; sets `welcome` at the `welcome` event.
    fn sse_data(&self, kind: SseKind, data: &[u8], welcome: &mut bool) {
        match kind {
            SseKind::Message => match first_ts(data) {
                Some(ts) => self.publication(ts),
                None => {
                    self.sh.other.fetch_add(1, Relaxed);
                }
            },
            SseKind::Welcome => *welcome = true,
            SseKind::Disconnect => self.sh.closed(format!("sse disconnect {}", excerpt(data))),
            SseKind::Other => {
                self.sh.other.fetch_add(1, Relaxed);
            }
        }
    }

    /// Consumes `c.buf` through the chunk decoder and the SSE parser.
    fn feed_sse(
        &self,
        c: &mut HttpConn<Conn>,
        chunked: bool,
        dec: &mut Chunked,
        sse: &mut SseParser,
        welcome: &mut bool,
    ) -> std::io::Result<bool> {
        let mut on_data = |kind: SseKind, data: &[u8]| self.sse_data(kind, data, welcome);
        let done = if chunked {
            let (used, done) = dec.feed(&c.buf, &mut |d| sse.feed(d, &mut on_data))?;
            c.buf.drain(..used);
            done
        } else {
            sse.feed(&c.buf, &mut on_data);
            c.buf.clear();
            false
        };
        if c.buf.is_empty() && c.buf.capacity() > 8192 {
            c.buf = Vec::new();
        }
        Ok(done)
    }

    async fn run_sse(&self, s: SseStream) {
        let SseStream {
            mut c,
            chunked,
            mut dec,
            mut sse,
        } = s;
        let mut welcome = false;
        loop {
            match c.read_more().await {
                Ok(0) => {
                    self.sh.closed("sse eof".into());
                    return;
                }
                Ok(_) => {}
                Err(e) => {
                    self.sh.closed(format!("sse read: {e}"));
                    return;
                }
            }
            match self.feed_sse(&mut c, chunked, &mut dec, &mut sse, &mut welcome) {
                Ok(false) => {}
                Ok(true) => {
                    self.sh.closed("sse stream ended".into());
                    return;
                }
                Err(e) => {
                    self.sh.closed(format!("sse body: {e}"));
                    return;
                }
            }
        }
    }

    // ---- SSE over HTTP/2 ----

    /// A new HTTP/2 connection for this session's group.
    async fn connect_h2(&self) -> Result<h2::Sender, SetupError> {
        let io = self.connect(self.spec.h2_group(self.n)).await?;
        if self.tls.is_some() && io.alpn() != Some(ALPN_H2) {
            return Err(refused(
                "sse-h2",
                "the node did not agree to HTTP/2 through ALPN",
            ));
        }
        h2::handshake(io)
            .await
            .map_err(|e| transient("h2 handshake", e))
    }

    async fn open_sse_h2(&self, slot: &h2::Slot) -> Result<H2Sse, SetupError> {
        let mut tx = slot.sender(|| self.connect_h2()).await?;
        tx.ready()
            .await
            .map_err(|e| transient("h2 connection", e))?;
        let scheme = if self.tls.is_some() { "https" } else { "http" };
        let req = hyper::Request::get(format!(
            "{scheme}://{}/sse?channel={}",
            self.spec.host(),
            url_encode(&self.channel)
        ))
        .header(hyper::header::ACCEPT, "text/event-stream")
        .header(
            hyper::header::AUTHORIZATION,
            format!("Bearer {}", self.token),
        )
        .body(h2::NoBody)
        .map_err(|e| refused("sse-h2 request", e))?;
        self.sh.requests.fetch_add(1, Relaxed);
        let resp = tx
            .send_request(req)
            .await
            .map_err(|e| transient("sse-h2 request", e))?;
        let status = resp.status();
        let mut body = resp.into_body();
        if status != hyper::StatusCode::OK {
            let text = tokio::time::timeout(Duration::from_millis(500), h2::next_data(&mut body))
                .await
                .ok()
                .flatten()
                .and_then(Result::ok)
                .unwrap_or_default();
            return Err(refused(
                "sse-h2",
                format!("HTTP {} {}", status.as_u16(), excerpt(&text)),
            ));
        }
        let mut sse = SseParser::default();
        loop {
            let data = match h2::next_data(&mut body).await {
                Some(Ok(d)) => d,
                Some(Err(e)) => return Err(transient("sse-h2 body", e)),
                None => return Err(transient("sse-h2", "stream ended before welcome")),
            };
            let mut welcome = false;
            sse.feed(&data, &mut |k, d| self.sse_data(k, d, &mut welcome));
            if welcome {
                return Ok(H2Sse { body, sse });
            }
        }
    }

    async fn run_sse_h2(&self, s: H2Sse) {
        let H2Sse { mut body, mut sse } = s;
        let mut welcome = false;
        loop {
            match h2::next_data(&mut body).await {
                Some(Ok(d)) => sse.feed(&d, &mut |k, d| self.sse_data(k, d, &mut welcome)),
                Some(Err(e)) => {
                    self.sh.closed(format!("sse-h2: {e}"));
                    return;
                }
                None => {
                    self.sh.closed("sse-h2 stream ended".into());
                    return;
                }
            }
        }
    }

    // ---- poll ----

    fn poll_request(&self, cursor: Option<&str>) -> String {
        let mut q = format!("channel={}", url_encode(&self.channel));
        if let Some(c) = cursor {
            q.push_str(&format!(
                "&since={}&timeout={}",
                url_encode(c),
                self.spec.poll_timeout
            ));
        }
        format!(
            "GET /poll?{q} HTTP/1.1\r\nHost: {}\r\nAuthorization: Bearer {}\r\n\r\n",
            self.spec.host(),
            self.token
        )
    }

    /// One poll round trip; returns the status and body.
    async fn poll_once(
        &self,
        c: &mut HttpConn<Conn>,
        cursor: Option<&str>,
    ) -> std::io::Result<(crate::bench::http::Head, Vec<u8>)> {
        self.sh.requests.fetch_add(1, Relaxed);
        c.io.write_all(self.poll_request(cursor).as_bytes()).await?;
        c.read_response().await
    }

    async fn open_poll(&self) -> Result<(HttpConn<Conn>, String), SetupError> {
        let mut c = HttpConn::new(self.connect(self.n).await?);
        let (head, body) = self
            .poll_once(&mut c, None)
            .await
            .map_err(|e| transient("poll", e))?;
        if head.status != 200 {
            return Err(refused(
                "poll",
                format!("HTTP {} {}", head.status, excerpt(&body)),
            ));
        }
        let cursor = string_field(&body, br#""cursor""#)
            .ok_or_else(|| refused("poll", "no cursor in the first response"))?
            .to_owned();
        Ok((c, cursor))
    }

    async fn run_poll(&self, (mut c, mut cursor): (HttpConn<Conn>, String)) {
        let interval = Duration::from_millis(self.spec.poll_interval_ms);
        let mut ticker = (!interval.is_zero()).then(|| {
            // Spread the clients evenly over the interval.
            let phase = Duration::from_micros(rand::random::<u64>() % interval.as_micros() as u64);
            let mut t = tokio::time::interval_at(Instant::now() + phase, interval);
            t.set_missed_tick_behavior(MissedTickBehavior::Delay);
            t
        });
        let mut reconnect = false;
        loop {
            if let Some(t) = ticker.as_mut() {
                t.tick().await;
            }
            if reconnect {
                match self.connect(self.n).await {
                    Ok(io) => {
                        c = HttpConn::new(io);
                    }
                    Err(e) => {
                        self.sh.error(e.key);
                        tokio::time::sleep(Duration::from_secs(1)).await;
                        continue;
                    }
                }
            }
            match self.poll_once(&mut c, Some(&cursor)).await {
                Ok((head, body)) if head.status == 200 => {
                    let mut any = false;
                    each_ts(&body, |ts| {
                        any = true;
                        self.publication(ts);
                    });
                    if !any {
                        self.sh.other.fetch_add(1, Relaxed);
                    }
                    if let Some(cur) = string_field(&body, br#""cursor""#)
                        && cur != cursor
                    {
                        cursor = cur.to_owned();
                    }
                    reconnect = head.close;
                }
                Ok((head, body)) => {
                    self.sh
                        .error(format!("poll HTTP {} {}", head.status, excerpt(&body)));
                    reconnect = head.close;
                    tokio::time::sleep(Duration::from_secs(1)).await;
                }
                Err(e) => {
                    self.sh.error(format!("poll io: {e}"));
                    reconnect = true;
                }
            }
        }
    }
}

enum Ready {
    Ws(WebSocketStream<Conn>),
    WsDeflate(DeflateWs<Conn>),
    Sse(SseStream),
    SseH2(H2Sse),
    Poll((HttpConn<Conn>, String)),
}

async fn session(sess: Sess, sem: Arc<Semaphore>) {
    let Ok(permit) = sem.acquire_owned().await else {
        return;
    };
    let mut attempt = 0;
    let ready = loop {
        attempt += 1;
        let r = tokio::time::timeout(SETUP_TIMEOUT, async {
            match sess.spec.transport {
                Transport::Ws if sess.spec.deflate => {
                    sess.open_ws_deflate().await.map(Ready::WsDeflate)
                }
                Transport::Ws => sess.open_ws().await.map(Ready::Ws),
                Transport::Sse => sess.open_sse().await.map(Ready::Sse),
                Transport::SseH2 => match &sess.h2 {
                    Some(slot) => sess.open_sse_h2(slot).await.map(Ready::SseH2),
                    None => Err(refused("sse-h2", "no connection group (internal)")),
                },
                Transport::Poll => sess.open_poll().await.map(Ready::Poll),
            }
        })
        .await
        .unwrap_or_else(|_| Err(transient("setup", "timed out after 30 s")));
        match r {
            Ok(r) => break Some(r),
            Err(e) if e.retry && attempt < ATTEMPTS => {
                tokio::time::sleep(Duration::from_millis(200 * u64::from(attempt))).await;
            }
            Err(e) => {
                sess.sh.error(e.key);
                break None;
            }
        }
    };
    drop(permit);
    let Some(ready) = ready else {
        sess.sh.failed.fetch_add(1, Relaxed);
        return;
    };
    sess.sh.connected.fetch_add(1, Relaxed);
    match ready {
        Ready::Ws(ws) => sess.run_ws(ws).await,
        Ready::WsDeflate(ws) => sess.run_ws_deflate(ws).await,
        Ready::Sse(s) => sess.run_sse(s).await,
        Ready::SseH2(s) => sess.run_sse_h2(s).await,
        Ready::Poll(p) => sess.run_poll(p).await,
    }
}

fn emit(ev: &Event) {
    let Ok(line) = serde_json::to_string(ev) else {
        return;
    };
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{line}");
    let _ = out.flush();
}

/// Entry point of `switchboard bench worker`.
///
/// # Errors
/// A bad spec on stdin.
pub async fn main() -> Result<()> {
    let mut lines = BufReader::new(tokio::io::stdin()).lines();
    let first = lines
        .next_line()
        .await?
        .context("bench worker: expected a JSON spec line on stdin (internal command)")?;
    let spec: WorkerSpec = serde_json::from_str(&first).context("bench worker: bad spec")?;
    anyhow::ensure!(!spec.sources.is_empty(), "no source addresses");
    let spec = Arc::new(spec);
    let sh = Arc::new(Shared::new());
    let deadline = Instant::now() + Duration::from_secs(spec.lifetime_secs);
    let sem = Arc::new(Semaphore::new(spec.connect_concurrency.max(1)));
    let ttl = Duration::from_secs(spec.token_ttl_secs);
    let tls = spec.tls()?;
    let h2_groups: Vec<Arc<h2::Slot>> = if spec.transport == Transport::SseH2 {
        let per = spec.streams_per_connection.max(1);
        (0..spec.count.div_ceil(per))
            .map(|_| Arc::default())
            .collect()
    } else {
        Vec::new()
    };
    for n in spec.first..spec.first + spec.count {
        let channel = spec.channel_for(n);
        let user = format!("bench-{n}");
        let claims =
            switchboard_core::auth::claims_for(&user, ttl, vec![channel.clone()], Vec::new());
        let token = switchboard_core::auth::mint_hs256(&spec.secret, &claims)?;
        let sess = Sess {
            n,
            spec: spec.clone(),
            sh: sh.clone(),
            tls: tls.clone(),
            h2: h2_groups.get(spec.h2_group(n) as usize).cloned(),
            channel,
            token,
            got: AtomicU64::new(0),
        };
        tokio::spawn(session(sess, sem.clone()));
    }
    let mut ready_sent = false;
    let mut tick = tokio::time::interval(Duration::from_millis(100));
    let mut last = (u64::MAX, 0, 0, 0);
    loop {
        tokio::select! {
            line = lines.next_line() => match line {
                Ok(Some(cmd)) => match cmd.trim() {
                    "stats" => emit(&Event::Stats(sh.stats(false))),
                    "report" => emit(&Event::Stats(sh.stats(true))),
                    "stop" => break,
                    _ => {}
                },
                // The parent went away.
                _ => break,
            },
            _ = tick.tick() => {
                let now = (
                    sh.connected.load(Relaxed),
                    sh.failed.load(Relaxed),
                    sh.received.load(Relaxed),
                    sh.other.load(Relaxed),
                );
                if now != last {
                    last = now;
                    emit(&Event::Progress {
                        connected: now.0,
                        failed: now.1,
                        received: now.2,
                        other: now.3,
                    });
                }
                if !ready_sent && now.0 + now.1 >= spec.count {
                    ready_sent = true;
                    emit(&Event::Ready { connected: now.0, failed: now.1 });
                }
            }
            _ = tokio::time::sleep_until(deadline) => {
                eprintln!("bench worker {}: lifetime of {} s reached, exiting", spec.index, spec.lifetime_secs);
                break;
            }
        }
    }
    // Exit at once: dropping thousands of sockets is the kernel's job, and the blocking stdin
    // reader would keep a graceful runtime shutdown waiting.
    std::process::exit(0)
}
