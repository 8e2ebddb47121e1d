//! The processes under test: one `redis-server` and the `switchboard` nodes.
//!
//! Every process runs under a small `sh` wrapper that SIGKILLs it as soon as the wrapper's
//! stdin (a pipe held by this process) closes: when its handle is dropped, when the checker
//! panics, or when the checker itself is killed. Nothing outlives a run. The wrapper prints
//! the real process id first, so signals (`kill -9`, SIGTERM, SIGSTOP/SIGCONT) reach the
//! process itself, and exits with the process's status, so waiting on the wrapper waits on
//! the process (a stopped process does not count as exited).

use std::fs::OpenOptions;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::{ExitStatus, Stdio};
use std::time::Duration;

use anyhow::{Context as _, Result, anyhow, bail};
use tokio::io::{AsyncBufReadExt as _, AsyncReadExt as _, AsyncWriteExt as _, BufReader};
use tokio::process::{Child, ChildStdin, Command};
use tokio::time::Instant;

/// Runs `"$0" "$@"` with output appended to `$SB_LOG`; kills it when stdin closes.
const WRAPPER: &str = r#"exec 3<&0
"$0" "$@" >>"$SB_LOG" 2>&1 3<&- </dev/null &
pid=$!
echo $pid
( read _x <&3; kill -9 $pid 2>/dev/null ) &
watch=$!
exec 3<&-
wait $pid
rc=$?
kill $watch 2>/dev/null
exit $rc"#;

/// A process under the wrapper.
pub struct Guarded {
    wrapper: Child,
    pid: u32,
    _stdin: ChildStdin,
}

impl Guarded {
    /// Starts `program args` with `env` (and without any inherited `SWITCHBOARD_*`
    /// variable), output appended to `log`.
    ///
    /// # Errors
    /// The wrapper could not start or did not report the process id.
    pub async fn spawn(
        program: &Path,
        args: &[String],
        env: &[(&str, String)],
        log: &Path,
    ) -> Result<Self> {
        let mut cmd = Command::new("sh");
        cmd.arg("-c")
            .arg(WRAPPER)
            .arg(program)
            .args(args)
            .env("SB_LOG", log)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .kill_on_drop(true);
        // A node reads every SWITCHBOARD_* variable as configuration (and refuses unknown
        // ones, such as SWITCHBOARD_BIN): only what is set here reaches it.
        for (k, _) in std::env::vars_os() {
            if k.to_string_lossy().starts_with("SWITCHBOARD_") {
                cmd.env_remove(k);
            }
        }
        for (k, v) in env {
            cmd.env(k, v);
        }
        let mut wrapper = cmd.spawn().context("cannot run sh")?;
        let stdin = wrapper.stdin.take().context("wrapper stdin")?;
        let stdout = wrapper.stdout.take().context("wrapper stdout")?;
        let mut line = String::new();
        tokio::time::timeout(
            Duration::from_secs(10),
            BufReader::new(stdout).read_line(&mut line),
        )
        .await
        .context("the wrapper did not start")??;
        let pid = line
            .trim()
            .parse()
            .with_context(|| format!("wrapper printed {line:?} instead of a pid"))?;
        Ok(Self {
            wrapper,
            pid,
            _stdin: stdin,
        })
    }

    /// The process id.
    pub fn pid(&self) -> u32 {
        self.pid
    }

    /// Sends `signal` (`KILL`, `TERM`, `STOP`, `CONT`) to the process.
    ///
    /// # Errors
    /// `kill` failed (the process is gone).
    pub async fn signal(&self, signal: &str) -> Result<()> {
        let status = Command::new("kill")
            .args(["-s", signal, &self.pid.to_string()])
            .stderr(Stdio::null())
            .status()
            .await
            .context("cannot run kill")?;
        if !status.success() {
            bail!("kill -s {signal} {} failed", self.pid);
        }
        Ok(())
    }

    /// Waits up to `limit` for the process to exit.
    pub async fn wait_exit(&mut self, limit: Duration) -> Option<ExitStatus> {
        tokio::time::timeout(limit, self.wrapper.wait())
            .await
            .ok()
            .and_then(Result::ok)
    }

    /// Whether the process has exited.
    pub fn exited(&mut self) -> bool {
        !matches!(self.wrapper.try_wait(), Ok(None))
    }

    /// SIGKILLs the process and waits for it.
    pub async fn kill(&mut self) {
        let _ = self.signal("KILL").await;
        if self.wait_exit(Duration::from_secs(10)).await.is_none() {
            let _ = self.wrapper.start_kill();
        }
    }
}

