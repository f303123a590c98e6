//! `cargo +nightly fuzz run epmd_client` (from the repository's `fuzz/`): body in
//! `orbit_fuzz::fuzz_epmd_client` (also replayed on stable by `crates/orbit-fuzz/tests/replay.rs`).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| orbit_fuzz::fuzz_epmd_client(data));
