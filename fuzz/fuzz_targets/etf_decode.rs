//! `cargo +nightly fuzz run etf_decode` (from the repository's `fuzz/`): body in
//! `orbit_fuzz::fuzz_etf_decode` (also replayed on stable by `crates/orbit-fuzz/tests/replay.rs`).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| orbit_fuzz::fuzz_etf_decode(data));
