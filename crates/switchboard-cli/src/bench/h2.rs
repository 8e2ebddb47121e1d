//! The HTTP/2 client of `--transport sse-h2`: many SSE streams share one connection, as
//! browsers do over HTTPS (h2 via ALPN on `https://`, h2c with prior knowledge on `http://`).
//!
//! Sessions `first + k·S .. first + (k+1)·S` of a worker share connection `k`, S being
//! `--streams-per-connection`. The first of them that needs the connection opens it (under the
//! [`Slot`]'s lock, so exactly one opens it); the others wait and then open their stream on it.
//! A stream whose connection died opens a new one when it retries.

use std::convert::Infallible;
use std::future::{Future, poll_fn};
use std::pin::Pin;
use std::task::{Context, Poll};

use hyper::body::{Body, Bytes, Frame, Incoming, SizeHint};
use hyper::client::conn::http2::SendRequest;
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::sync::Mutex;

/// Streams per connection by default (the node allows 200: hyper's default
/// `SETTINGS_MAX_CONCURRENT_STREAMS`).
pub const DEFAULT_STREAMS_PER_CONNECTION: u64 = 100;

/// The empty body of a GET.
#[derive(Debug, Clone, Copy, Default)]
pub struct NoBody;

impl Body for NoBody {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        Poll::Ready(None)
    }

    fn is_end_stream(&self) -> bool {
        true
    }

    fn size_hint(&self) -> SizeHint {
        SizeHint::with_exact(0)
    }
}

/// Sends requests on one HTTP/2 connection.
pub type Sender = SendRequest<NoBody>;

/// One HTTP/2 connection shared by a group of sessions, opened on first use.
#[derive(Default)]
pub struct Slot(Mutex<Option<Sender>>);

impl Slot {
    /// The group's connection: the open one, or a new one made by `connect`.
    ///
    /// # Errors
    /// Whatever `connect` returns.
    pub async fn sender<E, F>(&self, connect: impl FnOnce() -> F) -> Result<Sender, E>
    where
        F: Future<Output = Result<Sender, E>>,
    {
        let mut held = self.0.lock().await;
        if let Some(s) = held.as_ref().filter(|s| !s.is_closed()) {
            return Ok(s.clone());
        }
        let s = connect().await?;
        *held = Some(s.clone());
        Ok(s)
    }
}

/// HTTP/2 handshake on `io`; the connection runs in its own task until it ends.
///
/// # Errors
/// The handshake failed.
pub async fn handshake<T>(io: T) -> hyper::Result<Sender>
where
    T: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let (tx, conn) = hyper::client::conn::http2::Builder::new(TokioExecutor::new())
        .handshake(TokioIo::new(io))
        .await?;
    // Its streams see the end of the connection as errors on their bodies.
    tokio::spawn(async move {
        let _ = conn.await;
    });
    Ok(tx)
}

/// The next DATA of a response body (trailers are skipped); `None` at its end.
pub async fn next_data(body: &mut Incoming) -> Option<hyper::Result<Bytes>> {
    loop {
        match poll_fn(|cx| Pin::new(&mut *body).poll_frame(cx)).await? {
            Ok(f) => {
                if let Ok(d) = f.into_data() {
                    return Some(Ok(d));
                }
            }
            Err(e) => return Some(Err(e)),
        }
    }
}
