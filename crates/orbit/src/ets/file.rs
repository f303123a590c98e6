//! `tab2file`, `file2tab`, `tabfile_info`: tables saved to and loaded from files.
//!
//! # Format (version 2): Erlang terms, framed and checksummed
//!
//! Every integer of the framing is little-endian; the header and each object are one
//! external term (ETF, Erlang's `term_to_binary` format, uncompressed), written by
//! orbit-term's serde encoder.
//!
//! ```text
//! offset 0   "ORBITETS"     8 bytes, magic
//!        8   version        u32 LE (2); this field keeps its place and encoding in every version
//!       12   header_len     u32 LE
//!       16   header         header_len bytes: one ETF term, the map
//!                           #{name => <<"t">> | nil, type => set | ordered_set | bag | duplicate_bag,
//!                             protection => public | protected | private, size => N,
//!                             key_type => <<"u64">>, value_type => <<"alloc::string::String">>}
//!            header_crc     u32 LE, CRC-32 of every byte before it (offsets 0 .. 16 + header_len)
//!            objects        per object: u32 LE length L, then L bytes: one ETF term {Key, Value}
//!            "ORBITEND"     8 bytes, end marker
//!            count          u64 LE, number of objects
//!            body_crc       u32 LE, CRC-32 of objects + end marker + count
//! ```
//!
//! The CRC is CRC-32/ISO-HDLC (zlib's, `erlang:crc32/1`). An object is the 2-tuple
//! `{Key, Value}` in orbit-term's serde mapping (see the orbit-term crate docs: strings
//! are binaries, structs maps with atom keys, unit variants atoms, `None` is `nil`, ...).
//! A BEAM node reads a file with nothing but the standard library:
//!
//! ```erlang
//! {ok, B} = file:read_file(Path),
//! <<"ORBITETS", 2:32/little, HLen:32/little, H:HLen/binary, HCrc:32/little, Rest/binary>> = B,
//! HCrc = erlang:crc32(binary:part(B, 0, 16 + HLen)),
//! N = byte_size(Rest) - 20,
//! <<Objs:N/binary, "ORBITEND", Count:64/little, BCrc:32/little>> = Rest,
//! BCrc = erlang:crc32(binary:part(Rest, 0, N + 16)),
//! Header = binary_to_term(H),
//! Objects = [binary_to_term(O) || <<L:32/little, O:L/binary>> <= Objs],
//! Count = length(Objects).
//! ```
//!
//! (`tests/ets_file_erl.rs` runs exactly this in a real `erl` and compares the result.)
//!
//! ## Why ETF (issue 18 item 8)
//!
//! Version 1 encoded objects with a hand-written, bincode-like serde format (600 lines
//! of this crate). Version 2 uses orbit-term, which Orbit needs anyway for distribution
//! and which is already linear, depth-safe, checked against `erl` and fuzzed: one codec
//! less to keep safe, and a dump is readable by any BEAM node with `binary_to_term`.
//! General formats (bincode, postcard, CBOR) would also do; ETF was chosen for the
//! Erlang interoperability. The framing (magic, lengths, two CRCs, end marker and count)
//! is kept because ETF has no checksum and a bare concatenation of terms could not tell
//! a truncated file from a complete one.
//!
//! ETF is not a faithful image of every Rust value: `Some(())` and `Some(None)` encode as
//! `nil` like `None`, and non-finite floats do not exist in Erlang. So [`tab2file`]
//! decodes every object it writes back (with the loader's limits) and compares it with
//! the original; an object that would not load back equal fails the save with
//! [`EtsError::Encode`] naming it. A file that saved, loads equal. This is why saving
//! needs `K, V: DeserializeOwned` too, and costs about one extra decode per object.
//!
//! ## Versions
//!
//! A file with a version newer than [`FORMAT_VERSION`] is refused with
//! [`EtsError::NewerFormat`]. Version 1 files (the former private encoding) are refused
//! with [`EtsError::BadFile`] saying so: load them with the Orbit build that wrote them
//! and save them again, or recreate them.
//!
//! # Writing
//!
//! Writing goes to a temporary file in the same directory, which is renamed over the
//! target only when complete, so a crash never leaves a half-written file under the real
//! name. With `sync`, the file is fsynced before the rename and the directory after.
//!
//! # Loading
//!
//! Loading always checks everything: magic, version, both checksums, the end marker,
//! every object's framing and decoding (a frame holds exactly one term, nothing after
//! it), and that the object count matches both the header and the trailer. A truncated,
//! bit-flipped, empty or foreign file is refused with [`EtsError::BadFile`],
//! [`EtsError::ChecksumError`] or [`EtsError::InvalidObjectCount`]; a file from a newer
//! format version with [`EtsError::NewerFormat`]. Erlang's `verify` option is accepted
//! and changes nothing: the checks cost less than decoding the objects. The table is also
//! refused when the file's key/value type names differ from the types asked for (unless
//! [`FileOptions::check_types`] is off).
//!
//! # Untrusted input
//!
//! A file from anyone is untrusted, even with valid checksums (a CRC is not a signature).
//! Loading a crafted file gives a table or an error, never a panic, abort or stack
//! overflow:
//! - nothing is preallocated from the declared object count (it is only compared with
//!   the content);
//! - objects are decoded by orbit-term's decoder, which checks every declared length
//!   against the bytes left before reserving anything (each list or tuple element takes
//!   at least 1 byte of ETF, each map entry 2, a binary its own bytes) and refuses
//!   compressed terms (no inflation). So the decoded objects hold at most one in-memory
//!   node per byte of the file. A declared count is reserved only up to 1024 elements
//!   (orbit-term caps container reservations; vectors grow as elements arrive), so the
//!   open levels of a nesting hold at most `MAX_DEPTH x 1024 x` one node (4 MiB for
//!   `Term`, 32 B a node) beyond what was decoded. Memory is the file, plus at most
//!   `file size x` the largest in-memory node of `K`/`V` (24 bytes for a `String` or
//!   `Vec` slot, with amortised growth), plus that constant, plus the table.
//!   `tests/ets_file_hostile.rs` asserts peak <= 64 x file + 4 MiB for nested hostile
//!   lists (`Term` and a recursive serde type); the fuzz replay (`cargo test -p orbit-fuzz
//!   --test replay`) asserts peak allocation <= 64 x the input + 16 MiB over mutated
//!   files and ~1 MB hostile shapes;
//! - nesting deeper than [`MAX_DEPTH`] ETF levels is an error (the decoder also continues
//!   on extra stack segments, so even its own recursion cannot overflow); big integers
//!   are limited to 64 KiB, atoms to a million per object;
//! - time is linear in the file (decoding, checksums) plus the inserts;
//! - two objects under one key in a `set`/`ordered_set` file are an error
//!   ([`EtsError::BadFile`], "duplicate key"): OTP's `file2tab` would insert both, the
//!   last winning, and lose one silently (only `verify` would notice a count mismatch);
//!   refusing loses nothing silently.
//!
//! [`file2tab_from_bytes`] is the same loader over a byte slice, for fuzzing.
//!
//! # Temporary files
//!
//! A save writes `.<file>.tmp-<pid>-<n>` next to the target. A writer killed mid-save
//! leaves it behind; each `tab2file`/`file2tab` of that target removes such files whose
//! `<pid>` no longer runs (checked via `/proc`, so on Linux only), never those of the
//! current process (a live writer may own them).
//!
//! `tab2file` reads the table shard by shard, like `tab2list`: concurrent writes may or
//! may not be included (as in Erlang). Large tables: call these from
//! [`orbit::blocking`](crate::blocking) so they do not hold a process worker thread.

