//! Helpers shared by the orbit-cli tests.

pub mod devtools;
