//! A table owner in a supervision tree: the child spec of a process that creates a
//! table and owns it (in Elixir, a GenServer whose `init` calls `:ets.new`).
//!
//! The owner process runs `make` in itself at each (re)start, so the table it builds
//! is owned by it, and then only waits. When it exits — stopped by its supervisor, or
//! crashed — its table is deleted (or handed to its heir) *before* the supervisor hears
//! of the exit, so the restarted owner can create a table under the same name at once.
//! (A table whose owner exits otherwise is deleted a moment later by its watcher.)
//! Find the table of the running owner by name with [`whereis`](super::whereis).
//!
//! Defaults: a permanent worker with a 5 s shutdown (OTP's for workers).

use std::sync::Arc;

use tokio::sync::oneshot;

use super::error::EtsError;
use super::owner;
use super::table::{Key, Table, Value};
use crate::exit::ExitReason;
use crate::pid::Pid;
use crate::process::{Context, Spawn};
use crate::supervisor::ChildSpec;

/// Attached to the owner process: on its exit, the table goes to its heir or is
/// deleted at once (if it still belongs to that process).
struct OwnedTable<K: Key, V: Value> {
    table: Table<K, V>,
    owner: Pid,
}

impl<K: Key, V: Value> Drop for OwnedTable<K, V> {
    fn drop(&mut self) {
        owner::owner_died(&self.table, self.owner);
    }
}

impl ChildSpec {
    /// A process that owns one ETS table as a child: at each (re)start it runs `make`
    /// (e.g. `|| Table::builder().named("sessions").public().build()`) in itself and
    /// owns the table it returns; the table goes with the process (see the module
    /// docs). A `make` that fails fails the child's start with its error. Permanent
    /// worker, 5 s shutdown.
    pub fn ets_table<K, V, F>(id: impl Into<String>, make: F) -> ChildSpec
    where
        K: Key,
        V: Value,
        F: Fn() -> Result<Table<K, V>, EtsError> + Send + Sync + 'static,
    {
        let make = Arc::new(make);
        ChildSpec::worker(id, move || {
            let make = make.clone();
            async move {
                let (tx, rx) = oneshot::channel::<Result<(), EtsError>>();
                let h = Spawn::new()
                    .link()
                    .label("ets_table_owner")
                    .spawn(move |mut ctx: Context<()>| async move {
                        let table = match make() {
                            Ok(t) => t,
                            Err(e) => {
                                let reason = ExitReason::error(format!(
                                    "the table owner could not create its table: {e}"
                                ));
                                let _ = tx.send(Err(e));
                                return reason;
                            }
                        };
                        let me = ctx.pid();
                        let _ = crate::attachment::attach(
                            me,
                            Box::new(OwnedTable { table, owner: me }),
                        );
                        let _ = tx.send(Ok(()));
                        loop {
                            let _ = ctx.recv().await;
                        }
                    })
                    .map_err(|e| ExitReason::error(e.to_string()))?;
                match rx.await {
                    Ok(Ok(())) => Ok(h.pid()),
                    Ok(Err(e)) => Err(ExitReason::error(format!(
                        "the table owner could not create its table: {e}"
                    ))),
                    Err(_) => Err(h.wait_exit().await),
                }
            }
        })
    }
}
