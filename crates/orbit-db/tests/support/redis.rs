//! A throwaway Redis server (see the module above).

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::{free_port, kill_group, temp_dir};

/// A running (or killed, restartable) redis-server.
pub struct RedisServer {
    bin: PathBuf,
    pub dir: PathBuf,
    pub port: u16,
    child: Option<Child>,
}

fn find_bin() -> Option<PathBuf> {
    ["/usr/bin/redis-server", "/usr/local/bin/redis-server"]
        .iter()
        .map(PathBuf::from)
        .find(|p| p.exists())
}

impl RedisServer {
    /// Starts a fresh instance, or prints `SKIP ...` and returns `None` when
    /// redis-server is not installed.
    pub fn start() -> Option<RedisServer> {
        let Some(bin) = find_bin() else {
            println!(
                "SKIP: no redis-server (scripts/test installs the Debian package redis-server)"
            );
            return None;
        };
        let mut s = RedisServer {
            bin,
            dir: temp_dir("redis"),
            port: free_port(),
            child: None,
        };
        s.launch();
        Some(s)
    }

    /// Starts redis-server on the instance's port; waits until it answers.
    pub fn launch(&mut self) {
        use std::os::unix::process::CommandExt;
        let log = self.dir.join("server.log");
        let child = Command::new(&self.bin)
            .args(["--port", &self.port.to_string(), "--bind", "127.0.0.1"])
            .args(["--save", "", "--appendonly", "no", "--daemonize", "no"])
            .args(["--dir", self.dir.to_str().expect("UTF-8 temp dir")])
            .args(["--logfile", log.to_str().expect("UTF-8 temp dir")])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .process_group(0)
            .spawn()
            .expect("cannot start redis-server");
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            use std::io::{Read, Write};
            if let Ok(mut s) = std::net::TcpStream::connect(("127.0.0.1", self.port)) {
                let _ = s.set_read_timeout(Some(Duration::from_secs(1)));
                let mut buf = [0u8; 16];
                if s.write_all(b"PING\r\n").is_ok()
                    && s.read(&mut buf)
                        .is_ok_and(|n| buf[..n].starts_with(b"+PONG"))
                {
                    return;
                }
            }
            assert!(Instant::now() < deadline, "redis-server not ready in 30 s");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// `kill -9` of the server.
    pub fn kill9(&mut self) {
        if let Some(mut c) = self.child.take() {
            kill_group(&mut c);
        }
    }

    /// The server's URL.
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/0", self.port)
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.kill9();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
