//! `cargo fuzz run decode` (from crates/orbit-term): the decoder and the serde
//! deserializer must never panic, and whatever decodes must re-encode to an equal term.
#![no_main]

use libfuzzer_sys::fuzz_target;
use orbit_term::{from_slice, Term};
use std::collections::HashMap;

fuzz_target!(|data: &[u8]| {
    if let Ok(t) = Term::decode(data) {
        let again = Term::decode(&t.encode()).expect("our own encoding decodes");
        assert!(again.exact_eq(&t));
    }
    let _ = from_slice::<Term>(data);
    let _ = from_slice::<Vec<(String, Option<i64>)>>(data);
    let _ = from_slice::<HashMap<String, Vec<f64>>>(data);
});
