//! The magic cookie: the shared secret that authenticates nodes to each other.
//!
//! Resolution follows `erl`: the cookie given to [`Node::start`](crate::Node::start), else
//! the `ORBIT_COOKIE` environment variable, else `~/.erlang.cookie`. That file is created
//! with a random 20-letter cookie and mode 0400 when absent, and refused (as `erl` refuses
//! it) when its permissions let group or others access it or it is not a regular file;
//! the cookie is its first line without trailing blanks. A node may use another cookie
//! with one peer ([`Node::set_cookie`](crate::Node::set_cookie), as
//! `erlang:set_cookie(Node, Cookie)`), both when it dials and when it is dialed. Cookies
//! never appear in errors or logs: a refused handshake says "the cookies differ".

use std::io::Write;
use std::path::{Path, PathBuf};

use crate::error::DistError;

/// Where the cookie comes from.
#[derive(Debug, Clone, Default)]
pub enum CookieSource {
    /// `ORBIT_COOKIE`, else `~/.erlang.cookie`.
    #[default]
    Default,
    /// This cookie.
    Given(String),
    /// The cookie in this file (same rules as `~/.erlang.cookie`).
    File(PathBuf),
}

/// Resolves the cookie for a node.
pub fn resolve(src: &CookieSource) -> Result<String, DistError> {
    match src {
        CookieSource::Given(c) => check(c.clone()),
        CookieSource::File(p) => read_file(p),
        CookieSource::Default => {
            if let Ok(c) = std::env::var("ORBIT_COOKIE") {
                if !c.is_empty() {
                    return check(c);
                }
            }
            let home = std::env::var_os("HOME").ok_or_else(|| {
                DistError::Cookie("HOME is not set: give a cookie or set ORBIT_COOKIE".into())
            })?;
            read_file(&Path::new(&home).join(".erlang.cookie"))
        }
    }
}

pub(crate) fn check(c: String) -> Result<String, DistError> {
    if c.is_empty() || c.len() > 255 {
        return Err(DistError::Cookie(
            "a cookie must be 1 to 255 bytes long".into(),
        ));
    }
    Ok(c)
}

/// Reads (or creates) a cookie file, refusing one that others may read.
pub fn read_file(path: &Path) -> Result<String, DistError> {
    use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
    match std::fs::metadata(path) {
        Ok(meta) if !meta.is_file() => Err(DistError::Cookie(format!(
            "{} is not a regular file (as erl, a cookie file must be one)",
            path.display()
        ))),
        Ok(meta) => {
            let mode = meta.permissions().mode();
            if mode & 0o077 != 0 {
                return Err(DistError::Cookie(format!(
                    "{} is accessible by group or others (mode {:o}); run chmod 400 on it",
                    path.display(),
                    mode & 0o777
                )));
            }
            let text = std::fs::read_to_string(path)
                .map_err(|e| DistError::Cookie(format!("cannot read {}: {e}", path.display())))?;
            // As `auth.erl`: the first line, without trailing blanks.
            check(text.lines().next().unwrap_or("").trim_end().to_string())
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let cookie = random_cookie();
            let mut f = std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o400)
                .open(path)
                .map_err(|e| DistError::Cookie(format!("cannot create {}: {e}", path.display())))?;
            f.write_all(cookie.as_bytes())
                .map_err(|e| DistError::Cookie(format!("cannot write {}: {e}", path.display())))?;
            Ok(cookie)
        }
        Err(e) => Err(DistError::Cookie(format!(
            "cannot read {}: {e}",
            path.display()
        ))),
    }
}

/// 20 random upper-case letters, like the cookies `erl` creates.
fn random_cookie() -> String {
    let mut bytes = [0u8; 20];
    crate::handshake::fill_random(&mut bytes);
    bytes.iter().map(|b| (b'A' + b % 26) as char).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn creates_a_private_cookie_file_and_refuses_a_readable_one() {
        let dir = std::env::temp_dir().join(format!("orbit-cookie-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let p = dir.join("cookie");
        let _ = std::fs::remove_file(&p);
        let c = read_file(&p).unwrap();
        assert_eq!(c.len(), 20);
        let mode = std::fs::metadata(&p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o400);
        assert_eq!(read_file(&p).unwrap(), c);
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o644)).unwrap();
        assert!(matches!(read_file(&p), Err(DistError::Cookie(_))));
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o440)).unwrap();
        assert!(matches!(read_file(&p), Err(DistError::Cookie(_))));
        // The first line, trailing blanks dropped.
        std::fs::remove_file(&p).unwrap();
        std::fs::write(&p, "ABC \nignored\n").unwrap();
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o400)).unwrap();
        assert_eq!(read_file(&p).unwrap(), "ABC");
        // A directory is not a cookie file.
        assert!(matches!(read_file(&dir), Err(DistError::Cookie(_))));
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
