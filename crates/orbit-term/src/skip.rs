//! Walking past one encoded term without building it: where a term ends.
//!
//! A [`crate::RawTerm`] inside a typed message keeps the bytes of one term, decoded
//! (and fully checked, limits included) later; finding their end must not cost a
//! decode. [`skip_term`] reads only tags and lengths: no allocation, no recursion (a
//! count of the terms still to pass), every length checked against the bytes left, and
//! never a panic. It checks the structure only (tags, lengths, atoms where pids, ports,
//! references and exports hold them); what the bytes mean is checked by the decode that
//! follows.

use crate::error::{Error, Result};
use crate::reader::Reader;
use crate::tag;

/// The length in bytes of the one term (without its version byte 131) at the start of
/// `bytes`, found from tags and lengths only: nothing is built or allocated. The
/// structure is checked (tags, lengths against the bytes there are, atoms where pids,
/// ports, references and exports hold them), not what the bytes mean: a decode of
/// `bytes[..len]` may still refuse them (bad UTF-8 in an atom, limits). For finding
/// where one term ends and the next begins without decoding it (a control message and
/// its payload in a distribution header).
///
/// Errors: truncated input, an unknown tag, a compressed term.
pub fn encoded_len(bytes: &[u8]) -> Result<usize> {
    let mut r = Reader::new(bytes, crate::limits::DecodeLimits::DEFAULT);
    skip_term(&mut r)?;
    Ok(r.pos)
}

/// Passes one atom (any of the four atom encodings).
fn skip_atom(r: &mut Reader<'_>) -> Result<()> {
    let at = r.pos;
    let n = match r.u8()? {
        tag::ATOM_UTF8 | tag::ATOM => r.u16()? as usize,
        tag::SMALL_ATOM_UTF8 | tag::SMALL_ATOM => r.u8()? as usize,
        _ => return Err(Error::invalid(at, "expected an atom")),
    };
    r.bytes(n).map(drop)
}

