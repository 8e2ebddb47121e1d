//! Fuzz target `sse_query`: The `/sse` and `/poll` query string and `Last-Event-ID` header (`StreamQuery::parse`,
//! `StreamQuery::cursor`).
//! The contract checked is in `crates/switchboard-server/tests/contract/mod.rs`.
#![no_main]

#[allow(dead_code)]
#[path = "../../crates/switchboard-server/tests/contract/mod.rs"]
mod contract;

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    contract::fuzz_sse_query(data);
});
