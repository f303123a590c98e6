//! The Rust functions other nodes may call, under `(module, function, arity)`.
//!
//! A BEAM node calls `:erpc.call(orbit, Calc, :add, [1, 2])`; the module is the atom
//! `'Elixir.Calc'` on the wire, so a function Elixir callers reach as `Calc.add/2` is
//! registered as `("Elixir.Calc", "add", 2)`, one Erlang callers reach as `calc:add/2`
//! as `("calc", "add", 2)`. Functions take the argument list as terms
//! ([`register`], [`register_async`]) or typed through serde ([`register_typed`]:
//! arguments decoded per position, the arity from the tuple type). A typed function
//! called by `erpc:call` has its arguments read straight from the request's bytes into
//! its types ([`FromArgs::from_bytes`]), with no `Term` built; arguments that do not
//! decode so are decoded into terms and read as before (`function_clause` when they
//! still do not fit). Registering the same name and arity again replaces the function.
//!
//! Built in: `erlang:node/0` and `erlang:nodes/0,1` (what `rpc:call(Node, erlang,
//! nodes, [])` asks of every node, e.g. for the transitive mesh). Registering them again
//! replaces them.
//!
//! Contract: lookups take a read lock (registration is rare). An async function runs
//! in the process spawned for the request. A sync function called by `erpc:call`,
//! `rpc:call` or `erpc:cast` runs at once on the connection's reader that received the
//! request, with no process (the cheapest answer: no spawn, no task switch); it holds
//! that reader, and a runtime worker, while it runs, so long or blocking work belongs
//! in [`register_async`] (with `orbit::blocking` inside).

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, OnceLock};

use orbit_term::Term;
use parking_lot::RwLock;
use serde::de::DeserializeOwned;
use serde::Serialize;

use super::ErpcError;

/// What a registered function returns: its value or how it failed.
pub type Outcome = Result<Term, ErpcError>;

/// The future an async function returns.
pub type OutcomeFuture = Pin<Box<dyn Future<Output = Outcome> + Send>>;

/// A registered function.
#[derive(Clone)]
pub(crate) enum Func {
    /// Runs to completion when called.
    Sync(Arc<dyn Fn(Vec<Term>) -> Outcome + Send + Sync>),
    /// Returns a future the spawned process awaits.
    Async(Arc<dyn Fn(Vec<Term>) -> OutcomeFuture + Send + Sync>),
}

/// A typed function's second entry point: its arguments read straight from the bytes of
/// the argument list's elements (no `Term` built), the function run only when they all
/// decode and what follows them is exactly the given tail. `None` when they do not (the
/// function did not run): the caller then takes the `Term` path, which answers the same
/// request exactly as before (`function_clause`, `badarg`, ...).
pub(crate) type RawFn = Arc<dyn Fn(&[u8], &[u8]) -> Option<Outcome> + Send + Sync>;

/// module → [(function, arity, func, raw entry of a typed function)]: lookups by `&str`
/// without building a key.
type Table = HashMap<Box<str>, Vec<(Box<str>, usize, Func, Option<RawFn>)>>;

fn table() -> &'static RwLock<Table> {
    static T: OnceLock<RwLock<Table>> = OnceLock::new();
    T.get_or_init(|| {
        let mut t = Table::default();
        builtins(&mut t);
        RwLock::new(t)
    })
}

/// A name BEAM nodes can send: 1 to 255 characters (an atom).
fn check_name(what: &str, name: &str) -> Result<(), ErpcError> {
    if name.is_empty() || name.chars().count() > 255 {
        return Err(ErpcError::BadArg(format!(
            "{what} {name:?} is not an atom (1 to 255 characters)"
        )));
    }
    Ok(())
}

fn insert(
    module: &str,
    function: &str,
    arity: usize,
    f: Func,
    raw: Option<RawFn>,
) -> Result<(), ErpcError> {
    check_name("module", module)?;
    check_name("function", function)?;
    if arity > 255 {
        return Err(ErpcError::BadArg(format!(
            "arity {arity} is over 255, the most a BEAM function takes"
        )));
    }
    insert_raw(&mut table().write(), module, function, arity, f, raw);
    Ok(())
}