use std::fs::{self, File};
use std::io::{BufWriter, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use orbit_term::DecodeLimits;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use super::error::{EtsError, Result};
use super::table::{Builder, Key, Table, Value};
use super::{Protection, TableType};

const MAGIC: &[u8; 8] = b"ORBITETS";
const END: &[u8; 8] = b"ORBITEND";
/// The file format version this build writes and reads (2: objects as ETF terms).
/// Version 1 (a private binary encoding) is refused with a message saying so.
pub const FORMAT_VERSION: u32 = 2;
const PREFIX: usize = 16;
const TRAILER: usize = 8 + 8 + 4;

/// The deepest ETF nesting of one object `{Key, Value}` that [`file2tab`] accepts and
/// [`tab2file`] writes: tuples, lists and maps each count one level, the object tuple
/// itself is level 1 (`Option`, newtypes and `Box` add none). Deeper is an error, never
/// a stack overflow; the limit also bounds what a hostile file can make the decoder
/// reserve (see the module docs).
pub const MAX_DEPTH: usize = 128;

/// Limits for decoding one object: orbit-term's defaults for peers (64 KiB big
/// integers, a million atoms) with depth [`MAX_DEPTH`]. Compressed terms are refused
/// before any limit applies (`from_slice_with` does not inflate).
const OBJECT_LIMITS: DecodeLimits = DecodeLimits {
    max_depth: MAX_DEPTH,
    ..DecodeLimits::DEFAULT
};

/// Limits for decoding the header (a flat map).
const HEADER_LIMITS: DecodeLimits = DecodeLimits {
    max_depth: 2,
    max_atoms: 64,
    ..DecodeLimits::DEFAULT
};

/// Options of `tab2file` / `file2tab`.
#[derive(Clone, Copy, Debug)]
pub struct FileOptions {
    /// `{sync, true}`: fsync the file (and its directory) before returning. Default false.
    pub sync: bool,
    /// `{verify, true}`: accepted; Orbit always verifies (see the module docs).
    pub verify: bool,
    /// Refuse a file whose key/value type names differ from the types asked for. Default true.
    pub check_types: bool,
}

impl Default for FileOptions {
    fn default() -> Self {
        FileOptions {
            sync: false,
            verify: true,
            check_types: true,
        }
    }
}

impl FileOptions {
    /// The defaults.
    pub fn new() -> Self {
        Self::default()
    }
    /// Sets `sync`.
    pub fn sync(mut self, on: bool) -> Self {
        self.sync = on;
        self
    }
    /// Sets `verify`.
    pub fn verify(mut self, on: bool) -> Self {
        self.verify = on;
        self
    }
    /// Sets `check_types`.
    pub fn check_types(mut self, on: bool) -> Self {
        self.check_types = on;
        self
    }
}

/// The header term: `#{name, type, protection, size, key_type, value_type}`.
#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Header {
    name: Option<String>,
    #[serde(rename = "type")]
    kind: FileType,
    protection: FileProtection,
    size: u64,
    key_type: String,
    value_type: String,
}

