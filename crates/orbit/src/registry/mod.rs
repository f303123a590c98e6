//! Names for processes: the three ways to address a process other than its pid.
//!
//! - [`names`]: local registered names (Erlang's `register`/`whereis`), one name per
//!   process; re-exported here and at the crate root as before.
//! - [`keyed`]: Elixir's `Registry`, a key-value store of processes, unique or
//!   duplicate keys, whose entries go away when their process exits.
//! - [`dest`]: [`Dest`], "a name works wherever a pid does": a pid, a local name or a
//!   `via` name (a key in a keyed registry), accepted by [`crate::send`],
//!   [`crate::whereis`], GenServer calls and starts, and `send_after_to`.

pub mod dest;
pub mod keyed;
pub mod names;

pub use dest::{whereis_dest, Dest, Via};
pub use keyed::{Keys, Registry, RegistryError};
pub(crate) use names::release;
pub use names::{register, registered, send_named, unregister, whereis};
