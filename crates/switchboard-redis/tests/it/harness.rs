//! Starts real `redis-server` processes for the tests.
//!
//! Each server runs under a small `sh` wrapper that kills it (SIGKILL) as soon as the wrapper's
//! stdin closes, i.e. when the server handle is dropped or the test process exits, even for
//! servers kept in a `static`. `REDIS_SERVER` / `REDIS_CLI` override the binaries' paths.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use switchboard_redis::{RedisConfig, RedisEngine};

fn redis_server_bin() -> String {
    std::env::var("REDIS_SERVER").unwrap_or_else(|_| "redis-server".into())
}

pub fn redis_cli_bin() -> String {
    std::env::var("REDIS_CLI").unwrap_or_else(|_| "redis-cli".into())
}

/// A port that is free now (and whose cluster bus port, +10000, is free too).
pub fn free_port() -> u16 {
    loop {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = l.local_addr().unwrap().port();
        if port < 55_000 && TcpListener::bind(("127.0.0.1", port + 10_000)).is_ok() {
            return port;
        }
    }
}

/// A fresh temporary directory.
pub fn temp_dir(tag: &str) -> PathBuf {
    static N: AtomicU32 = AtomicU32::new(0);
    let dir = std::env::temp_dir().join(format!(
        "sb-redis-{tag}-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    ));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// How to run a server.
#[derive(Clone, Debug, Default)]
pub struct ServerOpts {
    /// AOF with fsync on every write.
    pub aof: bool,
    /// `--cluster-enabled yes`.
    pub cluster: bool,
    /// Remove the server's directory when the server is killed (also at process exit, for
    /// servers kept in a `static`). Not for servers that are restarted in the same directory.
    pub remove_dir_on_exit: bool,
}

/// A running `redis-server`.
pub struct RedisServer {
    pub port: u16,
    pub dir: PathBuf,
    pid: u32,
    child: Child,
    stdin: Option<ChildStdin>,
}

impl RedisServer {
    /// Starts a server on a free port in a new temp dir.
    pub fn start(opts: &ServerOpts) -> Self {
        Self::start_at(free_port(), &temp_dir("srv"), opts)
    }

    /// Starts a server on `port` with `dir` as its working dir (reuse both to "restart").
    pub fn start_at(port: u16, dir: &Path, opts: &ServerOpts) -> Self {
        let mut args: Vec<String> = vec![
            "--port".into(),
            port.to_string(),
            "--bind".into(),
            "127.0.0.1".into(),
            "--save".into(),
            String::new(),
            "--dir".into(),
            dir.display().to_string(),
            "--logfile".into(),
            "redis.log".into(),
            "--daemonize".into(),
            "no".into(),
        ];
        if opts.aof {
            args.extend(["--appendonly", "yes", "--appendfsync", "always"].map(String::from));
        } else {
            args.extend(["--appendonly", "no"].map(String::from));
        }
        if opts.cluster {
            args.extend(
                [
                    "--cluster-enabled",
                    "yes",
                    "--cluster-config-file",
                    "nodes.conf",
                    "--cluster-node-timeout",
                    "2000",
                ]
                .map(String::from),
            );
        }
        let script = r#""$0" "$@" & pid=$!; echo $pid; read _unused; kill -9 $pid 2>/dev/null; wait $pid 2>/dev/null; if [ -n "$SB_REMOVE_DIR" ]; then rm -rf "$SB_REMOVE_DIR"; fi"#;
        let mut cmd = Command::new("sh");
        if opts.remove_dir_on_exit {
            cmd.env("SB_REMOVE_DIR", dir);
        }
        let mut child = cmd
            .arg("-c")
            .arg(script)
            .arg(redis_server_bin())
            .args(&args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("sh runs");
        let stdin = child.stdin.take();
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let pid: u32 = line.trim().parse().expect("wrapper prints the pid");
        let server = Self {
            port,
            dir: dir.to_owned(),
            pid,
            child,
            stdin,
        };
        server.wait_ready();
        server
    }

    fn wait_ready(&self) {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Some(reply) = raw_command(self.port, "PING")
                && reply.starts_with("+PONG")
            {
                return;
            }
            if Instant::now() > deadline {
                let log = std::fs::read_to_string(self.dir.join("redis.log")).unwrap_or_default();
                panic!(
                    "redis-server on port {} did not answer PING (is `{}` installed?)\n{log}",
                    self.port,
                    redis_server_bin()
                );
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// SIGKILLs the server (a crash) and waits until its port is closed.
    pub fn kill(mut self) {
        self.kill_now();
    }

    fn kill_now(&mut self) {
        let _ = Command::new("kill")
            .arg("-9")
            .arg(self.pid.to_string())
            .status();
        self.stdin.take();
        let _ = self.child.wait();
        let deadline = Instant::now() + Duration::from_secs(5);
        while TcpStream::connect(("127.0.0.1", self.port)).is_ok() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        if self.stdin.is_some() {
            self.kill_now();
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }
}

/// Sends one inline command and returns the first chunk of the reply.
pub fn raw_command(port: u16, cmd: &str) -> Option<String> {
    let mut s = TcpStream::connect(("127.0.0.1", port)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(2))).ok()?;
    s.write_all(format!("{cmd}\r\n").as_bytes()).ok()?;
    let mut buf = [0u8; 4096];
    let n = s.read(&mut buf).ok()?;
    Some(String::from_utf8_lossy(&buf[..n]).into_owned())
}

/// One server shared by every test of the binary that does not kill it.
pub fn shared() -> &'static RedisServer {
    static SHARED: OnceLock<RedisServer> = OnceLock::new();
    SHARED.get_or_init(|| {
        RedisServer::start(&ServerOpts {
            remove_dir_on_exit: true,
            ..ServerOpts::default()
        })
    })
}

/// A prefix no other engine of this run uses.
pub fn unique_prefix() -> String {
    format!("t{}", switchboard_core::engine::memory::new_epoch())
}

/// Config for an engine on `url` with a unique prefix.
pub fn config(url: String) -> RedisConfig {
    RedisConfig {
        url,
        prefix: unique_prefix(),
        ..RedisConfig::default()
    }
}

/// Logs to the test output when `RUST_LOG` is set.
pub fn init_logs() {
    if std::env::var_os("RUST_LOG").is_some() {
        let _ = tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
            .with_test_writer()
            .try_init();
    }
}

/// A fresh engine on the shared server.
pub async fn make_engine() -> RedisEngine {
    let url = shared().url();
    RedisEngine::connect(config(url)).await.expect("connects")
}
