//! One WebSocket connection: reads client frames into its [`Session`], writes the session's
//! outbox in batches.
//!
//! Memory discipline for idle connections: the read buffer is empty (no capacity) between
//! messages — reads go through a stack buffer and only a partial frame is kept; the write batch
//! is allocated only while writing; command handling is boxed so its (large) future exists only
//! while a command runs. One task per connection, no per-connection timers (the node's
//! housekeeper queues pings and enforces expiry).

use std::future::poll_fn;
use std::io;
use std::pin::Pin;
use std::task::{Poll, ready};

use bytes::{Bytes, BytesMut};
use switchboard_core::{NodeConfig, Outbound, PubItem, Session};
use switchboard_protocol::ChannelName;
use switchboard_protocol::Disconnect;
use switchboard_protocol::push::{PING, encode_disconnect};
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt, ReadBuf};

use super::codec::{self, Frame, Opcode};

/// How long a cut-off slow consumer's in-flight batch may take before the socket is dropped
/// without a close frame.
const SLOW_GRACE: std::time::Duration = std::time::Duration::from_secs(1);
/// Most frames written in one vectored write.
const BATCH: usize = 64;
/// Stack buffer for one read; a partial frame larger than this is accumulated on the heap.
const READ_CHUNK: usize = 2048;

async fn read_some<S: AsyncRead + Unpin>(io: &mut S, buf: &mut BytesMut) -> io::Result<usize> {
    poll_fn(|cx| {
        let mut stack = [0u8; READ_CHUNK];
        let mut rb = ReadBuf::new(&mut stack);
        ready!(Pin::new(&mut *io).poll_read(cx, &mut rb))?;
        buf.extend_from_slice(rb.filled());
        Poll::Ready(Ok(rb.filled().len()))
    })
    .await
}

/// permessage-deflate on one connection: the settings only (no compression state lives in the
/// session, see [`super::deflate`]).
#[derive(Clone, Copy, Debug)]
pub struct Deflate {
    /// `websocket.compression`: compress replies and pushes, and publications of namespaces
    /// that do not say otherwise.
    pub global: bool,
    /// Smallest message worth compressing.
    pub min_size: usize,
    /// Deflate level.
    pub level: u32,
}

impl Deflate {
    /// The frame of `json`: compressed when that is on for it and makes it smaller.
    fn frame(&self, on: bool, json: &[u8]) -> Bytes {
        if on
            && json.len() >= self.min_size
            && let Some(c) = super::deflate::compress(json, self.level)
        {
            return codec::frame_compressed(Opcode::Text, &c);
        }
        codec::frame(Opcode::Text, json)
    }
}

fn plain(p: &PubItem) -> Bytes {
    p.framed
        .get_or_init(|| codec::frame(Opcode::Text, &p.json))
        .clone()
}

/// Whether publications on `channel` are compressed (the namespace's `compression`, else the
/// server-wide setting).
fn compresses(config: &NodeConfig, deflate: &Deflate, channel: &str) -> bool {
    let ns = ChannelName::parse(channel, usize::MAX).map_or("", |c| c.namespace());
    config.namespace(ns).compression.unwrap_or(deflate.global)
}

fn render(item: Outbound, deflate: Option<(&Deflate, &NodeConfig)>, out: &mut Vec<Bytes>) {
    match (item, deflate) {
        (Outbound::Pub(p), None) => out.push(plain(&p)),
        // Compressed once for every subscriber that negotiated the extension: the parameters
        // are the same for all of them.
        (Outbound::Pub(p), Some((d, config))) => out.push(
            p.framed_compressed
                .get_or_init(|| {
                    if compresses(config, d, &p.channel) {
                        d.frame(true, &p.json)
                    } else {
                        plain(&p)
                    }
                })
                .clone(),
        ),
        (Outbound::Event(_, json), d) => {
            out.push(d.map_or_else(
                || codec::frame(Opcode::Text, &json),
                |(d, _)| d.frame(d.global, &json),
            ));
        }
        (Outbound::Ping, _) => {
            out.push(codec::frame(Opcode::Text, PING));
            out.push(codec::frame(Opcode::Ping, b""));
        }
    }
}

enum Step {
    Continue,
    Close(Disconnect),
    /// The peer closed or the socket failed: nothing more can be written.
    Gone,
}

/// Assembles client messages from frames: fragmentation (control frames may arrive between the
/// fragments of a message), the message size limit, permessage-deflate. IO-free, so that it is
/// fuzzed and property-tested on its own (`fuzz/`, `tests/decoders.rs`).
#[derive(Debug)]
pub struct Assembler {
    /// A fragmented message being assembled: its opcode, whether it is compressed, the bytes.
    fragments: Option<(Opcode, bool, BytesMut)>,
    max_message: usize,
}

