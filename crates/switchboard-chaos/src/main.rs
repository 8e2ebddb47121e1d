//! `switchboard-chaos`: see the library docs and `docs/benchmarks.md`.

use clap::Parser as _;
use switchboard_chaos::Options;

fn main() -> std::process::ExitCode {
    let opts = Options::parse();
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("switchboard-chaos: cannot start the runtime: {e}");
            return std::process::ExitCode::from(2);
        }
    };
    match rt.block_on(switchboard_chaos::run(&opts)) {
        Ok(report) => {
            println!("{report}");
            if report.passed {
                std::process::ExitCode::SUCCESS
            } else {
                std::process::ExitCode::from(1)
            }
        }
        Err(e) => {
            eprintln!("switchboard-chaos: {e:#}");
            std::process::ExitCode::from(2)
        }
    }
}
