//! An `erpc:call` of a typed function read straight from the bytes: the argument list
//! `[Res, M, F, A]` of a `SPAWN_REQUEST` for `{erpc, execute_call, 4}`, `A`'s elements
//! decoded into the function's argument types (`FromArgs::from_bytes`) with no `Term`
//! tree; anything this does not read is left to the `Term` path of the parent module,
//! which answers it exactly as before (`into_fast_tests.rs` checks that the two agree).

use orbit_term::{Reference, Term};

use super::{call_reason, outcome, registry};

/// The exit reason of `erpc:execute_call(Res, M, F, A)` read straight from the
/// argument list's bytes (`[Res, M, F, A]`, no `Term` built for it) when it calls a
/// typed function ([`registry::register_typed`]) whose arguments decode from the bytes
/// of `A`'s elements. `None`, with nothing run, for any other shape or function, or
/// arguments that do not decode so: the caller then takes the `Term` path, which
/// answers exactly as before. What this returns is what the `Term` path returns for the
/// same bytes (a differential proptest checks it): `Res` must be a reference (erpc's
/// is), `M` and `F` atoms, `A` a proper list, nothing after the list.
pub(super) fn fast_call_reason(payload: &[u8]) -> Option<Term> {
    /// The longest `STRING_EXT` argument list read here (a typed function takes at
    /// most 8 arguments).
    const MAX_STRING_ARGS: usize = 8;
    // 131, LIST_EXT of 4; Res as NEWER_REFERENCE_EXT.
    let b = payload.strip_prefix(&[131, 108, 0, 0, 0, 4])?;
    if b.first() != Some(&90) {
        return None;
    }
    let (res, n) = Reference::decode_body(b).ok()?;
    let b = &b[n..];
    let (module, n) = small_atom(b)?;
    let b = &b[n..];
    let (function, n) = small_atom(b)?;
    let b = &b[n..];
    // A: NIL_EXT (no arguments; then the outer list's NIL_EXT), LIST_EXT of n elements
    // (then A's NIL_EXT tail and the outer list's), or STRING_EXT (a list of small
    // integers, `[1, 2]` as OTP and Orbit write it), whose elements are spelled out here
    // as the `SMALL_INTEGER_EXT`s the `Term` path reads them as.
    let mut spelled = [0u8; 2 * MAX_STRING_ARGS + 2];
    let (arity, args, tail): (usize, &[u8], &[u8]) = match b.first()? {
        106 => (0, &b[1..], &[106]),
        108 => {
            let len = u32::from_be_bytes(b.get(1..5)?.try_into().ok()?);
            (usize::try_from(len).ok()?, &b[5..], &[106, 106])
        }
        107 => {
            let len = usize::from(u16::from_be_bytes(b.get(1..3)?.try_into().ok()?));
            let (ints, rest) = b.get(3..)?.split_at_checked(len)?;
            if len > MAX_STRING_ARGS || rest != [106] {
                return None;
            }
            for (i, v) in ints.iter().enumerate() {
                spelled[2 * i] = 97;
                spelled[2 * i + 1] = *v;
            }
            spelled[2 * len] = 106;
            spelled[2 * len + 1] = 106;
            (len, &spelled[..2 * len + 2], &[106, 106])
        }
        _ => return None,
    };
    let raw = registry::lookup_raw(module, function, arity)?;
    let out = match std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| raw(args, tail))) {
        Ok(None) => return None,
        Ok(Some(Ok(v))) => return Some(call_reason(Term::Reference(Box::new(res)), Ok(v))),
        Ok(Some(e)) => Ok(e),
        Err(panic) => Err(panic),
    };
    // Only a failure needs the names as terms (its stack and log). At most 255 bytes,
    // so at most 255 characters: always atoms.
    let name = |s: &str| Term::try_atom(s).unwrap_or_else(|_| Term::nil());
    let (module, function) = (name(module), name(function));
    let r = outcome(out, &module, &function, arity);
    Some(call_reason(Term::Reference(Box::new(res)), r))
}

/// A `SMALL_ATOM_UTF8_EXT` (what OTP and Orbit write for names) at the start of `b`:
/// its text, borrowed, and the bytes it took. `None` for any other encoding or text
/// that is not UTF-8 (the `Term` path then reads it, or refuses it).
fn small_atom(b: &[u8]) -> Option<(&str, usize)> {
    let (&[119, len], rest) = b.split_first_chunk::<2>()? else {
        return None;
    };
    let len = usize::from(len);
    let text = std::str::from_utf8(rest.get(..len)?).ok()?;
    Some((text, 2 + len))
}