/// Erlang's table type atoms.
#[derive(Serialize, Deserialize, Clone, Copy)]
#[serde(rename_all = "snake_case")]
enum FileType {
    Set,
    OrderedSet,
    Bag,
    DuplicateBag,
}

/// Erlang's access mode atoms.
#[derive(Serialize, Deserialize, Clone, Copy)]
#[serde(rename_all = "snake_case")]
enum FileProtection {
    Public,
    Protected,
    Private,
}

impl From<TableType> for FileType {
    fn from(k: TableType) -> Self {
        match k {
            TableType::Set => FileType::Set,
            TableType::OrderedSet => FileType::OrderedSet,
            TableType::Bag => FileType::Bag,
            TableType::DuplicateBag => FileType::DuplicateBag,
        }
    }
}

impl From<FileType> for TableType {
    fn from(k: FileType) -> Self {
        match k {
            FileType::Set => TableType::Set,
            FileType::OrderedSet => TableType::OrderedSet,
            FileType::Bag => TableType::Bag,
            FileType::DuplicateBag => TableType::DuplicateBag,
        }
    }
}

impl From<Protection> for FileProtection {
    fn from(p: Protection) -> Self {
        match p {
            Protection::Public => FileProtection::Public,
            Protection::Protected => FileProtection::Protected,
            Protection::Private => FileProtection::Private,
        }
    }
}

