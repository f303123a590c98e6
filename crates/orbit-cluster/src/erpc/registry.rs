//! The Rust functions other nodes may call, under `(module, function, arity)`.
//!
//! A BEAM node calls `:erpc.call(orbit, Calc, :add, [1, 2])`; the module is the atom
//! `'Elixir.Calc'` on the wire, so a function Elixir callers reach as `Calc.add/2` is
//! registered as `("Elixir.Calc", "add", 2)`, one Erlang callers reach as `calc:add/2`
//! as `("calc", "add", 2)`. Functions take the argument list as terms
//! ([`register`], [`register_async`]) or typed through serde ([`register_typed`]:
//! arguments decoded per position, the arity from the tuple type). Registering the same
//! name and arity again replaces the function.
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

/// module → [(function, arity, func)]: lookups by `&str` without building a key.
type Table = HashMap<Box<str>, Vec<(Box<str>, usize, Func)>>;

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

fn insert(module: &str, function: &str, arity: usize, f: Func) -> Result<(), ErpcError> {
    check_name("module", module)?;
    check_name("function", function)?;
    if arity > 255 {
        return Err(ErpcError::BadArg(format!(
            "arity {arity} is over 255, the most a BEAM function takes"
        )));
    }
    insert_into(&mut table().write(), module, function, arity, f);
    Ok(())
}

fn insert_into(t: &mut Table, module: &str, function: &str, arity: usize, f: Func) {
    let fs = t.entry(module.into()).or_default();
    match fs
        .iter_mut()
        .find(|(n, a, _)| &**n == function && *a == arity)
    {
        Some(slot) => slot.2 = f,
        None => fs.push((function.into(), arity, f)),
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
    insert(module, function, arity, Func::Sync(Arc::new(f)))
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
    insert(module, function, arity, Func::Async(Arc::new(f)))
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
    register(module, function, A::ARITY, move |args: Vec<Term>| {
        let a = match A::from_args(&args) {
            Ok(a) => a,
            Err(why) => {
                tracing::debug!(module = %m, function = %fname, %why, "erpc arguments do not decode");
                return Err(function_clause(&m, &fname, args));
            }
        };
        let r = f(a)?;
        orbit_term::to_term(&r).map_err(|e| ErpcError::Encode {
            type_name: std::any::type_name::<R>(),
            reason: e.to_string(),
        })
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
    fs.retain(|(n, a, _)| !(&**n == function && *a == arity));
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

/// The function registered as `module:function/arity`.
pub(crate) fn lookup(module: &str, function: &str, arity: usize) -> Option<Func> {
    let t = table().read();
    t.get(module)?
        .iter()
        .find(|(n, a, _)| &**n == function && *a == arity)
        .map(|(_, _, f)| f.clone())
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
}

/// Typed arguments of a call to another node: a tuple of serde values (each becomes one
/// argument), a `Vec<Term>` or a slice of terms (the argument list itself), or `()`.
pub trait IntoArgs {
    /// The argument list.
    fn into_args(self) -> Result<Vec<Term>, ErpcError>;
}

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

impl FromArgs for () {
    const ARITY: usize = 0;
    fn from_args(_: &[Term]) -> Result<(), String> {
        Ok(())
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
        }
        impl<$($t: Serialize),+> IntoArgs for ($($t,)+) {
            fn into_args(self) -> Result<Vec<Term>, ErpcError> {
                Ok(vec![$(arg_term(&self.$i)?),+])
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