impl Assembler {
    /// An assembler for messages of at most `max_message` bytes (compressed and inflated).
    pub fn new(max_message: usize) -> Self {
        Self {
            fragments: None,
            max_message,
        }
    }

    /// Takes the next frame [`codec::parse`] returned; returns a complete message (inflated
    /// when compressed) or a control frame, `None` while a fragmented message is incomplete.
    /// A text message's UTF-8 is checked by the caller, on the whole message.
    ///
    /// # Errors
    /// 1002 for a continuation without a started message or a new data frame inside one,
    /// 4504 past the size limit, the errors of [`super::deflate::decompress`].
    pub fn push(&mut self, f: Frame) -> Result<Option<(Opcode, BytesMut)>, Disconnect> {
        let (op, compressed, payload) = match f.opcode {
            Opcode::Ping | Opcode::Pong | Opcode::Close => return Ok(Some((f.opcode, f.payload))),
            Opcode::Continuation => {
                let Some((op, compressed, mut acc)) = self.fragments.take() else {
                    return Err(Disconnect::PROTOCOL_ERROR);
                };
                if acc.len() + f.payload.len() > self.max_message {
                    return Err(Disconnect::TOO_LARGE);
                }
                acc.extend_from_slice(&f.payload);
                if !f.fin {
                    self.fragments = Some((op, compressed, acc));
                    return Ok(None);
                }
                (op, compressed, acc)
            }
            Opcode::Text | Opcode::Binary => {
                if self.fragments.is_some() {
                    return Err(Disconnect::PROTOCOL_ERROR);
                }
                if !f.fin {
                    self.fragments = Some((f.opcode, f.compressed, f.payload));
                    return Ok(None);
                }
                (f.opcode, f.compressed, f.payload)
            }
        };
        if compressed {
            let inflated = super::deflate::decompress(&payload, self.max_message)?;
            return Ok(Some((op, inflated)));
        }
        Ok(Some((op, payload)))
    }
}

struct Conn<S> {
    io: S,
    session: Session,
    rbuf: BytesMut,
    /// Messages being assembled from frames.
    assembler: Assembler,
    max_message: usize,
    /// permessage-deflate, when negotiated.
    deflate: Option<Deflate>,
}

impl<S: AsyncRead + AsyncWrite + Unpin> Conn<S> {
    /// Writes everything queued; returns the session's close reason if it is closed.
    async fn flush(&mut self) -> Result<Option<Disconnect>, io::Error> {
        let outbox = &self.session.handle().outbox;
        let mut items = Vec::new();
        let mut frames = Vec::new();
        loop {
            let closed = outbox.drain(&mut items, BATCH);
            if items.is_empty() {
                return Ok(closed);
            }
            let config = self.session.config();
            let deflate = self.deflate.as_ref().map(|d| (d, config));
            for item in items.drain(..) {
                render(item, deflate, &mut frames);
            }
            // A slow consumer is cut off by the publishers (the outbox closes itself); stop
            // waiting on a socket that does not drain instead of holding the task forever.
            let write = crate::vectored::write_all(&mut self.io, &mut frames);
            tokio::pin!(write);
            loop {
                tokio::select! {
                    r = &mut write => { r?; break; }
                    _ = outbox.wait() => {
                        if outbox.closed() == Some(Disconnect::SLOW) {
                            // Cut off. Give the batch in flight a moment to finish so the
                            // client can still be told why (4002); a socket that stays stuck
                            // cannot take a close frame anyway.
                            // Boxed: a timer only this rare path needs, kept out of the
                            // state every flush carries.
                            let grace = Box::pin(tokio::time::timeout(SLOW_GRACE, &mut write));
                            return match grace.await {
                                Ok(Ok(())) => Ok(Some(Disconnect::SLOW)),
                                _ => Err(io::ErrorKind::TimedOut.into()),
                            };
                        }
                    }
                }
            }
        }
    }

    /// Handles what a completed read brought in. Runs outside any `select!`: a command must
    /// never be cancelled halfway (its reply may be queued while presence or join are not).
    async fn on_read(&mut self, read: std::io::Result<usize>) -> Step {
        match read {
            Ok(0) | Err(_) => return Step::Gone,
            Ok(_) => {}
        }
        self.session.handle().touch();
        let step = self.process_buffer().await;
        if self.rbuf.is_empty() {
            // Give back the capacity: idle connections hold no read buffer.
            self.rbuf = BytesMut::new();
        }
        step
    }

