//! `tab2file`, `file2tab`, `tabfile_info`: tables saved to and loaded from files.
//!
//! # Format (version 1)
//!
//! ```text
//! "ORBITETS"            8 bytes, magic
//! version               u32 LE (1)
//! header_len            u32 LE
//! header                header_len bytes: name, type, protection, object count,
//!                       key and value type names (codec-encoded)
//! header_crc            u32 LE, CRC-32 of every byte before it
//! objects               per object: u32 LE length, then the codec-encoded (K, V)
//! "ORBITEND"            8 bytes, end marker
//! count                 u64 LE, number of objects
//! body_crc              u32 LE, CRC-32 of objects + end marker + count
//! ```
//!
//! Objects are encoded with `codec`, a small self-contained binary serde
//! format (so `K, V: Serialize + DeserializeOwned`); it does not depend on orbit-term.
//!
//! Writing goes to a temporary file in the same directory, which is renamed over the
//! target only when complete, so a crash never leaves a half-written file under the real
//! name. With `sync`, the file is fsynced before the rename and the directory after.
//!
//! Loading always checks everything: magic, version, both checksums, the end marker,
//! every object's framing and decoding, and that the object count matches both the
//! header and the trailer. A truncated, bit-flipped, empty or foreign file is refused
//! with [`EtsError::BadFile`], [`EtsError::ChecksumError`] or
//! [`EtsError::InvalidObjectCount`]; a file from a newer format version with
//! [`EtsError::NewerFormat`]. Erlang's `verify` option is accepted and changes nothing:
//! the checks cost less than decoding the objects. The table is also refused when the
//! file's key/value type names differ from the types asked for (unless
//! [`FileOptions::check_types`] is off).
//!
//! # Untrusted input
//!
//! A file from anyone is untrusted, even with valid checksums (a CRC is not a signature).
//! Loading a crafted file gives a table or an error, never a panic, abort or stack
//! overflow: nothing is preallocated from the declared object count (it is only compared
//! with the content); every length inside an object is checked against the bytes left and
//! sequence preallocation is capped by them, so memory stays within a small multiple of
//! the file size (times the in-memory size of an object); nesting deeper than
//! [`codec::MAX_DEPTH`] is an error; time is linear in the file. Two objects under one key
//! in a `set`/`ordered_set` file are an error ([`EtsError::BadFile`], "duplicate key"):
//! OTP's `file2tab` would insert both, the last winning, and lose one silently (only
//! `verify` would notice a count mismatch); refusing loses nothing silently.
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

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use super::codec;
use super::error::{EtsError, Result};
use super::table::{Builder, Key, Table, Value};
use super::{Protection, TableType};

const MAGIC: &[u8; 8] = b"ORBITETS";
const END: &[u8; 8] = b"ORBITEND";
/// The newest file format version this build writes and reads.
pub const FORMAT_VERSION: u32 = 1;
const PREFIX: usize = 16;
const TRAILER: usize = 8 + 8 + 4;

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

#[derive(Serialize, Deserialize)]
struct Header {
    name: Option<String>,
    kind: u8,
    protection: u8,
    size: u64,
    key_type: String,
    value_type: String,
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

fn kind_code(k: TableType) -> u8 {
    match k {
        TableType::Set => 0,
        TableType::OrderedSet => 1,
        TableType::Bag => 2,
        TableType::DuplicateBag => 3,
    }
}

fn prot_code(p: Protection) -> u8 {
    match p {
        Protection::Public => 0,
        Protection::Protected => 1,
        Protection::Private => 2,
    }
}

/// `ets:tab2file/3`: writes every object of `table` to `path` (see the module docs).
/// Needs read access to the table.
pub fn tab2file<K, V>(table: &Table<K, V>, path: impl AsRef<Path>, opts: FileOptions) -> Result<()>
where
    K: Key + Serialize,
    V: Value + Serialize,
{
    let path = path.as_ref();
    let objects = table.tab2list()?;
    let header = Header {
        name: table.name().map(str::to_string),
        kind: kind_code(table.kind()),
        protection: prot_code(table.protection()),
        size: objects.len() as u64,
        key_type: std::any::type_name::<K>().to_string(),
        value_type: std::any::type_name::<V>().to_string(),
    };
    let enc_err = |e: codec::CodecError| EtsError::Encode {
        table: table.label(),
        reason: e.0,
    };
    let hbytes = codec::encode(&header).map_err(enc_err)?;
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
        for obj in &objects {
            buf.clear();
            buf.extend_from_slice(&[0; 4]);
            codec::encode_into(obj, &mut buf).map_err(enc_err)?;
            let n = u32::try_from(buf.len() - 4).map_err(|_| EtsError::Encode {
                table: table.label(),
                reason: "an object encodes to more than 4 GiB".into(),
            })?;
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
    let h: Header =
        codec::decode(&b[PREFIX..end]).map_err(|e| bad(path, format!("bad header: {e}")))?;
    let kind = match h.kind {
        0 => TableType::Set,
        1 => TableType::OrderedSet,
        2 => TableType::Bag,
        3 => TableType::DuplicateBag,
        k => return Err(bad(path, format!("unknown table type code {k}"))),
    };
    let prot = match h.protection {
        0 => Protection::Public,
        1 => Protection::Protected,
        2 => Protection::Private,
        p => return Err(bad(path, format!("unknown protection code {p}"))),
    };
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
/// never a panic; memory stays within a small multiple of `bytes.len()` (every object
/// takes at least 4 bytes of the file and is decoded by the length-checked codec); nesting
/// is limited to [`codec::MAX_DEPTH`].
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
        let obj = codec::decode::<(K, V)>(&b[pos..pos + n]).map_err(|e| {
            bad(
                path,
                format!("object {} cannot be decoded: {e}", objects.len()),
            )
        })?;
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
