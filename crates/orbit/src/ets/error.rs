//! Errors of table operations: each says what went wrong and what to do about it.
//!
//! Erlang answers almost every misuse with `badarg`; Orbit names the cause instead.

use std::path::PathBuf;
use std::sync::Arc;

use crate::pid::Pid;

use super::{Protection, TableType};

/// Why a table operation failed.
#[derive(Debug, Clone, thiserror::Error)]
pub enum EtsError {
    /// The calling process may not do this on the table (Erlang: `badarg`).
    #[error("access denied: table {table} is {protection} and owned by {owner}; {caller} may not {op} it \
             (only the owner may write a protected table, or touch a private one): \
             make the table public or ask the owner to do it")]
    AccessDenied {
        /// The table (its name, or `#Tab<id>`).
        table: String,
        /// The operation that was refused (`read`, `write`, `delete`, `give away`, ...).
        op: &'static str,
        /// The table's protection.
        protection: Protection,
        /// The owner (`#PID<0.0.0>` for a table owned by code outside any process).
        owner: Pid,
        /// Who asked (`#PID<0.0.0>` outside any process).
        caller: Pid,
    },
    /// The table was deleted (its owner exited without an heir, or `delete_table` was called).
    #[error("table {0} no longer exists (deleted, or its owner exited without an heir): create it again or set an heir")]
    Deleted(String),
    /// No object has the key (`lookup_element`, `update_counter` without a default).
    #[error(
        "no object with this key in table {0}: insert it first or use the variant taking a default"
    )]
    NotFound(String),
    /// The operation is not defined for the table's type.
    #[error("{op} is not supported on {kind} table {table}: {hint}")]
    WrongType {
        /// The table.
        table: String,
        /// The operation.
        op: &'static str,
        /// The table's type.
        kind: TableType,
        /// What to use instead.
        hint: &'static str,
    },
    /// An update_counter result does not fit the counter's type.
    #[error("update_counter on table {0} overflows the counter's integer type: use a wider type or a threshold")]
    Overflow(String),
    /// A bad argument, with the reason.
    #[error("bad argument: {0}")]
    BadArg(String),
    /// A named table with this name exists.
    #[error("a table named {0:?} already exists: delete it first or pick another name")]
    NameTaken(Arc<str>),
    /// No table has this name.
    #[error("no table is named {0:?}")]
    NoSuchName(Arc<str>),
    /// The named table holds other key/value types than asked for.
    #[error("table {name:?} holds objects of type ({actual}), not ({asked}): look it up with the types it was created with")]
    NameTypeMismatch {
        /// The name.
        name: Arc<str>,
        /// The table's key and value types.
        actual: String,
        /// The types asked for.
        asked: String,
    },
    /// The process to give the table to (or the heir) is not alive or not local.
    #[error(
        "{0} is not a live local process: a table can only be given to a live process on this node"
    )]
    NotAlive(Pid),
    /// `give_away` to the current owner.
    #[error("{0} already owns the table: give it to another process")]
    AlreadyOwner(Pid),
    /// The `ETS-TRANSFER` message could not be delivered.
    #[error("could not deliver ETS-TRANSFER to {pid}: {reason} (the receiving process's message type must be EtsTransfer<K, V, D>)")]
    TransferFailed {
        /// The receiver.
        pid: Pid,
        /// Why.
        reason: String,
    },
    /// Owner tracking needs a tokio runtime (a table created outside a runtime).
    #[error(
        "no tokio runtime: tables owned by processes need one (create the table inside a process)"
    )]
    NoRuntime,
    /// Reading or writing a table file failed.
    #[error("i/o error on {path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The error.
        source: Arc<std::io::Error>,
    },
    /// The file is not a table file, or is damaged (Erlang: `badfile`).
    #[error("bad table file {path}: {reason}")]
    BadFile {
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
    /// The file's checksum does not match its contents (Erlang: `checksum_error`).
    #[error("checksum error in table file {path} ({part}): the file is damaged; restore it from a backup")]
    ChecksumError {
        /// The file.
        path: PathBuf,
        /// `header` or `objects`.
        part: &'static str,
    },
    /// The number of objects in the file differs from its header (Erlang: `invalid_object_count`).
    #[error("invalid object count in table file {path}: header says {expected}, file holds {found}; the file is damaged or truncated")]
    InvalidObjectCount {
        /// The file.
        path: PathBuf,
        /// The count in the header.
        expected: u64,
        /// The objects found.
        found: u64,
    },
    /// The file was written by a newer Orbit.
    #[error("table file {path} has format version {found}; this Orbit reads up to version {supported}: upgrade Orbit to read it")]
    NewerFormat {
        /// The file.
        path: PathBuf,
        /// The file's version.
        found: u32,
        /// The newest version this build reads.
        supported: u32,
    },
    /// An object could not be encoded for a file.
    #[error("cannot encode an object of table {table}: {reason}")]
    Encode {
        /// The table.
        table: String,
        /// Why.
        reason: String,
    },
}

/// Results of table operations.
pub type Result<T, E = EtsError> = std::result::Result<T, E>;
