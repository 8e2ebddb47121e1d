//! An in-process TCP proxy in front of each node. Every client connection of a run goes
//! through one, so the nemesis can cut connections abruptly: both sockets are closed with
//! `SO_LINGER` 0, i.e. a TCP reset to the client and to the node, with whatever was in
//! flight lost — what a NAT timeout, a load balancer restart or a flaky mobile link does.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use anyhow::Result;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

/// A proxy from a local port to a node's port.
pub struct Proxy {
    /// Port clients connect to.
    pub port: u16,
    conns: Arc<Registry>,
    accept: JoinHandle<()>,
}

impl Proxy {
    /// Listens on a free port of 127.0.0.1 and forwards to `127.0.0.1:target`.
    ///
    /// # Errors
    /// The listener could not be bound.
    pub async fn start(target: u16) -> Result<Self> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let port = listener.local_addr()?.port();
        let conns = Arc::new(Registry::default());
        let reg = conns.clone();
        let accept = tokio::spawn(async move {
            loop {
                let Ok((client, _)) = listener.accept().await else {
                    tokio::time::sleep(Duration::from_millis(10)).await;
                    continue;
                };
                tokio::spawn(forward(client, target, reg.clone()));
            }
        });
        Ok(Self {
            port,
            conns,
            accept,
        })
    }

    /// Cuts each open connection with probability `share` (1.0: all); returns how many.
    pub fn cut(&self, share: f64) -> usize {
        let mut cut = 0;
        let mut map = self.conns.map.lock().unwrap_or_else(|e| e.into_inner());
        let ids: Vec<u64> = map.keys().copied().collect();
        for id in ids {
            if (share >= 1.0 || rand::random::<f64>() < share)
                && let Some(tx) = map.remove(&id)
            {
                let _ = tx.send(());
                cut += 1;
            }
        }
        cut
    }

    /// Connections open now.
    pub fn open(&self) -> usize {
        self.conns.map.lock().map_or(0, |m| m.len())
    }

    /// Connections accepted so far.
    pub fn accepted(&self) -> u64 {
        self.conns.next.load(Ordering::Relaxed)
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.accept.abort();
        self.cut(1.0);
    }
}

/// Open connections and their cut switches.
#[derive(Default)]
struct Registry {
    map: std::sync::Mutex<HashMap<u64, oneshot::Sender<()>>>,
    next: AtomicU64,
}

/// Closes with a reset instead of a FIN.
fn reset(s: &TcpStream) {
    let _ = socket2::SockRef::from(s).set_linger(Some(Duration::ZERO));
}

async fn forward(mut client: TcpStream, target: u16, reg: Arc<Registry>) {
    let upstream = tokio::time::timeout(
        Duration::from_secs(2),
        TcpStream::connect(("127.0.0.1", target)),
    )
    .await;
    let Ok(Ok(mut upstream)) = upstream else {
        // The node is down: the client sees a reset, as without a proxy it would see a
        // refused connection.
        reset(&client);
        return;
    };
    let _ = client.set_nodelay(true);
    let _ = upstream.set_nodelay(true);
    let id = reg.next.fetch_add(1, Ordering::Relaxed);
    let (tx, rx) = oneshot::channel();
    reg.map
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .insert(id, tx);
    tokio::select! {
        r = tokio::io::copy_bidirectional(&mut client, &mut upstream) => {
            if r.is_err() {
                reset(&client);
                reset(&upstream);
            }
        }
        _ = rx => {
            reset(&client);
            reset(&upstream);
        }
    }
    reg.map
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .remove(&id);
}
