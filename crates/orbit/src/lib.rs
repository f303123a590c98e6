//! Orbit runtime.
#![warn(missing_docs)]