/// Moves the reader past one term (no version byte) at its position.
pub(crate) fn skip_term(r: &mut Reader<'_>) -> Result<()> {
    // Terms still to pass: each container adds its elements.
    let mut left: usize = 1;
    while left > 0 {
        left -= 1;
        let at = r.pos;
        let t = r.u8()?;
        let n = match t {
            tag::SMALL_INTEGER => 1,
            tag::INTEGER => 4,
            tag::NEW_FLOAT => 8,
            tag::FLOAT => 31,
            tag::ATOM_UTF8 | tag::ATOM => r.u16()? as usize,
            tag::SMALL_ATOM_UTF8 | tag::SMALL_ATOM => r.u8()? as usize,
            tag::BINARY => r.u32()? as usize,
            tag::BIT_BINARY => r.u32()? as usize + 1,
            tag::NIL => 0,
            tag::STRING => r.u16()? as usize,
            tag::SMALL_BIG => r.u8()? as usize + 1,
            tag::LARGE_BIG => (r.u32()? as usize).saturating_add(1),
            tag::SMALL_TUPLE => {
                left = left.saturating_add(r.u8()? as usize);
                0
            }
            tag::LARGE_TUPLE => {
                let k = r.u32()? as usize;
                r.check_len("tuple", k, 1)?;
                left = left.saturating_add(k);
                0
            }
            tag::LIST => {
                let mut k = r.u32()? as usize;
                r.check_len("list", k, 1)?;
                // A leading run of small integers (the commonest list body: event
                // batches, byte lists) in a tight loop of its own.
                while k > 0 {
                    let step = match r.buf.get(r.pos) {
                        Some(&tag::SMALL_INTEGER) => 2,
                        Some(&tag::INTEGER) => 5,
                        _ => break,
                    };
                    if r.buf.len() - r.pos < step {
                        break;
                    }
                    r.pos += step;
                    k -= 1;
                }
                // The other elements, then the tail.
                left = left.saturating_add(k).saturating_add(1);
                0
            }
            tag::MAP => {
                let k = r.u32()? as usize;
                r.check_len("map", k, 2)?;
                left = left.saturating_add(k.saturating_mul(2));
                0
            }
            tag::NEW_PID => {
                skip_atom(r)?;
                12
            }
            tag::PID => {
                skip_atom(r)?;
                9
            }
            tag::V4_PORT => {
                skip_atom(r)?;
                12
            }
            tag::NEW_PORT => {
                skip_atom(r)?;
                8
            }
            tag::PORT => {
                skip_atom(r)?;
                5
            }
            tag::NEWER_REFERENCE | tag::NEW_REFERENCE => {
                let words = r.u16()? as usize;
                skip_atom(r)?;
                let creation = if t == tag::NEWER_REFERENCE { 4 } else { 1 };
                creation + 4 * words
            }
            tag::REFERENCE => {
                skip_atom(r)?;
                5
            }
            tag::EXPORT => {
                skip_atom(r)?;
                skip_atom(r)?;
                2
            }
            // The size counts itself.
            tag::NEW_FUN => (r.u32()? as usize)
                .checked_sub(4)
                .ok_or_else(|| Error::invalid(at, "fun whose size is below 4"))?,
            tag::COMPRESSED => {
                return Err(Error::invalid(at, "compressed term nested inside a term"))
            }
            _ => return Err(Error::UnknownTag { tag: t, at }),
        };
        r.bytes(n)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::limits::DecodeLimits;
    use crate::term::Term;

    fn end_of(bytes: &[u8]) -> Result<usize> {
        let mut r = Reader::new(bytes, DecodeLimits::DEFAULT);
        skip_term(&mut r)?;
        Ok(r.pos)
    }

    #[test]
    fn finds_the_end_of_every_kind_of_term() {
        let pid = Term::decode(&[
            131, 88, 119, 3, b'a', b'@', b'b', 0, 0, 0, 1, 0, 0, 0, 2, 0, 0, 0, 3,
        ])
        .unwrap();
        let terms = [
            Term::Int(5),
            Term::Int(-70000),
            Term::Int(1 << 40),
            Term::Float(1.5),
            Term::atom("hello"),
            Term::Binary(b"bin".to_vec()),
            Term::List(vec![]),
            Term::List(vec![Term::Int(1), Term::Int(2)]),
            Term::List(vec![Term::Int(1000), Term::atom("x")]),
            Term::tuple(vec![
                pid.clone(),
                Term::Map(vec![(Term::Int(1), Term::Int(2))]),
            ]),
            Term::improper_list(vec![Term::Int(1)], Term::atom("t")),
        ];
        for t in terms {
            let mut bytes = t.encode();
            // A trailing byte shows the walk stops at the term's end.
            bytes.push(0);
            assert_eq!(end_of(&bytes[1..]).unwrap(), bytes.len() - 2, "{t:?}");
        }
    }

    #[test]
    fn truncated_or_unknown_input_is_an_error_not_a_panic() {
        let bytes = Term::List(vec![Term::Int(1), Term::Int(300)]).encode();
        for cut in 1..bytes.len() - 1 {
            assert!(end_of(&bytes[1..cut]).is_err(), "cut at {cut}");
        }
        assert!(end_of(&[200]).is_err());
        assert!(end_of(&[80, 0, 0, 0, 1]).is_err());
        // A list claiming more elements than there are bytes is refused before walking.
        assert!(end_of(&[108, 255, 255, 255, 255, 106]).is_err());
        // A fun whose size cannot hold itself.
        assert!(end_of(&[112, 0, 0, 0, 2]).is_err());
    }

    /// The run of leading integers of a list is passed in its own loop: the end is the
    /// decoder's, whatever follows the run, and every truncation is still an error.
    #[test]
    fn integer_runs_end_where_the_decoder_ends_and_truncations_fail() {
        let mut es: Vec<Term> = (0..40).map(|i| Term::Int(i * 997 - 9000)).collect();
        es.push(Term::List(vec![Term::Int(7), Term::Int(1 << 20)]));
        es.push(Term::Int(3));
        let lists = [
            Term::List(es.clone()),
            Term::improper_list(vec![Term::Int(1), Term::Int(300)], Term::Int(5)),
            Term::tuple(vec![Term::List(es), Term::Int(1)]),
        ];
        for t in lists {
            let bytes = t.encode();
            let (_, used) = Term::decode_body(&bytes[1..], &DecodeLimits::DEFAULT).unwrap();
            assert_eq!(end_of(&bytes[1..]).unwrap(), used, "{t:?}");
            for cut in 1..bytes.len() - 1 {
                assert!(end_of(&bytes[1..cut]).is_err(), "{t:?} cut at {cut}");
            }
        }
    }

    #[test]
    fn encoded_len_agrees_with_a_decode() {
        let t = Term::tuple(vec![
            Term::Int(21),
            Term::atom("monitor"),
            Term::List(vec![Term::Int(1), Term::Binary(b"x".to_vec())]),
        ]);
        let mut bytes = t.encode();
        bytes.extend_from_slice(&[131, 97, 1]);
        let (_, used) = Term::decode_body(&bytes[1..], &DecodeLimits::DEFAULT).unwrap();
        assert_eq!(crate::encoded_len(&bytes[1..]).unwrap(), used);
        assert!(crate::encoded_len(&bytes[1..5]).is_err());
        assert!(crate::encoded_len(&[]).is_err());
    }
}