fn insert_into(t: &mut Table, module: &str, function: &str, arity: usize, f: Func) {
    insert_raw(t, module, function, arity, f, None)
}

fn insert_raw(
    t: &mut Table,
    module: &str,
    function: &str,
    arity: usize,
    f: Func,
    raw: Option<RawFn>,
) {
    let fs = t.entry(module.into()).or_default();
    match fs
        .iter_mut()
        .find(|(n, a, _, _)| &**n == function && *a == arity)
    {
        Some(slot) => (slot.2, slot.3) = (f, raw),
        None => fs.push((function.into(), arity, f, raw)),
    }
}

/// Registers `f` as `module:function/arity` (`module` as the wire spells it:
/// `"Elixir.Calc"` for Elixir's `Calc`). `f` gets the argument list (always `arity`
/// terms) and returns the result or an [`ErpcError`] (`ErpcError::raise`, `error`,
/// `throw`, `exit`); a panic is raised to the caller as a `RuntimeError` with the panic
/// message. Fails with [`ErpcError::BadArg`] for names that are not atoms or an arity
/// over 255.
pub fn register<F>(module: &str, function: &str, arity: usize, f: F) -> Result<(), ErpcError>
where
    F: Fn(Vec<Term>) -> Outcome + Send + Sync + 'static,
{
    insert(module, function, arity, Func::Sync(Arc::new(f)), None)
}

/// [`register`] for a function that returns a future (awaited in the process spawned
/// for the call; use it for I/O and, with `orbit::blocking`, for blocking work).
pub fn register_async<F, Fut>(
    module: &str,
    function: &str,
    arity: usize,
    f: F,
) -> Result<(), ErpcError>
where
    F: Fn(Vec<Term>) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Outcome> + Send + 'static,
{
    let f = move |args: Vec<Term>| -> OutcomeFuture { Box::pin(f(args)) };
    insert(module, function, arity, Func::Async(Arc::new(f)), None)
}

/// Registers a typed function: its arguments are a tuple of serde types (the arity is
/// the tuple's length: `(i64, i64)` is arity 2, `()` arity 0) decoded per position, its
/// result any serde type. Arguments that do not decode fail the call as a BEAM function
/// with no matching clause does: `error` `function_clause` with stack
/// `[{Module, Function, Args, []}]`.
///
/// ```
/// use orbit_cluster::erpc::{self, ErpcError};
/// erpc::register_typed("Elixir.Calc", "add", |(a, b): (i64, i64)| {
///     a.checked_add(b).ok_or_else(|| ErpcError::error(orbit_term::Term::atom("badarith")))
/// })
/// .unwrap();
/// ```
pub fn register_typed<A, R, F>(module: &str, function: &str, f: F) -> Result<(), ErpcError>
where
    A: FromArgs,
    R: Serialize,
    F: Fn(A) -> Result<R, ErpcError> + Send + Sync + 'static,
{
    let (m, fname) = (module.to_string(), function.to_string());
    let f = Arc::new(f);
    let g = f.clone();
    let terms = move |args: Vec<Term>| -> Outcome {
        let a = match A::from_args(&args) {
            Ok(a) => a,
            Err(why) => {
                tracing::debug!(module = %m, function = %fname, %why, "erpc arguments do not decode");
                return Err(function_clause(&m, &fname, args));
            }
        };
        result_term(f(a)?)
    };
    // The same function with its arguments read from the bytes: when they do not
    // decode, nothing runs and the caller takes `terms` (which logs and answers
    // `function_clause` as above).
    let raw = move |bytes: &[u8], tail: &[u8]| -> Option<Outcome> {
        let a = A::from_bytes(bytes, tail)?;
        Some(g(a).and_then(result_term))
    };
    insert(
        module,
        function,
        A::ARITY,
        Func::Sync(Arc::new(terms)),
        Some(Arc::new(raw)),
    )
}

/// A typed function's result as a term.
fn result_term<R: Serialize>(r: R) -> Outcome {
    orbit_term::to_term(&r).map_err(|e| ErpcError::Encode {
        type_name: std::any::type_name::<R>(),
        reason: e.to_string(),
    })
}

