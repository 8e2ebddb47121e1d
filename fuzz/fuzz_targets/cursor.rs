//! Fuzz target `cursor`: Resume cursors (`Cursor::decode`): SSE event ids, `since=`, poll cursors.
//! The contract checked is in `crates/switchboard-protocol/tests/contract/mod.rs`.
#![no_main]

#[allow(dead_code)]
#[path = "../../crates/switchboard-protocol/tests/contract/mod.rs"]
mod contract;

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    contract::fuzz_cursor(data);
});
