//! Erlang terms and the External Term Format (ETF).
//!
//! This crate is filled in by the orbit-term work; for now it only fixes the crate's place
//! in the workspace.
#![warn(missing_docs)]