/// `error` `function_clause` with the stack the BEAM gives a call no clause matched.
fn function_clause(module: &str, function: &str, args: Vec<Term>) -> ErpcError {
    let atom = |s: &str| Term::try_atom(s).unwrap_or_else(|_| Term::atom(""));
    ErpcError::Error {
        reason: Term::atom("function_clause"),
        stack: Term::List(vec![Term::Tuple(vec![
            atom(module),
            atom(function),
            Term::List(args),
            Term::nil(),
        ])]),
    }
}

/// Removes `module:function/arity`; true when it was registered.
pub fn unregister(module: &str, function: &str, arity: usize) -> bool {
    let mut t = table().write();
    let Some(fs) = t.get_mut(module) else {
        return false;
    };
    let before = fs.len();
    fs.retain(|(n, a, _, _)| !(&**n == function && *a == arity));
    let removed = fs.len() != before;
    if fs.is_empty() {
        t.remove(module);
    }
    removed
}

/// True when `module:function/arity` is registered.
pub fn is_registered(module: &str, function: &str, arity: usize) -> bool {
    lookup(module, function, arity).is_some()
}

/// What `read` takes from the entry of `module:function/arity` (its function and its
/// raw entry), under the table's read lock; `None` when nothing is registered so.
fn with_entry<R>(
    module: &str,
    function: &str,
    arity: usize,
    read: impl FnOnce(&Func, Option<&RawFn>) -> Option<R>,
) -> Option<R> {
    let t = table().read();
    let (_, _, f, raw) = t
        .get(module)?
        .iter()
        .find(|(n, a, _, _)| &**n == function && *a == arity)?;
    read(f, raw.as_ref())
}

/// The function registered as `module:function/arity`.
pub(crate) fn lookup(module: &str, function: &str, arity: usize) -> Option<Func> {
    with_entry(module, function, arity, |f, _| Some(f.clone()))
}

/// The raw entry of the typed function registered as `module:function/arity`
/// ([`RawFn`]); `None` when there is none (nothing registered, or not typed).
pub(crate) fn lookup_raw(module: &str, function: &str, arity: usize) -> Option<RawFn> {
    with_entry(module, function, arity, |_, raw| raw.cloned())
}

/// `erlang:node/0`, `erlang:nodes/0,1`, `erlang:whereis/1` (how a GenStage consumer on
/// another node resolves `{Name, Node}`), `application:get_env(kernel, connect_all)`
/// (what the wire's transitive mesh asks; other keys are `undefined`).
fn builtins(t: &mut Table) {
    insert_into(
        t,
        "erlang",
        "whereis",
        1,
        Func::Sync(Arc::new(|args: Vec<Term>| {
            let name = args
                .first()
                .and_then(Term::as_atom)
                .ok_or_else(|| ErpcError::error(Term::atom("badarg")))?;
            Ok(match orbit::whereis(name) {
                Some(pid) => Term::Pid(Box::new(orbit_dist::to_wire(pid))),
                None => Term::atom("undefined"),
            })
        })),
    );
    insert_into(
        t,
        "application",
        "get_env",
        2,
        Func::Sync(Arc::new(|args: Vec<Term>| {
            let key = (
                args.first().and_then(Term::as_atom),
                args.get(1).and_then(Term::as_atom),
            );
            let connect_all = orbit_dist::Node::current().map(|n| n.connect_all());
            Ok(match (key, connect_all) {
                ((Some("kernel"), Some("connect_all")), Some(all)) => Term::tuple(vec![
                    Term::atom("ok"),
                    Term::atom(if all { "true" } else { "false" }),
                ]),
                _ => Term::atom("undefined"),
            })
        })),
    );
    let node = |_: Vec<Term>| -> Outcome {
        let n =
            orbit_dist::Node::current().ok_or_else(|| ErpcError::error(Term::atom("notalive")))?;
        Ok(Term::atom(&n.name()))
    };
    insert_into(t, "erlang", "node", 0, Func::Sync(Arc::new(node)));
    insert_into(
        t,
        "erlang",
        "nodes",
        0,
        Func::Sync(Arc::new(|_| nodes(&[Term::atom("visible")]))),
    );
    insert_into(
        t,
        "erlang",
        "nodes",
        1,
        Func::Sync(Arc::new(|args: Vec<Term>| match args.first() {
            Some(Term::List(kinds)) => nodes(kinds),
            Some(kind @ Term::Atom(_)) => nodes(std::slice::from_ref(kind)),
            _ => Err(ErpcError::error(Term::atom("badarg"))),
        })),
    );
}