impl From<FileProtection> for Protection {
    fn from(p: FileProtection) -> Self {
        match p {
            FileProtection::Public => Protection::Public,
            FileProtection::Protected => Protection::Protected,
            FileProtection::Private => Protection::Private,
        }
    }
}

/// What `tabfile_info` reads from a file's header.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FileInfo {
    /// The format version.
    pub version: u32,
    /// The table's name, if it was named.
    pub name: Option<String>,
    /// The table's type.
    pub kind: TableType,
    /// The table's access mode.
    pub protection: Protection,
    /// The number of objects.
    pub size: u64,
    /// The key type's Rust name.
    pub key_type: String,
    /// The value type's Rust name.
    pub value_type: String,
}

fn io(path: &Path, e: std::io::Error) -> EtsError {
    EtsError::Io {
        path: path.to_path_buf(),
        source: Arc::new(e),
    }
}

fn bad(path: &Path, reason: impl Into<String>) -> EtsError {
    EtsError::BadFile {
        path: path.to_path_buf(),
        reason: reason.into(),
    }
}

/// Says why orbit-term refused some bytes, in words that fit a table file (the decode
/// limits are fixed here, so "raise it in DecodeLimits" would mislead).
fn etf_reason(e: &orbit_term::Error) -> String {
    match e {
        orbit_term::Error::LimitExceeded {
            limit: "max_depth", ..
        } => format!("nesting deeper than {MAX_DEPTH} levels (MAX_DEPTH): refused"),
        orbit_term::Error::LimitExceeded { limit, value, max } => {
            format!("limit {limit} exceeded: {value} > {max}: refused")
        }
        e => e.to_string(),
    }
}

/// `ets:tab2file/3`: writes every object of `table` to `path` (see the module docs).
/// Needs read access to the table. Every object is decoded back and compared before the
/// file is committed: an object ETF cannot carry faithfully (`Some(())`, `Some(None)`, a
/// NaN or infinite float, nesting deeper than [`MAX_DEPTH`]) fails the save with
/// [`EtsError::Encode`] and leaves any existing file at `path` untouched.
pub fn tab2file<K, V>(table: &Table<K, V>, path: impl AsRef<Path>, opts: FileOptions) -> Result<()>
where
    K: Key + Serialize + DeserializeOwned,
    V: Value + Serialize + DeserializeOwned,
{
    let path = path.as_ref();
    let objects = table.tab2list()?;
    let header = Header {
        name: table.name().map(str::to_string),
        kind: table.kind().into(),
        protection: table.protection().into(),
        size: objects.len() as u64,
        key_type: std::any::type_name::<K>().to_string(),
        value_type: std::any::type_name::<V>().to_string(),
    };
    let enc_err = |reason: String| EtsError::Encode {
        table: table.label(),
        reason,
    };
    let hbytes = orbit_term::to_vec(&header).map_err(|e| enc_err(format!("header: {e}")))?;
    let hlen = u32::try_from(hbytes.len()).map_err(|_| bad(path, "header too large"))?;
    let mut head = Vec::with_capacity(PREFIX + hbytes.len() + 4);
    head.extend_from_slice(MAGIC);
    head.extend_from_slice(&FORMAT_VERSION.to_le_bytes());
    head.extend_from_slice(&hlen.to_le_bytes());
    head.extend_from_slice(&hbytes);
    let hcrc = crc32fast::hash(&head);
    head.extend_from_slice(&hcrc.to_le_bytes());

    clean_stale_temps(path);
    let tmp = temp_path(path);
    let write = || -> Result<()> {
        let f = File::create(&tmp).map_err(|e| io(&tmp, e))?;
        let mut w = BufWriter::with_capacity(1 << 16, f);
        w.write_all(&head).map_err(|e| io(&tmp, e))?;
        let mut crc = crc32fast::Hasher::new();
        let mut buf = Vec::new();
        for (i, obj) in objects.iter().enumerate() {
            buf.clear();
            buf.extend_from_slice(&[0; 4]);
            orbit_term::to_vec_into(obj, &mut buf)
                .map_err(|e| enc_err(format!("object {i}: {e}")))?;
            let n = u32::try_from(buf.len() - 4)
                .map_err(|_| enc_err(format!("object {i} encodes to more than 4 GiB")))?;
            // What file2tab would read back must be this very object.
            let back =
                orbit_term::from_slice_with::<(K, V)>(&buf[4..], &OBJECT_LIMITS).map_err(|e| {
                    enc_err(format!(
                        "object {i} would not load back ({}); nothing was written",
                        etf_reason(&e)
                    ))
                })?;
            if back != *obj {
                return Err(enc_err(format!(
                    "object {i} would load back different: ETF has one form for values \
                     Rust tells apart (`Some(())` and `Some(None)` are `nil` like `None`); \
                     nothing was written"
                )));
            }
            buf[..4].copy_from_slice(&n.to_le_bytes());
            crc.update(&buf);
            w.write_all(&buf).map_err(|e| io(&tmp, e))?;
        }
        let mut tail = Vec::with_capacity(TRAILER);
        tail.extend_from_slice(END);
        tail.extend_from_slice(&(objects.len() as u64).to_le_bytes());
        crc.update(&tail);
        tail.extend_from_slice(&crc.finalize().to_le_bytes());
        w.write_all(&tail).map_err(|e| io(&tmp, e))?;
        let f = w.into_inner().map_err(|e| io(&tmp, e.into_error()))?;
        if opts.sync {
            f.sync_all().map_err(|e| io(&tmp, e))?;
        }
        drop(f);
        fs::rename(&tmp, path).map_err(|e| io(path, e))?;
        if opts.sync {
            sync_dir(path);
        }
        Ok(())
    };
    let r = write();
    if r.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    r
}

