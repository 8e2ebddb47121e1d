//! Fuzz target `ws_extensions`: `Sec-WebSocket-Extensions` offers (`ws/deflate.rs::accepts`).
//! The contract checked is in `crates/switchboard-server/tests/contract/mod.rs`.
#![no_main]

#[allow(dead_code)]
#[path = "../../crates/switchboard-server/tests/contract/mod.rs"]
mod contract;

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    contract::fuzz_ws_extensions(data);
});
