//! `cargo +nightly fuzz run serde_from_slice` (from the repository's `fuzz/`): body in
//! `orbit_fuzz::fuzz_serde_from_slice` (also replayed on stable by `crates/orbit-fuzz/tests/replay.rs`).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| orbit_fuzz::fuzz_serde_from_slice(data));
