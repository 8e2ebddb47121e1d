//! The server process as seen from `/proc`: resident memory and CPU time.

use anyhow::{Context, Result, bail};

/// A server process to measure.
#[derive(Debug, Clone)]
pub struct Server {
    /// Its pid.
    pub pid: u32,
    /// Clock ticks per second (`getconf CLK_TCK`).
    tck: f64,
}

impl Server {
    /// Checks that `pid` exists and is readable.
    ///
    /// # Errors
    /// The process cannot be read.
    pub fn new(pid: u32) -> Result<Self> {
        let s = Self {
            pid,
            tck: clk_tck(),
        };
        s.cpu_secs()
            .with_context(|| format!("cannot read /proc/{pid}/stat (wrong --pid?)"))?;
        s.rss_kib()?;
        Ok(s)
    }

    /// Resident set size in KiB (`VmRSS` of `/proc/<pid>/status`).
    ///
    /// # Errors
    /// The process is gone.
    pub fn rss_kib(&self) -> Result<u64> {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.pid))
            .with_context(|| format!("server process {} is gone", self.pid))?;
        for line in status.lines() {
            if let Some(v) = line.strip_prefix("VmRSS:") {
                return v
                    .trim()
                    .trim_end_matches("kB")
                    .trim()
                    .parse()
                    .context("bad VmRSS");
            }
        }
        bail!("no VmRSS in /proc/{}/status", self.pid)
    }

    /// User + system CPU seconds consumed so far (`utime + stime` of `/proc/<pid>/stat`).
    ///
    /// # Errors
    /// The process is gone.
    pub fn cpu_secs(&self) -> Result<f64> {
        self.cpu().map(|c| c.user + c.system)
    }

    /// User and system CPU seconds consumed so far.
    ///
    /// # Errors
    /// The process is gone.
    pub fn cpu(&self) -> Result<Cpu> {
        let stat = std::fs::read_to_string(format!("/proc/{}/stat", self.pid))
            .with_context(|| format!("server process {} is gone", self.pid))?;
        // The command name may contain spaces and parentheses: fields start after the last ')'.
        let rest = stat
            .rsplit_once(')')
            .map(|(_, r)| r)
            .context("bad /proc stat")?;
        let fields: Vec<&str> = rest.split_whitespace().collect();
        // After ')' the fields start at #3 (state): utime is #14, stime #15.
        let utime: u64 = fields
            .get(11)
            .and_then(|v| v.parse().ok())
            .context("utime")?;
        let stime: u64 = fields
            .get(12)
            .and_then(|v| v.parse().ok())
            .context("stime")?;
        Ok(Cpu {
            user: utime as f64 / self.tck,
            system: stime as f64 / self.tck,
        })
    }
}

/// CPU seconds of a process.
#[derive(Debug, Clone, Copy, Default)]
pub struct Cpu {
    /// In user space.
    pub user: f64,
    /// In the kernel (on loopback this includes the receiving side of TCP, which runs in the
    /// sender's context).
    pub system: f64,
}

impl std::ops::Sub for Cpu {
    type Output = Cpu;
    fn sub(self, o: Cpu) -> Cpu {
        Cpu {
            user: self.user - o.user,
            system: self.system - o.system,
        }
    }
}

/// `getconf CLK_TCK`, or 100 when unknown.
pub fn clk_tck() -> f64 {
    std::process::Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .and_then(|s| s.trim().parse::<f64>().ok())
        .filter(|v| *v > 0.0)
        .unwrap_or(100.0)
}

/// The pid of the process listening on 127.0.0.1:`port` (or 0.0.0.0:`port`), found through
/// `/proc/net/tcp` and the socket inodes in `/proc/<pid>/fd` (own processes only).
pub fn find_listener(port: u16) -> Option<u32> {
    let tcp = std::fs::read_to_string("/proc/net/tcp").ok()?;
    let want = [
        format!("0100007F:{port:04X}"),
        format!("00000000:{port:04X}"),
    ];
    let inode = tcp.lines().skip(1).find_map(|l| {
        let f: Vec<&str> = l.split_whitespace().collect();
        (f.len() > 9 && want.iter().any(|w| w == f[1]) && f[3] == "0A").then(|| f[9].to_owned())
    })?;
    let target = format!("socket:[{inode}]");
    for entry in std::fs::read_dir("/proc").ok()?.flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|s| s.parse::<u32>().ok())
        else {
            continue;
        };
        let Ok(fds) = std::fs::read_dir(entry.path().join("fd")) else {
            continue;
        };
        for fd in fds.flatten() {
            if std::fs::read_link(fd.path())
                .map(|l| l.as_os_str() == target.as_str())
                .unwrap_or(false)
            {
                return Some(pid);
            }
        }
    }
    None
}

#[cfg(test)]
mod tests {
    #[test]
    fn reads_own_process() {
        let s = super::Server::new(std::process::id()).unwrap();
        assert!(s.rss_kib().unwrap() > 0);
        assert!(s.cpu_secs().unwrap() >= 0.0);
    }
}