/// `erlang:nodes(Kinds)`: `visible`, `hidden`, `connected`, `this`, `known`.
fn nodes(kinds: &[Term]) -> Outcome {
    let Some(n) = orbit_dist::Node::current() else {
        return Ok(Term::nil());
    };
    let mut out: Vec<String> = Vec::new();
    for k in kinds {
        match k.as_atom() {
            Some("this") => out.push(n.name()),
            Some("visible") => out.extend(n.list()),
            Some("hidden") => out.extend(n.list_hidden()),
            Some("connected") | Some("known") => {
                out.extend(n.list());
                out.extend(n.list_hidden());
                if k.as_atom() == Some("known") {
                    out.push(n.name());
                }
            }
            _ => return Err(ErpcError::error(Term::atom("badarg"))),
        }
    }
    out.dedup();
    Ok(Term::List(out.iter().map(|s| Term::atom(s)).collect()))
}

/// Typed arguments of a function registered with [`register_typed`]: a tuple whose
/// elements are decoded from the argument list, one per position.
pub trait FromArgs: Sized {
    /// The number of arguments.
    const ARITY: usize;
    /// Decodes the argument list (always `ARITY` long); the error says which argument
    /// did not decode and why.
    fn from_args(args: &[Term]) -> Result<Self, String>;

    /// Decodes the arguments straight from the bytes of the argument list's `ARITY`
    /// elements (external format, no version byte), which must be followed by exactly
    /// `tail`; `None` when they do not decode so (the caller then decodes the list into
    /// terms and uses [`FromArgs::from_args`]). A value returned here must be the one
    /// `from_args` returns for the same list. The default reads nothing.
    fn from_bytes(bytes: &[u8], tail: &[u8]) -> Option<Self> {
        let _ = (bytes, tail);
        None
    }
}

/// Typed arguments of a call to another node: a tuple of serde values (each becomes one
/// argument), a `Vec<Term>` or a slice of terms (the argument list itself), or `()`.
pub trait IntoArgs {
    /// The argument list.
    fn into_args(self) -> Result<Vec<Term>, ErpcError>;

    /// The argument list for the wire: already encoded when that is cheaper than
    /// building its terms (tuples of serde values), else [`IntoArgs::into_args`]. Same
    /// errors as `into_args`. The default builds the terms.
    fn into_wire_args(self) -> Result<WireArgs, ErpcError>
    where
        Self: Sized,
    {
        self.into_args().map(WireArgs::Terms)
    }
}

/// An argument list as [`IntoArgs::into_wire_args`] gives it.
#[derive(Debug, Clone, PartialEq)]
pub enum WireArgs {
    /// The arguments as terms.
    Terms(Vec<Term>),
    /// The proper list of the arguments in external format, without the version byte
    /// (`LIST_EXT`, the elements, `NIL_EXT`).
    Encoded(Vec<u8>),
}

impl WireArgs {
    /// The arguments as terms (an encoded list decoded; `BadArg` if it does not decode
    /// to a proper list, which `into_wire_args` never gives).
    pub fn into_terms(self) -> Result<Vec<Term>, ErpcError> {
        match self {
            WireArgs::Terms(t) => Ok(t),
            WireArgs::Encoded(b) => {
                match Term::decode_body(&b, &orbit_term::DecodeLimits::TRUSTED) {
                    Ok((Term::List(t), n)) if n == b.len() => Ok(t),
                    _ => Err(ErpcError::BadArg(
                        "an encoded argument list that is not a proper list".into(),
                    )),
                }
            }
        }
    }
}

