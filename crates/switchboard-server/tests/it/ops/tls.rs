//! Built-in TLS: https and wss with a throwaway CA that the clients verify, and certificate
//! reload (what SIGHUP does) that keeps established sessions while new handshakes get the new
//! certificate.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use futures_util::{SinkExt, StreamExt};
use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, DnType, IsCa, KeyPair};
use rustls_pki_types::{CertificateDer, ServerName};
use serde_json::{Value, json};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;
use tokio_rustls::client::TlsStream;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::Message;

use crate::harness::*;

/// A test CA that issues server certificates for `localhost` and 127.0.0.1.
struct Ca {
    issuer: CertifiedIssuer<'static, KeyPair>,
}

impl Ca {
    fn new() -> Self {
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params
            .distinguished_name
            .push(DnType::CommonName, "switchboard test CA");
        let issuer = CertifiedIssuer::self_signed(params, KeyPair::generate().unwrap()).unwrap();
        Self { issuer }
    }

    fn pem(&self) -> String {
        self.issuer.pem()
    }

    /// Issues a leaf certificate named `cn`; writes it and its key to `dir`.
    fn issue(&self, cn: &str, dir: &Path) -> (PathBuf, PathBuf, CertificateDer<'static>) {
        let mut params =
            CertificateParams::new(vec!["localhost".to_string(), "127.0.0.1".to_string()]).unwrap();
        params.distinguished_name.push(DnType::CommonName, cn);
        let key = KeyPair::generate().unwrap();
        let cert = params.signed_by(&key, &self.issuer).unwrap();
        let (c, k) = (dir.join("cert.pem"), dir.join("key.pem"));
        // Write next to the target and rename, as a certificate manager would.
        std::fs::write(dir.join("cert.tmp"), cert.pem()).unwrap();
        std::fs::write(dir.join("key.tmp"), key.serialize_pem()).unwrap();
        std::fs::rename(dir.join("cert.tmp"), &c).unwrap();
        std::fs::rename(dir.join("key.tmp"), &k).unwrap();
        (c, k, cert.der().clone())
    }

    fn client_config(&self) -> Arc<rustls::ClientConfig> {
        let mut roots = rustls::RootCertStore::empty();
        roots.add(self.issuer.der().clone()).unwrap();
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        Arc::new(
            rustls::ClientConfig::builder_with_provider(provider)
                .with_safe_default_protocol_versions()
                .unwrap()
                .with_root_certificates(roots)
                .with_no_client_auth(),
        )
    }
}

/// A verified TLS connection to the node; returns it with the certificate the server showed.
async fn tls_connect(ca: &Ca, addr: SocketAddr) -> (TlsStream<TcpStream>, CertificateDer<'static>) {
    let tcp = TcpStream::connect(addr).await.unwrap();
    let name = ServerName::try_from("localhost").unwrap();
    let tls = TlsConnector::from(ca.client_config())
        .connect(name, tcp)
        .await
        .expect("the certificate verifies against the test CA");
    let leaf = tls.get_ref().1.peer_certificates().unwrap()[0].clone();
    (tls, leaf)
}

type Wss = WebSocketStream<TlsStream<TcpStream>>;

async fn wss(ca: &Ca, addr: SocketAddr) -> (Wss, CertificateDer<'static>) {
    let (tls, leaf) = tls_connect(ca, addr).await;
    let url = format!("wss://localhost:{}/ws", addr.port());
    let (mut ws, _) = tokio_tungstenite::client_async(url, tls).await.unwrap();
    let hello = request(
        &mut ws,
        json!({"id": 1, "op": "connect", "token": token("tls", &[], &[], 3600)}),
    )
    .await;
    assert!(hello.get("ok").is_some(), "{hello}");
    (ws, leaf)
}

/// The next JSON message that is not an app-level ping.
async fn next(ws: &mut Wss) -> Value {
    loop {
        let m = tokio::time::timeout(WAIT, ws.next())
            .await
            .expect("message in time")
            .expect("open")
            .unwrap();
        if let Message::Text(t) = m {
            let v: Value = serde_json::from_str(&t).unwrap();
            if v["op"] != "ping" {
                return v;
            }
        }
    }
}

