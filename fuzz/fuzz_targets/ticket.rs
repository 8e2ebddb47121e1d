//! Fuzz target `ticket`: tickets and SSE resume secrets (`tickets.rs`: the format check
//! before the engine lookup, then redemption on the memory engine).
//! The contract checked is in `crates/switchboard-server/tests/contract/mod.rs`.
#![no_main]

use std::sync::LazyLock;

#[allow(dead_code)]
#[path = "../../crates/switchboard-server/tests/contract/mod.rs"]
mod contract;

static DESK: LazyLock<contract::TicketDesk> = LazyLock::new(contract::TicketDesk::new);

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    contract::fuzz_ticket(&DESK, data);
});