/// Largest argument list encoded at once by [`IntoArgs::into_wire_args`]: below it no
/// term can nest as deep as the decoder's depth limit (512), so nothing encoded here
/// would have failed `into_args` (which decodes each argument into a term); longer
/// lists are built as terms, as before.
const WIRE_ARGS_MAX: usize = 512;

impl IntoArgs for Vec<Term> {
    fn into_args(self) -> Result<Vec<Term>, ErpcError> {
        Ok(self)
    }
}

impl IntoArgs for &[Term] {
    fn into_args(self) -> Result<Vec<Term>, ErpcError> {
        Ok(self.to_vec())
    }
}

impl<const N: usize> IntoArgs for [Term; N] {
    fn into_args(self) -> Result<Vec<Term>, ErpcError> {
        Ok(self.into())
    }
}

fn arg_term<T: Serialize>(v: &T) -> Result<Term, ErpcError> {
    orbit_term::to_term(v).map_err(|e| ErpcError::Encode {
        type_name: std::any::type_name::<T>(),
        reason: e.to_string(),
    })
}

fn arg_from<T: DeserializeOwned + 'static>(i: usize, t: &Term) -> Result<T, String> {
    // A `Term` argument is taken as it is (no encode and decode).
    if std::any::TypeId::of::<T>() == std::any::TypeId::of::<Term>() {
        let b: Box<dyn std::any::Any> = Box::new(t.clone());
        if let Ok(v) = b.downcast::<T>() {
            return Ok(*v);
        }
    }
    orbit_term::from_term(t).map_err(|e| {
        format!(
            "argument {} ({t}) is not a {}: {e}",
            i + 1,
            std::any::type_name::<T>()
        )
    })
}

/// Limits for one argument read from the bytes: at least as strict as those of the
/// whole argument list's decode (`DecodeLimits::DEFAULT`), in which the argument sits
/// two levels deep (in `A` of `[Res, M, F, A]`) after at most `before` bytes holding at
/// most that many atoms, plus the three atoms of `Res`, `M` and `F`. Whatever decodes
/// under them would decode under the list's.
fn arg_limits(before: usize) -> orbit_term::DecodeLimits {
    let d = orbit_term::DecodeLimits::DEFAULT;
    orbit_term::DecodeLimits {
        max_depth: d.max_depth.saturating_sub(2),
        max_atoms: d.max_atoms.saturating_sub(3 + before),
        ..d
    }
}

/// Reads argument `T` at `*at` in `bytes`, as [`arg_from`] reads it from its term (a
/// `Term` decoded as it is, anything else through serde), and moves `*at` past it.
fn arg_bytes<T: DeserializeOwned + 'static>(bytes: &[u8], at: &mut usize) -> Option<T> {
    let rest = bytes.get(*at..)?;
    let limits = arg_limits(*at);
    if std::any::TypeId::of::<T>() == std::any::TypeId::of::<Term>() {
        let (t, n) = Term::decode_body(rest, &limits).ok()?;
        let b: Box<dyn std::any::Any> = Box::new(t);
        let v = b.downcast::<T>().ok()?;
        *at += n;
        return Some(*v);
    }
    let mut de = orbit_term::Deserializer::new(rest, limits);
    let v = T::deserialize(&mut de).ok()?;
    *at += de.position();
    Some(v)
}

impl FromArgs for () {
    const ARITY: usize = 0;
    fn from_args(_: &[Term]) -> Result<(), String> {
        Ok(())
    }
    fn from_bytes(bytes: &[u8], tail: &[u8]) -> Option<()> {
        (bytes == tail).then_some(())
    }
}

impl IntoArgs for () {
    fn into_args(self) -> Result<Vec<Term>, ErpcError> {
        Ok(Vec::new())
    }
}