fn temp_path(path: &Path) -> PathBuf {
    static N: AtomicU64 = AtomicU64::new(0);
    let n = N.fetch_add(1, Ordering::Relaxed);
    let file = path
        .file_name()
        .map(|f| f.to_string_lossy().into_owned())
        .unwrap_or_else(|| "table".into());
    path.with_file_name(format!(".{file}.tmp-{}-{n}", std::process::id()))
}

/// Removes temp files `.<file>.tmp-<pid>-<n>` left by writers of `path` that died
/// mid-save: those of a process that no longer runs (checked via `/proc/<pid>` where it
/// exists). Files of this process are never removed here: a live writer may own them
/// (each save removes its own temp file on failure). Best effort: errors are ignored.
fn clean_stale_temps(path: &Path) {
    let file = match path.file_name() {
        Some(f) => f.to_string_lossy().into_owned(),
        None => return,
    };
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    let prefix = format!(".{file}.tmp-");
    let me = std::process::id();
    let proc_fs = Path::new("/proc/self").exists();
    let Ok(entries) = fs::read_dir(dir) else {
        return;
    };
    for e in entries.flatten() {
        let name = e.file_name();
        let name = name.to_string_lossy();
        let Some(rest) = name.strip_prefix(&prefix) else {
            continue;
        };
        let Some((pid, n)) = rest.split_once('-') else {
            continue;
        };
        let (Ok(pid), true) = (pid.parse::<u32>(), n.parse::<u64>().is_ok()) else {
            continue;
        };
        if pid == me || !proc_fs {
            continue;
        }
        if !Path::new(&format!("/proc/{pid}")).exists() {
            let _ = fs::remove_file(e.path());
        }
    }
}

fn sync_dir(path: &Path) {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    if let Ok(d) = File::open(dir) {
        let _ = d.sync_all();
    }
}