/// A port on 127.0.0.1 that was free a moment ago.
pub fn free_port() -> Result<u16> {
    let l = std::net::TcpListener::bind("127.0.0.1:0")?;
    Ok(l.local_addr()?.port())
}

fn append_line(log: &Path, text: &str) {
    if let Ok(mut f) = OpenOptions::new().create(true).append(true).open(log) {
        let _ = writeln!(f, "{text}");
    }
}

fn tail(log: &Path) -> String {
    let text = std::fs::read_to_string(log).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(20)..].join("\n")
}

/// The `redis-server` of a run: AOF with an fsync per write, so a `kill -9` loses nothing
/// acknowledged; a wipe deletes its files before the restart (a restart without persistence).
pub struct Redis {
    /// Port on 127.0.0.1.
    pub port: u16,
    dir: PathBuf,
    bin: PathBuf,
    proc: Option<Guarded>,
}

impl Redis {
    /// Starts it in `dir`.
    ///
    /// # Errors
    /// `redis-server` is missing or did not answer PING.
    pub async fn start(bin: PathBuf, dir: PathBuf) -> Result<Self> {
        std::fs::create_dir_all(&dir)?;
        let mut r = Self {
            port: free_port()?,
            dir,
            bin,
            proc: None,
        };
        r.launch().await?;
        Ok(r)
    }

