//! Fuzz target `jwt`: token verification of arbitrary strings and of arbitrary header and
//! claims JSON under a valid signature (`switchboard_core::auth::Verifier::verify`).
//! The contract checked is in `crates/switchboard-core/tests/contract/mod.rs`.
#![no_main]

use std::sync::LazyLock;

use switchboard_core::auth::Verifier;

#[allow(dead_code)]
#[path = "../../crates/switchboard-core/tests/contract/mod.rs"]
mod contract;

static VERIFIER: LazyLock<Verifier> = LazyLock::new(contract::verifier);

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    contract::fuzz_jwt(&VERIFIER, data);
});
