//! `cargo +nightly fuzz run dist_fragments` (from the repository's `fuzz/`): body in
//! `orbit_fuzz::fuzz_dist_fragments` (also replayed on stable by `crates/orbit-fuzz/tests/replay.rs`).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| orbit_fuzz::fuzz_dist_fragments(data));
