//! The short chaos run of the test suite: three nodes on a real `redis-server`, 30
//! subscribers over WebSocket, SSE and long-poll, 150 publications/s, every fault kind at least
//! once, about 80 s in all. It starts the debug `switchboard` binary that cargo built next to
//! this test (`SWITCHBOARD_BIN` overrides it); scripts/test.sh builds it before the Rust tests.
//! When it is missing, the test fails and says how to build it.
//!
//! The long run is a documented command (docs/benchmarks.md, "Chaos checker").

use std::sync::Mutex;
use std::time::Duration;

use switchboard_chaos::Options;
use switchboard_chaos::nemesis::FaultKind;

/// Each test runs a whole cluster: one at a time, also under `cargo test` (nextest runs them
/// alone anyway, see .config/nextest.toml).
static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());

#[test]
fn nothing_acknowledged_is_lost_duplicated_or_reordered_under_every_kind_of_fault() {
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let opts = Options {
        duration: Duration::from_secs(75),
        subscribers: 30,
        rate: 150.0,
        channels: 6,
        warmup: Duration::from_secs(3),
        calm_tail: Duration::from_secs(8),
        gap_min: Duration::from_secs(3),
        gap_max: Duration::from_secs(5),
        converge_timeout: Duration::from_secs(20),
        ..Options::default()
    };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("a runtime");
    let report = rt
        .block_on(switchboard_chaos::run(&opts))
        .unwrap_or_else(|e| panic!("the chaos run could not run: {e:#}"));
    println!("{report}");
    assert!(report.passed, "{report}");
    for kind in FaultKind::ALL {
        assert!(
            report.fault_counts.contains_key(kind.name()),
            "{} was never injected:\n{report}",
            kind.name()
        );
    }
    for t in &report.findings.transports {
        assert!(
            t.deliveries > 0 && t.expected > 0,
            "{} checked nothing:\n{report}",
            t.transport.name()
        );
        // A Redis wipe happened: every transport had to be told.
        assert!(
            t.announcements > 0,
            "{} never announced a discontinuity:\n{report}",
            t.transport.name()
        );
    }
    assert!(report.publish.acknowledged > 5_000, "{report}");
}

/// The same machinery with the subscribers lying to the checker: one delivery in 150 withheld
/// (as if the server had lost it), another one reported twice. The run must fail, with exactly
/// those counts as lost and duplicated on every transport: the checker is wired end to end.
#[test]
fn the_checker_catches_a_lost_and_a_repeated_delivery() {
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let opts = Options {
        duration: Duration::from_secs(10),
        subscribers: 12,
        rate: 100.0,
        channels: 3,
        max_faults: 0,
        allow_missing_faults: true,
        // Streams whose last delivery was withheld never catch up: do not wait long for them.
        converge_timeout: Duration::from_secs(8),
        sabotage_every: 150,
        ..Options::default()
    };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("a runtime");
    let report = rt
        .block_on(switchboard_chaos::run(&opts))
        .unwrap_or_else(|e| panic!("the chaos run could not run: {e:#}"));
    println!("{report}");
    assert!(!report.passed, "{report}");
    for (t, c) in report.findings.transports.iter().zip(&report.clients) {
        assert!(
            c.sabotage_dropped > 0 && c.sabotage_duplicated > 0,
            "{report}"
        );
        assert_eq!(
            (t.lost, t.duplicated),
            (c.sabotage_dropped, c.sabotage_duplicated),
            "{}:\n{report}",
            t.transport.name()
        );
        assert_eq!(t.reordered + t.unexpected + t.stale, 0, "{report}");
    }
    // A failed run keeps its directory for inspection; this one failed on purpose.
    let _ = std::fs::remove_dir_all(&report.workdir);
}
