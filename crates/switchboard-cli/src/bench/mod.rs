//! `switchboard bench`: load tests against a running node on 127.0.0.1.

use anyhow::Result;

/// Options of `bench`.
#[derive(clap::Args)]
pub struct BenchArgs {}

pub async fn run(_a: BenchArgs) -> Result<()> {
    anyhow::bail!("bench: not built yet")
}