macro_rules! tuple_args {
    ($n:expr; $($t:ident $i:tt),+) => {
        impl<$($t: DeserializeOwned + 'static),+> FromArgs for ($($t,)+) {
            const ARITY: usize = $n;
            fn from_args(args: &[Term]) -> Result<Self, String> {
                if args.len() != $n {
                    return Err(format!("{} arguments, expected {}", args.len(), $n));
                }
                Ok(($(arg_from::<$t>($i, &args[$i])?,)+))
            }
            fn from_bytes(bytes: &[u8], tail: &[u8]) -> Option<Self> {
                let mut at = 0;
                let v = ($(arg_bytes::<$t>(bytes, &mut at)?,)+);
                (bytes.get(at..)? == tail).then_some(v)
            }
        }
        impl<$($t: Serialize),+> IntoArgs for ($($t,)+) {
            fn into_args(self) -> Result<Vec<Term>, ErpcError> {
                Ok(vec![$(arg_term(&self.$i)?),+])
            }
            fn into_wire_args(self) -> Result<WireArgs, ErpcError> {
                let mut body = Vec::with_capacity(64);
                body.extend_from_slice(&[108, 0, 0, 0, $n]);
                let mut ok = true;
                $(ok = ok && self.$i.serialize(&mut orbit_term::Serializer::new(&mut body)).is_ok();)+
                body.push(106);
                if !ok || body.len() >= WIRE_ARGS_MAX {
                    // The error, or a long list, as `into_args` gives it.
                    return self.into_args().map(WireArgs::Terms);
                }
                Ok(WireArgs::Encoded(body))
            }
        }
    };
}

tuple_args!(1; A 0);
tuple_args!(2; A 0, B 1);
tuple_args!(3; A 0, B 1, C 2);
tuple_args!(4; A 0, B 1, C 2, D 3);
tuple_args!(5; A 0, B 1, C 2, D 3, E 4);
tuple_args!(6; A 0, B 1, C 2, D 3, E 4, F 5);
tuple_args!(7; A 0, B 1, C 2, D 3, E 4, F 5, G 6);
tuple_args!(8; A 0, B 1, C 2, D 3, E 4, F 5, G 6, H 7);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn typed_arguments_decode_per_position() {
        let args = vec![Term::Int(1), Term::Binary(b"x".to_vec())];
        let (a, b): (i64, String) = FromArgs::from_args(&args).unwrap();
        assert_eq!((a, b.as_str()), (1, "x"));
        let e = <(i64, i64)>::from_args(&args).unwrap_err();
        assert!(e.contains("argument 2"), "{e}");
        assert!(<(i64,)>::from_args(&args).is_err());
        let (t,): (Term,) = FromArgs::from_args(&args[..1]).unwrap();
        assert_eq!(t, Term::Int(1));
        assert_eq!((1, "a").into_args().unwrap().len(), 2);
        // Encoded at once, the same list as the terms.
        let w = (1, "a", vec![2u8, 3]).into_wire_args().unwrap();
        assert!(matches!(w, WireArgs::Encoded(_)));
        assert_eq!(
            w.into_terms().unwrap(),
            (1, "a", vec![2u8, 3]).into_args().unwrap()
        );
        // Too long to encode at once: terms.
        let long = "x".repeat(WIRE_ARGS_MAX);
        assert!(matches!(
            (long.as_str(),).into_wire_args().unwrap(),
            WireArgs::Terms(_)
        ));
    }

    #[test]
    fn names_must_be_atoms_and_replace() {
        assert!(register("", "f", 0, |_| Ok(Term::nil())).is_err());
        assert!(register("m", &"f".repeat(256), 0, |_| Ok(Term::nil())).is_err());
        assert!(register("m", "f", 256, |_| Ok(Term::nil())).is_err());
        register("reg_test", "f", 1, |_| Ok(Term::Int(1))).unwrap();
        register("reg_test", "f", 1, |_| Ok(Term::Int(2))).unwrap();
        let Some(Func::Sync(f)) = lookup("reg_test", "f", 1) else {
            panic!("registered")
        };
        assert_eq!(f(vec![Term::nil()]).unwrap(), Term::Int(2));
        assert!(!is_registered("reg_test", "f", 2));
        assert!(unregister("reg_test", "f", 1));
        assert!(!unregister("reg_test", "f", 1));
        assert!(is_registered("erlang", "node", 0));
    }
}