/// Checks the fixed prefix; returns (version, header_len).
fn check_prefix(path: &Path, b: &[u8]) -> Result<(u32, usize)> {
    if b.is_empty() {
        return Err(bad(path, "the file is empty"));
    }
    let m = b.len().min(8);
    if b[..m] != MAGIC[..m] {
        return Err(bad(path, "not an Orbit table file (wrong magic bytes)"));
    }
    if b.len() < PREFIX {
        return Err(bad(path, "truncated: the file ends inside its header"));
    }
    let mut v = [0u8; 4];
    v.copy_from_slice(&b[8..12]);
    let version = u32::from_le_bytes(v);
    if version > FORMAT_VERSION {
        return Err(EtsError::NewerFormat {
            path: path.to_path_buf(),
            found: version,
            supported: FORMAT_VERSION,
        });
    }
    if version == 0 {
        return Err(bad(path, "format version 0 does not exist"));
    }
    if version < FORMAT_VERSION {
        return Err(bad(
            path,
            format!(
                "format version {version} (Orbit's former private object encoding) is no \
                 longer read; this build reads version {FORMAT_VERSION} (objects as Erlang \
                 terms). Load the file with the Orbit build that wrote it and save it \
                 again with this one, or recreate it"
            ),
        ));
    }
    v.copy_from_slice(&b[12..16]);
    Ok((version, u32::from_le_bytes(v) as usize))
}

/// Parses and checks the header in `b` (which holds at least prefix + header + crc).
fn parse_header(path: &Path, b: &[u8], hlen: usize) -> Result<(Header, TableType, Protection)> {
    let end = PREFIX + hlen;
    let mut c = [0u8; 4];
    c.copy_from_slice(&b[end..end + 4]);
    if crc32fast::hash(&b[..end]) != u32::from_le_bytes(c) {
        return Err(EtsError::ChecksumError {
            path: path.to_path_buf(),
            part: "header",
        });
    }
    let h: Header = orbit_term::from_slice_with(&b[PREFIX..end], &HEADER_LIMITS)
        .map_err(|e| bad(path, format!("bad header: {}", etf_reason(&e))))?;
    let (kind, prot) = (h.kind.into(), h.protection.into());
    Ok((h, kind, prot))
}

/// `ets:tabfile_info/1`: reads and checks only the header of a table file.
pub fn tabfile_info(path: impl AsRef<Path>) -> Result<FileInfo> {
    let path = path.as_ref();
    let mut f = File::open(path).map_err(|e| io(path, e))?;
    let mut b = Vec::with_capacity(PREFIX);
    (&mut f)
        .take(PREFIX as u64)
        .read_to_end(&mut b)
        .map_err(|e| io(path, e))?;
    let (version, hlen) = check_prefix(path, &b)?;
    let want = (hlen + 4) as u64;
    let got = (&mut f)
        .take(want)
        .read_to_end(&mut b)
        .map_err(|e| io(path, e))?;
    if (got as u64) < want {
        return Err(bad(path, "truncated: the file ends inside its header"));
    }
    let (h, kind, protection) = parse_header(path, &b, hlen)?;
    Ok(FileInfo {
        version,
        name: h.name,
        kind,
        protection,
        size: h.size,
        key_type: h.key_type,
        value_type: h.value_type,
    })
}

/// `ets:file2tab/2`: loads a table written by [`tab2file`], checking it entirely first.
/// The new table has the file's type, protection and name and is owned by the caller.
pub fn file2tab<K, V>(path: impl AsRef<Path>, opts: FileOptions) -> Result<Table<K, V>>
where
    K: Key + DeserializeOwned,
    V: Value + DeserializeOwned,
{
    let path = path.as_ref();
    clean_stale_temps(path);
    let b = fs::read(path).map_err(|e| io(path, e))?;
    load_bytes(path, &b, opts)
}

/// Loads a table from the bytes of a table file, exactly as [`file2tab`] does from a file
/// (errors name the path `<bytes>`). For fuzzing: any input gives a table or an error,
/// never a panic; memory as stated in the module docs ("Untrusted input"); nesting is
/// limited to [`MAX_DEPTH`].
#[doc(hidden)]
pub fn file2tab_from_bytes<K, V>(bytes: &[u8], opts: FileOptions) -> Result<Table<K, V>>
where
    K: Key + DeserializeOwned,
    V: Value + DeserializeOwned,
{
    load_bytes(Path::new("<bytes>"), bytes, opts)
}