    /// Handles every complete frame in the read buffer.
    async fn process_buffer(&mut self) -> Step {
        loop {
            let frame = match codec::parse(&mut self.rbuf, self.max_message, self.deflate.is_some())
            {
                Ok(Some(f)) => f,
                Ok(None) => return Step::Continue,
                Err(d) => return Step::Close(d),
            };
            let (op, payload) = match self.assembler.push(frame) {
                Ok(Some(m)) => m,
                Ok(None) => continue,
                Err(d) => return Step::Close(d),
            };
            match op {
                Opcode::Text => {
                    let Ok(text) = std::str::from_utf8(&payload) else {
                        return Step::Close(Disconnect::INVALID_UTF8);
                    };
                    // Boxed: the command future is large and must not live in the idle task.
                    // Bound first, or the unboxed temporary stays in this future's state.
                    let handling = Box::pin(self.session.handle_frame(text));
                    if let Err(d) = handling.await {
                        return Step::Close(d);
                    }
                }
                Opcode::Binary => return Step::Close(Disconnect::UNSUPPORTED_DATA),
                Opcode::Ping => {
                    let pong = codec::frame(Opcode::Pong, &payload);
                    if self.io.write_all(&pong).await.is_err() {
                        return Step::Gone;
                    }
                }
                Opcode::Pong | Opcode::Continuation => {}
                Opcode::Close => {
                    let echo = codec::close_frame(codec::close_reply_code(&payload), "");
                    let _ = self.io.write_all(&echo).await;
                    return Step::Gone;
                }
            }
        }
    }

    async fn close(&mut self, d: &Disconnect) {
        let mut frames = vec![
            // Never compressed: it must reach clients that fail to decompress, too.
            codec::frame(
                Opcode::Text,
                &encode_disconnect(d, self.session.handle().reconnect_delay_ms()),
            ),
            codec::close_frame(d.code, &d.reason),
        ];
        let _ = tokio::time::timeout(std::time::Duration::from_secs(2), async {
            let _ = crate::vectored::write_all(&mut self.io, &mut frames).await;
            let _ = self.io.shutdown().await;
        })
        .await;
    }
}

/// Runs a connection until it ends. `initial` holds bytes that arrived with the handshake
/// (a copy: the connection must not keep hyper's read buffer alive). `deflate`: the settings
/// of a negotiated permessage-deflate.
pub async fn run<S: AsyncRead + AsyncWrite + Unpin>(
    io: S,
    session: Session,
    initial: BytesMut,
    deflate: Option<Deflate>,
) {
    let auth_deadline = tokio::time::Instant::now() + session.config().client.auth_timeout;
    let max_message = session.config().limits.max_message_size;
    let mut conn = Conn {
        io,
        session,
        rbuf: initial,
        assembler: Assembler::new(max_message),
        max_message,
        deflate,
    };
    let mut reason = match conn.process_buffer().await {
        Step::Continue => None,
        Step::Close(d) => Some(Some(d)),
        Step::Gone => Some(None),
    };
    let mut broken = false;
    let handle = conn.session.handle().clone();
    while reason.is_none() {
        match conn.flush().await {
            Ok(Some(d)) => reason = Some(Some(d)),
            Ok(None) => {}
            Err(_) => {
                // A write was abandoned mid-frame: nothing more can be framed on this socket.
                broken = true;
                reason = Some(conn.session.handle().outbox.closed());
            }
        }
        if reason.is_some() {
            break;
        }
        let connected = conn.session.is_connected();
        // Only cancel-safe futures race here: a read either completed (its bytes are in the
        // buffer) or did nothing.
        let read = tokio::select! {
            r = read_some(&mut conn.io, &mut conn.rbuf) => Some(r),
            _ = handle.outbox.wait() => None,
            _ = tokio::time::sleep_until(auth_deadline), if !connected => {
                reason = Some(Some(Disconnect::AUTH_TIMEOUT));
                None
            }
        };
        if let Some(r) = read {
            match conn.on_read(r).await {
                Step::Continue => {}
                Step::Close(d) => reason = Some(Some(d)),
                Step::Gone => reason = Some(None),
            }
        }
    }
    // Boxed: the closing steps are large futures that an idle connection's task would
    // otherwise carry in its state for its whole life.
    // Bound first, or the unboxed temporary stays in this future's state.
    let finishing = Box::pin(finish(conn, reason.flatten(), broken));
    finishing.await;
}

/// Tells the client why (unless the socket is broken) and closes the session.
async fn finish<S: AsyncRead + AsyncWrite + Unpin>(
    mut conn: Conn<S>,
    reason: Option<Disconnect>,
    broken: bool,
) {
    if let Some(d) = reason.as_ref().filter(|_| !broken) {
        // Flush what is queued (e.g. an error reply) before the disconnect.
        let _ = tokio::time::timeout(std::time::Duration::from_secs(1), conn.flush()).await;
        conn.close(d).await;
    }
    conn.session.close(reason.as_ref()).await;
}
