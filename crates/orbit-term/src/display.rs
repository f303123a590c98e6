//! `Display` for [`Term`]: Erlang syntax, for logs, errors and test failures.
//!
//! Pids, ports, references and funs print in the shell's `#Ref<...>` style with the node
//! name spelled out; they cannot be read back.

use std::fmt::{self, Display, Formatter, Write};

use crate::term::Term;

fn write_seq(f: &mut Formatter<'_>, items: &[Term]) -> fmt::Result {
    for (i, t) in items.iter().enumerate() {
        if i > 0 {
            f.write_str(", ")?;
        }
        Display::fmt(t, f)?;
    }
    Ok(())
}

fn write_float(f: &mut Formatter<'_>, x: f64) -> fmt::Result {
    if x.fract() == 0.0 && x.abs() < 1e16 {
        write!(f, "{x:.1}")
    } else if x.abs() >= 1e16 || (x != 0.0 && x.abs() < 1e-4) {
        let s = format!("{x:e}");
        match s.split_once('e') {
            Some((m, e)) if !m.contains('.') => write!(f, "{m}.0e{e}"),
            _ => f.write_str(&s),
        }
    } else {
        write!(f, "{x}")
    }
}

fn write_bytes(f: &mut Formatter<'_>, bytes: &[u8], last_bits: Option<u8>) -> fmt::Result {
    f.write_str("<<")?;
    let printable = last_bits.is_none()
        && !bytes.is_empty()
        && std::str::from_utf8(bytes)
            .is_ok_and(|s| s.chars().all(|c| !c.is_control() || c == '\n' || c == '\t'));
    if printable {
        f.write_char('"')?;
        for c in String::from_utf8_lossy(bytes).chars() {
            match c {
                '"' => f.write_str("\\\"")?,
                '\\' => f.write_str("\\\\")?,
                '\n' => f.write_str("\\n")?,
                '\t' => f.write_str("\\t")?,
                c => f.write_char(c)?,
            }
        }
        f.write_char('"')?;
    } else {
        for (i, b) in bytes.iter().enumerate() {
            if i > 0 {
                f.write_char(',')?;
            }
            match last_bits {
                Some(bits) if i + 1 == bytes.len() => {
                    let bits = bits.clamp(1, 8);
                    write!(f, "{}:{bits}", b >> (8 - bits))?
                }
                _ => write!(f, "{b}")?,
            }
        }
    }
    f.write_str(">>")
}

/// Erlang syntax: `{ok, [1, 2 | x], #{a => <<"bin">>}}`.
impl Display for Term {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        match self {
            Term::Int(i) => write!(f, "{i}"),
            Term::BigInt(b) => write!(f, "{b}"),
            Term::Float(x) => write_float(f, *x),
            Term::Atom(a) => write!(f, "{a}"),
            Term::Binary(b) => write_bytes(f, b, None),
            Term::BitBinary(bb) => write_bytes(f, &bb.bytes, Some(bb.bits)),
            Term::Tuple(items) => {
                f.write_char('{')?;
                write_seq(f, items)?;
                f.write_char('}')
            }
            Term::List(items) => {
                f.write_char('[')?;
                write_seq(f, items)?;
                f.write_char(']')
            }
            Term::ImproperList(il) => {
                f.write_char('[')?;
                write_seq(f, &il.elements)?;
                write!(f, " | {}]", il.tail)
            }
            Term::Map(entries) => {
                f.write_str("#{")?;
                for (i, (k, v)) in entries.iter().enumerate() {
                    if i > 0 {
                        f.write_str(", ")?;
                    }
                    write!(f, "{k} => {v}")?;
                }
                f.write_char('}')
            }
            Term::Pid(p) => write!(f, "#Pid<{}.{}.{}>", p.node, p.id, p.serial),
            Term::Port(p) => write!(f, "#Port<{}.{}>", p.node, p.id),
            Term::Reference(r) => {
                write!(f, "#Ref<{}", r.node)?;
                for w in r.ids().iter().rev() {
                    write!(f, ".{w}")?;
                }
                f.write_char('>')
            }
            Term::Export(e) => write!(f, "fun {}:{}/{}", e.module, e.function, e.arity),
            Term::Fun(fun) => write!(f, "#Fun<{}.{}.{}>", fun.module, fun.index, fun.old_uniq),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prints_erlang_syntax() {
        let t = Term::Tuple(vec![
            Term::atom("ok"),
            Term::improper_list(vec![Term::Int(1), Term::Float(2.0)], Term::atom("Tail")),
            Term::Map(vec![(Term::atom("a"), Term::from("bin\"q"))]),
            Term::Binary(vec![0, 255]),
            Term::bitstring(vec![0xe0], 3),
            Term::Float(1e300),
        ]);
        assert_eq!(
            t.to_string(),
            r#"{ok, [1, 2.0 | 'Tail'], #{a => <<"bin\"q">>}, <<0,255>>, <<7:3>>, 1.0e300}"#
        );
        // Hand-built bitstrings outside the invariants still print and compare.
        let odd = Term::BitBinary(Box::new(crate::BitBinary {
            bytes: vec![],
            bits: 0,
        }));
        let odd2 = Term::BitBinary(Box::new(crate::BitBinary {
            bytes: vec![1],
            bits: 12,
        }));
        assert!(odd < odd2);
        let _ = format!("{odd} {odd2}");
    }
}
