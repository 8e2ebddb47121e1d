//! Fuzz target `channel`: Channel names (`ChannelName::parse`) and permission patterns (`pattern_matches`).
//! The contract checked is in `crates/switchboard-protocol/tests/contract/mod.rs`.
#![no_main]

#[allow(dead_code)]
#[path = "../../crates/switchboard-protocol/tests/contract/mod.rs"]
mod contract;

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    contract::fuzz_channel(data);
});
