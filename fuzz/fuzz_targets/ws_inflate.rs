//! Fuzz target `ws_inflate`: permessage-deflate inflate (`ws/deflate.rs::decompress`): bounded output, documented
//! refusals, agreement with a one-shot inflate; compress/decompress round trip.
//! The contract checked is in `crates/switchboard-server/tests/contract/mod.rs`.
#![no_main]

#[allow(dead_code)]
#[path = "../../crates/switchboard-server/tests/contract/mod.rs"]
mod contract;

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    contract::fuzz_ws_inflate(data);
});
