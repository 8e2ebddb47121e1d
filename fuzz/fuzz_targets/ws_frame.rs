//! Fuzz target `ws_frame`: WebSocket frames (`ws/codec.rs::parse`) delivered in random pieces, and message assembly
//! with fragmentation, control frames, UTF-8 and permessage-deflate (`ws/conn.rs::Assembler`).
//! The contract checked is in `crates/switchboard-server/tests/contract/mod.rs`.
#![no_main]

#[allow(dead_code)]
#[path = "../../crates/switchboard-server/tests/contract/mod.rs"]
mod contract;

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    contract::fuzz_ws_frame(data);
});
