//! A throwaway PostgreSQL server (see the module above).

use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::{free_port, kill_tree, temp_dir};

/// A running (or killed, restartable) Postgres instance.
pub struct PgServer {
    bin: PathBuf,
    pub dir: PathBuf,
    pub port: u16,
    user: Option<(u32, u32)>,
    max_connections: u32,
    child: Option<Child>,
}

fn find_bin() -> Option<PathBuf> {
    let mut dirs: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .ok()?
        .filter_map(|e| e.ok().map(|e| e.path().join("bin")))
        .filter(|p| p.join("initdb").exists() && p.join("postgres").exists())
        .collect();
    dirs.sort();
    dirs.pop()
}

/// uid and gid of the `postgres` user.
fn postgres_user() -> Option<(u32, u32)> {
    let name = std::ffi::CString::new("postgres").ok()?;
    // SAFETY: getpwnam returns a pointer to static storage or null; read at once.
    let pw = unsafe { libc::getpwnam(name.as_ptr()) };
    if pw.is_null() {
        return None;
    }
    // SAFETY: non-null, valid until the next getpw* call.
    unsafe { Some(((*pw).pw_uid, (*pw).pw_gid)) }
}

impl PgServer {
    /// Starts a fresh instance, or prints `SKIP ...` and returns `None` when
    /// Postgres is not installed.
    pub fn start(max_connections: u32) -> Option<PgServer> {
        let Some(bin) = find_bin() else {
            println!("SKIP: no PostgreSQL under /usr/lib/postgresql/*/bin (scripts/test installs the Debian package postgresql)");
            return None;
        };
        // SAFETY: plain syscall.
        let root = unsafe { libc::geteuid() } == 0;
        let user = if root {
            match postgres_user() {
                Some(u) => Some(u),
                None => {
                    println!(
                        "SKIP: running as root without a `postgres` user to run PostgreSQL as"
                    );
                    return None;
                }
            }
        } else {
            None
        };
        let dir = temp_dir("pg");
        if let Some((uid, gid)) = user {
            std::os::unix::fs::chown(&dir, Some(uid), Some(gid)).expect("chown data dir");
        }
        let data = dir.join("data");
        let mut init = Command::new(bin.join("initdb"));
        init.args([
            "-D",
            path(&data),
            "-U",
            "postgres",
            "--auth=trust",
            "-E",
            "UTF8",
            "--no-sync",
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
        if let Some((uid, gid)) = user {
            init.uid(uid).gid(gid);
        }
        let out = init.output().expect("cannot run initdb");
        assert!(
            out.status.success(),
            "initdb failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let mut s = PgServer {
            bin,
            dir,
            port: free_port(),
            user,
            max_connections,
            child: None,
        };
        s.launch();
        Some(s)
    }

    /// Starts the server process on the instance's port and data dir; waits until it
    /// accepts connections.
    pub fn launch(&mut self) {
        let data = self.dir.join("data");
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.join("server.log"))
            .expect("server log");
        if let Some((uid, gid)) = self.user {
            let _ = std::os::unix::fs::chown(self.dir.join("server.log"), Some(uid), Some(gid));
        }
        let mut cmd = Command::new(self.bin.join("postgres"));
        cmd.args([
            "-D",
            path(&data),
            "-p",
            &self.port.to_string(),
            "-k",
            path(&self.dir),
        ])
        .args(["-c", "listen_addresses=127.0.0.1"])
        .args(["-c", &format!("max_connections={}", self.max_connections)])
        // fsync off: a kill -9 of the server keeps what it wrote (the kernel has it);
        // synchronous_commit stays on, so a commit reported Ok survives the kill.
        .args(["-c", "fsync=off", "-c", "full_page_writes=off"])
        .stdin(Stdio::null())
        .stdout(log.try_clone().expect("log"))
        .stderr(log)
        .process_group(0);
        if let Some((uid, gid)) = self.user {
            cmd.uid(uid).gid(gid);
        }
        self.child = Some(cmd.spawn().expect("cannot start postgres"));
        self.wait_ready();
    }

    fn wait_ready(&mut self) {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if std::net::TcpStream::connect(("127.0.0.1", self.port)).is_ok() {
                let ok = Command::new(self.bin.join("pg_isready"))
                    .args([
                        "-h",
                        "127.0.0.1",
                        "-p",
                        &self.port.to_string(),
                        "-U",
                        "postgres",
                    ])
                    .stdout(Stdio::null())
                    .status()
                    .is_ok_and(|s| s.success());
                if ok {
                    return;
                }
            }
            if let Some(c) = &mut self.child {
                if let Ok(Some(st)) = c.try_wait() {
                    panic!("postgres exited at start ({st}); log:\n{}", self.log());
                }
            }
            assert!(
                Instant::now() < deadline,
                "postgres not ready in 60 s; log:\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// The server log so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("server.log")).unwrap_or_default()
    }

    /// `kill -9` of the postmaster and every backend at once (backends are session
    /// leaders of their own, so the group alone would miss them).
    pub fn kill9(&mut self) {
        if let Some(mut c) = self.child.take() {
            kill_tree(&mut c);
        }
    }

    /// The pids of the server's processes (postmaster first), while it runs.
    pub fn processes(&self) -> Vec<u32> {
        match &self.child {
            Some(c) => std::iter::once(c.id())
                .chain(super::children_of(c.id()))
                .collect(),
            None => Vec::new(),
        }
    }

    /// The pgid of the running server.
    pub fn pgid(&self) -> Option<u32> {
        self.child.as_ref().map(|c| c.id())
    }

    /// A connection string for `application_name`.
    pub fn conn_str(&self, app: &str) -> String {
        format!(
            "host=127.0.0.1 port={} user=postgres dbname=postgres application_name={app} connect_timeout=5",
            self.port
        )
    }

    /// A direct (unpooled) connection, for checks beside the pool.
    pub async fn admin(&self) -> tokio_postgres::Client {
        let (client, conn) =
            tokio_postgres::connect(&self.conn_str("orbit_db_admin"), tokio_postgres::NoTls)
                .await
                .expect("admin connection");
        tokio::spawn(conn);
        client
    }
}

impl Drop for PgServer {
    fn drop(&mut self) {
        self.kill9();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn path(p: &Path) -> &str {
    p.to_str().expect("temp paths are UTF-8")
}

/// The first column of the one row `sql` returns, queried through `pool` (panics on
/// an error: a test's query).
pub async fn pool_scalar<T>(pool: &orbit_db::PgPool, sql: &'static str) -> T
where
    T: for<'a> tokio_postgres::types::FromSql<'a> + Send + 'static,
{
    pool.run(|c| async move { Ok::<T, orbit_db::DbError>(c.query_one(sql, &[]).await?.get(0)) })
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e}"))
}
