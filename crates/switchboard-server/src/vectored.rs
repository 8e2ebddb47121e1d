//! Writing many shared `Bytes` segments with vectored writes, the way the fan-out path wants:
//! one syscall for a batch of frames, no copying into a per-connection buffer.

use std::io::{self, IoSlice};

use bytes::Bytes;
use tokio::io::{AsyncWrite, AsyncWriteExt};

/// Segments handed to one `writev`.
const MAX_SLICES: usize = 256;

/// Writes every segment in order, handling partial writes; leaves `segments` empty.
///
/// # Errors
/// The socket's error; what was written stays written.
///
/// # Cancel safety
/// Not cancel-safe: a cancelled call may have written part of a segment.
pub async fn write_all<S: AsyncWrite + Unpin>(
    io: &mut S,
    segments: &mut Vec<Bytes>,
) -> io::Result<()> {
    let mut first = 0;
    while first < segments.len() {
        let slices: Vec<IoSlice<'_>> = segments[first..]
            .iter()
            .take(MAX_SLICES)
            .map(|b| IoSlice::new(b))
            .collect();
        let mut n = io.write_vectored(&slices).await?;
        if n == 0 {
            return Err(io::ErrorKind::WriteZero.into());
        }
        while n > 0 {
            let len = segments[first].len();
            if n >= len {
                n -= len;
                first += 1;
            } else {
                segments[first] = segments[first].split_off(n);
                n = 0;
            }
        }
    }
    segments.clear();
    Ok(())
}
