//! Fuzz target `command`: Client command frames (`switchboard_protocol::decode_frame`) and the publication data depth
//! check (`json_depth`).
//! The contract checked is in `crates/switchboard-protocol/tests/contract/mod.rs`.
#![no_main]

#[allow(dead_code)]
#[path = "../../crates/switchboard-protocol/tests/contract/mod.rs"]
mod contract;

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    contract::fuzz_command(data);
});