    /// `redis://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    fn log(&self) -> PathBuf {
        self.dir.join("redis.log")
    }

    async fn launch(&mut self) -> Result<()> {
        let args: Vec<String> = [
            "--port",
            &self.port.to_string(),
            "--bind",
            "127.0.0.1",
            "--dir",
            &self.dir.display().to_string(),
            "--appendonly",
            "yes",
            "--appendfsync",
            "always",
            "--save",
            "",
            "--daemonize",
            "no",
            "--protected-mode",
            "no",
        ]
        .map(String::from)
        .to_vec();
        let log = self.log();
        append_line(&log, "=== switchboard-chaos: start");
        let proc = Guarded::spawn(&self.bin, &args, &[], &log)
            .await
            .with_context(|| format!("cannot start {}", self.bin.display()))?;
        self.proc = Some(proc);
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if ping(self.port).await {
                return Ok(());
            }
            if self.proc.as_mut().is_some_and(Guarded::exited) || Instant::now() > deadline {
                bail!(
                    "redis-server ({}) did not answer PING on port {} (is it installed? REDIS_SERVER overrides the path)\n{}",
                    self.bin.display(),
                    self.port,
                    tail(&log)
                );
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// `kill -9`, then a restart on the same port; with `wipe`, its files are deleted first.
    ///
    /// # Errors
    /// The restart failed.
    pub async fn crash_and_restart(&mut self, wipe: bool, down: Duration) -> Result<()> {
        if let Some(mut p) = self.proc.take() {
            p.kill().await;
        }
        if wipe {
            for entry in std::fs::read_dir(&self.dir)? {
                let path = entry?.path();
                if path.file_name().is_some_and(|n| n == "redis.log") {
                    continue;
                }
                if path.is_dir() {
                    std::fs::remove_dir_all(&path)?;
                } else {
                    std::fs::remove_file(&path)?;
                }
            }
        }
        tokio::time::sleep(down).await;
        self.launch().await
    }

    /// Kills it.
    pub async fn stop(&mut self) {
        if let Some(mut p) = self.proc.take() {
            p.kill().await;
        }
    }
}

/// PING over a raw connection.
async fn ping(port: u16) -> bool {
    let attempt = async {
        let mut s = tokio::net::TcpStream::connect(("127.0.0.1", port)).await?;
        s.write_all(b"PING\r\n").await?;
        let mut buf = [0u8; 64];
        let n = s.read(&mut buf).await?;
        std::io::Result::Ok(buf[..n].starts_with(b"+PONG"))
    };
    matches!(
        tokio::time::timeout(Duration::from_secs(1), attempt).await,
        Ok(Ok(true))
    )
}

/// How nodes are started.
#[derive(Clone, Debug)]
pub struct NodeSpec {
    /// The `switchboard` binary.
    pub bin: PathBuf,
    /// The config file.
    pub config: PathBuf,
    /// Where logs go.
    pub dir: PathBuf,
}

/// One `switchboard serve` node, restarted on the same port.
pub struct Node {
    /// Index (name `node-{index}`).
    pub index: usize,
    /// Port on 127.0.0.1.
    pub port: u16,
    spec: NodeSpec,
    proc: Option<Guarded>,
    starts: u32,
    http: reqwest::Client,
}

impl Node {
    /// Starts node `index` and waits until it is ready.
    ///
    /// # Errors
    /// It did not become ready.
    pub async fn start(index: usize, spec: NodeSpec) -> Result<Self> {
        let mut n = Self {
            index,
            port: free_port()?,
            spec,
            proc: None,
            starts: 0,
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(2))
                .build()?,
        };
        n.launch().await?;
        Ok(n)
    }

    /// The node's log file.
    pub fn log(&self) -> PathBuf {
        self.spec.dir.join(format!("node-{}.log", self.index))
    }

    /// (Re)starts the process on its port and waits for `/ready`.
    ///
    /// # Errors
    /// The binary did not start or never became ready.
    pub async fn launch(&mut self) -> Result<()> {
        self.starts += 1;
        let log = self.log();
        append_line(
            &log,
            &format!("=== switchboard-chaos: start #{}", self.starts),
        );
        let args: Vec<String> = vec![
            "serve".into(),
            "--config".into(),
            self.spec.config.display().to_string(),
            "--listen".into(),
            format!("127.0.0.1:{}", self.port),
        ];
        let rust_log =
            std::env::var("SWITCHBOARD_CHAOS_NODE_LOG").unwrap_or_else(|_| "info".into());
        let env = [
            ("SWITCHBOARD_NAME", format!("node-{}", self.index)),
            ("RUST_LOG", rust_log),
            // Plain log files.
            ("NO_COLOR", "1".into()),
        ];
        let proc = Guarded::spawn(&self.spec.bin, &args, &env, &log)
            .await
            .with_context(|| format!("cannot start {}", self.spec.bin.display()))?;
        self.proc = Some(proc);
        self.wait_ready(Duration::from_secs(30)).await
    }

    async fn wait_ready(&mut self, limit: Duration) -> Result<()> {
        let deadline = Instant::now() + limit;
        let url = format!("http://127.0.0.1:{}/ready", self.port);
        loop {
            if let Ok(r) = self.http.get(&url).send().await
                && r.status().is_success()
            {
                return Ok(());
            }
            let exited = self.proc.as_mut().is_none_or(Guarded::exited);
            if exited || Instant::now() > deadline {
                return Err(anyhow!(
                    "node-{} on port {} {} (log {}):\n{}",
                    self.index,
                    self.port,
                    if exited {
                        "exited"
                    } else {
                        "did not become ready"
                    },
                    self.log().display(),
                    tail(&self.log())
                ));
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
    }

    fn proc(&self) -> Result<&Guarded> {
        self.proc
            .as_ref()
            .ok_or_else(|| anyhow!("node-{} is not running", self.index))
    }

    /// `kill -9`, `down` of downtime, restart on the same port.
    ///
    /// # Errors
    /// The restart failed.
    pub async fn crash_and_restart(&mut self, down: Duration) -> Result<()> {
        if let Some(mut p) = self.proc.take() {
            p.kill().await;
        }
        tokio::time::sleep(down).await;
        self.launch().await
    }

    /// SIGTERM (drain); waits up to `grace` for the exit (then `kill -9`), restarts. Returns
    /// how long the drain took and whether the node exited by itself.
    ///
    /// # Errors
    /// The signal or the restart failed.
    pub async fn drain_and_restart(&mut self, grace: Duration) -> Result<(Duration, bool)> {
        let started = Instant::now();
        let mut p = self
            .proc
            .take()
            .ok_or_else(|| anyhow!("node-{} is not running", self.index))?;
        p.signal("TERM").await?;
        let clean = p.wait_exit(grace).await.is_some();
        if !clean {
            p.kill().await;
        }
        let took = started.elapsed();
        self.launch().await?;
        Ok((took, clean))
    }

    /// SIGSTOP for `pause`, then SIGCONT.
    ///
    /// # Errors
    /// A signal failed.
    pub async fn pause(&self, pause: Duration) -> Result<()> {
        let p = self.proc()?;
        p.signal("STOP").await?;
        tokio::time::sleep(pause).await;
        p.signal("CONT").await
    }

    /// Whether the process is running (or stopped), i.e. has not exited.
    pub fn alive(&mut self) -> bool {
        self.proc.as_mut().is_some_and(|p| !p.exited())
    }

    /// Kills it.
    pub async fn stop(&mut self) {
        if let Some(mut p) = self.proc.take() {
            p.kill().await;
        }
    }
}