fn load_bytes<K, V>(path: &Path, b: &[u8], opts: FileOptions) -> Result<Table<K, V>>
where
    K: Key + DeserializeOwned,
    V: Value + DeserializeOwned,
{
    let (_, hlen) = check_prefix(path, b)?;
    let body_start = PREFIX
        .checked_add(hlen)
        .and_then(|x| x.checked_add(4))
        .filter(|x| *x <= b.len())
        .ok_or_else(|| bad(path, "truncated: the file ends inside its header"))?;
    let (h, kind, protection) = parse_header(path, b, hlen)?;
    if opts.check_types {
        let (k, v) = (std::any::type_name::<K>(), std::any::type_name::<V>());
        if h.key_type != k || h.value_type != v {
            return Err(bad(
                path,
                format!(
                    "the file holds objects of type ({}, {}), asked for ({k}, {v}); \
                     load it with those types or turn off FileOptions::check_types",
                    h.key_type, h.value_type
                ),
            ));
        }
    }
    if b.len() < body_start + TRAILER {
        return Err(bad(path, "truncated: the end marker is missing"));
    }
    let tail = b.len() - TRAILER;
    if &b[tail..tail + 8] != END {
        return Err(bad(path, "truncated or damaged: the end marker is missing"));
    }
    let mut c = [0u8; 4];
    c.copy_from_slice(&b[b.len() - 4..]);
    if crc32fast::hash(&b[body_start..b.len() - 4]) != u32::from_le_bytes(c) {
        return Err(EtsError::ChecksumError {
            path: path.to_path_buf(),
            part: "objects",
        });
    }
    let mut n8 = [0u8; 8];
    n8.copy_from_slice(&b[tail + 8..tail + 16]);
    let trailer_count = u64::from_le_bytes(n8);

    // No preallocation from the declared count: it is checked against the content below.
    // Growth is amortised, and each object occupies at least 4 bytes of the file.
    let mut objects: Vec<(K, V)> = Vec::new();
    let mut pos = body_start;
    while pos < tail {
        if tail - pos < 4 {
            return Err(bad(path, "damaged: an object's length is cut off"));
        }
        c.copy_from_slice(&b[pos..pos + 4]);
        let n = u32::from_le_bytes(c) as usize;
        pos += 4;
        if n > tail - pos {
            return Err(bad(
                path,
                "damaged: an object runs past the end of the objects",
            ));
        }
        let obj = orbit_term::from_slice_with::<(K, V)>(&b[pos..pos + n], &OBJECT_LIMITS).map_err(
            |e| {
                bad(
                    path,
                    format!(
                        "object {} cannot be decoded: {}",
                        objects.len(),
                        etf_reason(&e)
                    ),
                )
            },
        )?;
        objects.push(obj);
        pos += n;
    }
    let found = objects.len() as u64;
    if found != h.size || found != trailer_count {
        return Err(EtsError::InvalidObjectCount {
            path: path.to_path_buf(),
            expected: h.size,
            found,
        });
    }
    let mut builder = Builder::<K, V>::new().kind(kind).protection(protection);
    if let Some(name) = &h.name {
        builder = builder.named(name);
    }
    let t = builder.build()?;
    // The caller owns the new table, so even a protected or private one accepts this.
    t.insert_many(objects)?;
    // A set/ordered_set file with two objects under one key cannot have been written by
    // tab2file. OTP's file2tab would insert both (the last wins) and lose one silently;
    // here that is an error, so nothing is ever lost without a word.
    if matches!(kind, TableType::Set | TableType::OrderedSet) {
        let loaded = t.size()? as u64;
        if loaded != found {
            return Err(bad(
                path,
                format!(
                    "damaged: the {kind:?} file holds {found} objects but only {loaded} \
                     distinct keys (a duplicate key); refusing to drop objects silently"
                ),
            ));
        }
    }
    Ok(t)
}
