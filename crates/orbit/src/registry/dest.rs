//! [`Dest`]: where a message or a call goes — a pid, a local name, a name on another
//! node, or a `via` name.
//!
//! OTP accepts a pid, a registered name, `{Name, Node}` or `{:via, Module, Name}`
//! wherever it sends or calls; here that is one enum, built from a [`Pid`], a `&str` (a
//! local name), a `(name, node)` pair of strings (a name registered on another node) or
//! a [`Via`] (a key in a keyed [`Registry`](super::Registry)), and taken by
//! [`crate::send`], [`crate::whereis`], [`crate::gen_server::call`] / `cast`,
//! [`crate::gen_server::start_named`] and [`crate::timer::send_after_to`].
//!
//! A name is resolved at each use (a name whose process restarted reaches the new
//! process). A remote pid or `{name, node}` goes through the distribution router
//! ([`crate::router`]); `{name, node}` with this node's own name is the local name.
//! Differences from OTP: `via` works with Orbit's own keyed registries only (no
//! user-defined `register_name`/`whereis_name` modules), and [`Dest::whereis`] of a
//! remote name is `None` (Erlang's `whereis/1` is local too; asking the other node
//! would need a round trip).

use std::any::Any;
use std::fmt;
use std::sync::Arc;

use super::keyed::{self, RegistryError};
use crate::pid::Pid;

/// A key usable in a [`Via`] name (any registry key type).
pub trait ViaKey: Any + Send + Sync + fmt::Debug {
    /// The key as `Any`, for the registry to downcast.
    fn as_any(&self) -> &dyn Any;
}

impl<T: Any + Send + Sync + fmt::Debug> ViaKey for T {
    fn as_any(&self) -> &dyn Any {
        self
    }
}

/// A `via` name: `key` in the keyed registry named `registry` (Elixir's
/// `{:via, Registry, {registry, key}}`). The registry must have unique keys.
#[derive(Clone)]
pub struct Via {
    registry: Arc<str>,
    key: Arc<dyn ViaKey>,
}

impl Via {
    /// The name `key` in the registry named `registry`. The key must be of the
    /// registry's key type (a mismatch finds nothing and registers nothing).
    pub fn new<K: ViaKey>(registry: &str, key: K) -> Via {
        Via {
            registry: Arc::from(registry),
            key: Arc::new(key),
        }
    }

    /// The registry's name.
    pub fn registry(&self) -> &str {
        &self.registry
    }

    /// The pid registered under this name, if any.
    pub fn whereis(&self) -> Option<Pid> {
        keyed::find(&self.registry)?.whereis_key((*self.key).as_any())
    }

    /// Registers the calling process under this name (what a behaviour started with a
    /// `via` name does in its own process).
    pub fn register_self(&self) -> Result<(), RegistryError> {
        keyed::find(&self.registry)
            .ok_or_else(|| RegistryError::NoRegistry(self.registry.clone()))?
            .register_key((*self.key).as_any())
    }

    /// Removes the calling process's registration under this name.
    pub fn unregister_self(&self) {
        if let Some(r) = keyed::find(&self.registry) {
            r.unregister_key((*self.key).as_any());
        }
    }
}

impl fmt::Debug for Via {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{{:via, {:?}, {:?}}}", self.registry, self.key)
    }
}

impl fmt::Display for Via {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self, f)
    }
}

/// Where a message or a call goes: "a name works wherever a pid does".
#[derive(Clone, Debug)]
pub enum Dest {
    /// A process, local or remote.
    Pid(Pid),
    /// A locally registered name ([`crate::register`]).
    Local(Arc<str>),
    /// A key in a keyed registry.
    Via(Via),
    /// `name` registered on `node` (Erlang's `{Name, Node}`); built from `(name, node)`.
    Remote {
        /// The registered name.
        name: Arc<str>,
        /// The node's full name (`name@host`).
        node: Arc<str>,
    },
}

impl Dest {
    /// `{name, node}`: `name` registered on `node`. With this node's own name it is
    /// the local name `name` (as `{Name, node()}` is in Erlang).
    pub fn remote(name: &str, node: &str) -> Dest {
        if *crate::pid::local_node() == *node {
            Dest::Local(Arc::from(name))
        } else {
            Dest::Remote {
                name: Arc::from(name),
                node: Arc::from(node),
            }
        }
    }

