//! `cargo +nightly fuzz run dist_frame` (from the repository's `fuzz/`): body in
//! `orbit_fuzz::fuzz_dist_frame` (also replayed on stable by `crates/orbit-fuzz/tests/replay.rs`).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| orbit_fuzz::fuzz_dist_frame(data));
