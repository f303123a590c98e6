//! Helpers shared by the orbit-cli tests.

/// The DevTools driver of orbit-observe's dashboard test, the same file.
#[path = "../../../orbit-observe/tests/support/devtools.rs"]
pub mod devtools;