    /// The pid this destination names now: a local pid only if it is alive, a remote
    /// pid as is, a local or `via` name only if registered; `None` for a name on
    /// another node (it is resolved there, at each send or call).
    pub fn whereis(&self) -> Option<Pid> {
        match self {
            Dest::Pid(p) if p.is_local() => crate::table::lookup(*p).map(|_| *p),
            Dest::Pid(p) => Some(*p),
            Dest::Local(n) => super::names::whereis(n),
            Dest::Via(v) => v.whereis(),
            Dest::Remote { .. } => None,
        }
    }

    /// The node this destination is on, when it is another node: a remote pid's node
    /// or a remote name's node; `None` for everything local.
    pub fn remote_node(&self) -> Option<Arc<str>> {
        match self {
            Dest::Pid(p) if !p.is_local() => Some(p.node()),
            Dest::Remote { node, .. } => Some(node.clone()),
            _ => None,
        }
    }

    /// The name as a string, for errors (`None` for a pid).
    pub(crate) fn name(&self) -> Option<Arc<str>> {
        match self {
            Dest::Pid(_) => None,
            Dest::Local(n) => Some(n.clone()),
            Dest::Via(v) => Some(Arc::from(v.to_string())),
            Dest::Remote { .. } => Some(Arc::from(self.to_string())),
        }
    }
}

impl fmt::Display for Dest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Dest::Pid(p) => write!(f, "{p}"),
            Dest::Local(n) => write!(f, "{n:?}"),
            Dest::Via(v) => write!(f, "{v}"),
            Dest::Remote { name, node } => write!(f, "{{{name:?}, {node:?}}}"),
        }
    }
}

impl From<Pid> for Dest {
    fn from(p: Pid) -> Dest {
        Dest::Pid(p)
    }
}

impl From<&str> for Dest {
    fn from(n: &str) -> Dest {
        Dest::Local(Arc::from(n))
    }
}

impl From<String> for Dest {
    fn from(n: String) -> Dest {
        Dest::Local(Arc::from(n))
    }
}

impl From<&String> for Dest {
    fn from(n: &String) -> Dest {
        Dest::Local(Arc::from(n.as_str()))
    }
}

impl From<Arc<str>> for Dest {
    fn from(n: Arc<str>) -> Dest {
        Dest::Local(n)
    }
}

impl From<(&str, &str)> for Dest {
    /// `(name, node)`: `name` registered on `node` ([`Dest::remote`]).
    fn from((name, node): (&str, &str)) -> Dest {
        Dest::remote(name, node)
    }
}

impl From<(String, String)> for Dest {
    fn from((name, node): (String, String)) -> Dest {
        Dest::remote(&name, &node)
    }
}

impl From<(&str, String)> for Dest {
    fn from((name, node): (&str, String)) -> Dest {
        Dest::remote(name, &node)
    }
}

impl From<(&str, &String)> for Dest {
    fn from((name, node): (&str, &String)) -> Dest {
        Dest::remote(name, node)
    }
}

impl From<Via> for Dest {
    fn from(v: Via) -> Dest {
        Dest::Via(v)
    }
}

impl From<&Dest> for Dest {
    fn from(d: &Dest) -> Dest {
        d.clone()
    }
}

/// The pid a pid, local name or `via` name stands for now (Erlang's `whereis`, for
/// every kind of name); exported at the crate root as [`crate::whereis`].
///
/// ```
/// # #[tokio::main] async fn main() {
/// orbit::run_in_process(async {
///     let me = orbit::self_pid().unwrap();
///     orbit::register("doc_whereis", me).unwrap();
///     assert_eq!(orbit::whereis("doc_whereis"), Some(me));
///     assert_eq!(orbit::whereis(me), Some(me));
/// }).await.unwrap();
/// # }
/// ```
pub fn whereis_dest(dest: impl Into<Dest>) -> Option<Pid> {
    dest.into().whereis()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::SendError;

    #[test]
    fn remote_names_resolve_on_their_node() {
        let d = Dest::from(("counter", "other@host"));
        assert!(
            matches!(&d, Dest::Remote { name, node } if &**name == "counter" && &**node == "other@host")
        );
        assert_eq!(d.whereis(), None);
        assert_eq!(d.remote_node().as_deref(), Some("other@host"));
        assert_eq!(d.to_string(), r#"{"counter", "other@host"}"#);
        // `{name, node()}` is the local name.
        let local = Dest::from(("counter", &*crate::pid::local_node()));
        assert!(matches!(local, Dest::Local(_)));
        assert_eq!(local.remote_node(), None);
        // Without distribution, a send to another node says so at the call.
        assert!(matches!(
            crate::send(("counter", "other@host"), 1u8),
            Err(SendError::NotDistributed)
        ));
    }
}