async fn request(ws: &mut Wss, cmd: Value) -> Value {
    ws.send(Message::text(cmd.to_string())).await.unwrap();
    next(ws).await
}

#[tokio::test]
async fn https_and_wss_verify_and_a_reload_keeps_sessions_while_new_handshakes_get_the_new_cert() {
    let dir = super::temp_dir("tls");
    let ca = Ca::new();
    let (cert, key, first) = ca.issue("first", &dir);
    let s = TestServer::with(|c| {
        c.tls_cert = Some(cert.clone());
        c.tls_key = Some(key.clone());
    })
    .await;
    let addr = s.running().addr;

    // https with a client that trusts only the test CA.
    let https = reqwest::Client::builder()
        .tls_certs_only([reqwest::Certificate::from_pem(ca.pem().as_bytes()).unwrap()])
        .resolve("localhost", addr)
        .build()
        .unwrap();
    let base = format!("https://localhost:{}", addr.port());
    let r = https.get(format!("{base}/health")).send().await.unwrap();
    assert_eq!(r.status(), 200);
    let r = https
        .post(format!("{base}/api/publish"))
        .header("X-API-Key", API_KEY)
        .json(&json!({"channel": "live:tls", "data": {"n": 0}}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    // A client that does not trust the CA is refused by its own verification.
    let strict = reqwest::Client::builder()
        .tls_certs_only([])
        .resolve("localhost", addr)
        .build()
        .unwrap();
    assert!(strict.get(format!("{base}/health")).send().await.is_err());

    // A wss session on the first certificate.
    let (mut old, shown) = wss(&ca, addr).await;
    assert_eq!(shown, first);
    let r = request(
        &mut old,
        json!({"id": 2, "op": "subscribe", "channel": "live:tls"}),
    )
    .await;
    assert!(r.get("ok").is_some(), "{r}");

    // Renew the certificate on disk and reload, as SIGHUP does.
    let (_, _, second) = ca.issue("second", &dir);
    assert_ne!(first, second);
    assert!(s.running().reload_tls().expect("reload"));

    // New handshakes get the new certificate; the old session lives on.
    let (_new, shown) = wss(&ca, addr).await;
    assert_eq!(shown, second);
    let r = https.get(format!("{base}/health")).send().await.unwrap();
    assert_eq!(r.status(), 200);
    s.node()
        .publish_json("live:tls", &json!({"n": 1}), None)
        .await
        .unwrap();
    let p = next(&mut old).await;
    assert_eq!(
        (p["op"].as_str(), p["data"]["n"].as_u64()),
        (Some("pub"), Some(1))
    );

    // Broken files are refused and the current certificate stays in use.
    std::fs::write(&cert, "not a certificate").unwrap();
    assert!(s.running().reload_tls().is_err());
    let (_, shown) = tls_connect(&ca, addr).await;
    assert_eq!(shown, second);
    let _ = std::fs::remove_dir_all(&dir);
}

/// Issue 10: HTTP/2 negotiated by ALPN over TLS. Ten SSE streams, a poll, a command, a ticket
/// and a publish share one connection, and every stream receives.
#[tokio::test]
async fn http2_over_tls_multiplexes_sse_streams_and_requests() {
    let dir = super::temp_dir("h2");
    let ca = Ca::new();
    let (cert, key, _) = ca.issue("h2", &dir);
    let s = TestServer::with(|c| {
        c.tls_cert = Some(cert.clone());
        c.tls_key = Some(key.clone());
    })
    .await;
    let addr = s.running().addr;
    let client = reqwest::Client::builder()
        .tls_certs_only([reqwest::Certificate::from_pem(ca.pem().as_bytes()).unwrap()])
        .resolve("localhost", addr)
        .build()
        .unwrap();
    let front = TestServer {
        running: None,
        base: format!("https://localhost:{}", addr.port()),
        http: client,
    };
    super::http2::multiplexed_session(&front, &s).await;
}
