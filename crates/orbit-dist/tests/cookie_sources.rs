//! Where a node's cookie comes from: the cookie given, else `ORBIT_COOKIE`, else
//! `~/.erlang.cookie` (created with mode 0400 when absent, refused when others may read
//! it). The environment is process-global, so this binary is on its own and its tests
//! hold `ENV` while they set variables or start children (which copy the environment).

mod common;

use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use common::*;
use orbit_dist::cookie::{resolve, CookieSource};
use orbit_dist::{DistError, Options, Ping};

static ENV: Mutex<()> = Mutex::new(());

fn env_guard() -> std::sync::MutexGuard<'static, ()> {
    // A failed test poisons the lock; the environment it leaves is reset by the next.
    let g = ENV.lock().unwrap_or_else(|e| e.into_inner());
    original_home();
    g
}

/// `HOME` as the binary started, put back when a test is done with its own.
fn original_home() -> &'static Option<std::ffi::OsString> {
    static H: std::sync::OnceLock<Option<std::ffi::OsString>> = std::sync::OnceLock::new();
    H.get_or_init(|| std::env::var_os("HOME"))
}

fn restore_home() {
    match original_home() {
        Some(h) => std::env::set_var("HOME", h),
        None => std::env::remove_var("HOME"),
    }
}

/// A fresh directory to serve as `HOME`.
fn temp_home(tag: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("orbit-home-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn write_cookie(home: &Path, cookie: &str) {
    use std::io::Write;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o400)
        .open(home.join(".erlang.cookie"))
        .unwrap();
    f.write_all(cookie.as_bytes()).unwrap();
}

fn mode(p: &Path) -> u32 {
    std::fs::metadata(p).unwrap().permissions().mode() & 0o777
}

#[test]
fn given_cookie_beats_orbit_cookie_which_beats_the_cookie_file() {
    let _g = env_guard();
    let home = temp_home("order");
    let file = home.join(".erlang.cookie");
    std::env::set_var("HOME", &home);
    std::env::set_var("ORBIT_COOKIE", "from_env");
    assert_eq!(
        resolve(&CookieSource::Given("given".into())).unwrap(),
        "given"
    );
    assert_eq!(resolve(&CookieSource::Default).unwrap(), "from_env");
    assert!(!file.exists(), "ORBIT_COOKIE set: the file is not touched");

    // An empty ORBIT_COOKIE counts as unset: the file is created, private.
    std::env::set_var("ORBIT_COOKIE", "");
    let created = resolve(&CookieSource::Default).unwrap();
    assert_eq!(created.len(), 20);
    assert!(created.bytes().all(|b| b.is_ascii_uppercase()));
    assert_eq!(mode(&file), 0o400);
    std::env::remove_var("ORBIT_COOKIE");
    assert_eq!(resolve(&CookieSource::Default).unwrap(), created);

    // Readable by the group: refused, and the message says what to do.
    std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o440)).unwrap();
    let err = resolve(&CookieSource::Default).unwrap_err();
    assert!(matches!(err, DistError::Cookie(_)), "{err}");
    assert!(err.to_string().contains("chmod 400"), "{err}");
    // ORBIT_COOKIE still wins over the unsafe file.
    std::env::set_var("ORBIT_COOKIE", "from_env");
    assert_eq!(resolve(&CookieSource::Default).unwrap(), "from_env");
    std::env::remove_var("ORBIT_COOKIE");
    restore_home();
    std::fs::remove_dir_all(&home).unwrap();
}

#[test]
fn a_node_without_a_cookie_shares_the_erlang_cookie_file_with_elixir() {
    let home = temp_home("shared");
    let g = env_guard();
    std::env::set_var("HOME", &home);
    std::env::remove_var("ORBIT_COOKIE");
    // No cookie given: the node creates ~/.erlang.cookie, as erl would.
    let node = node_with("orbit_ck", Options::default());
    let file = home.join(".erlang.cookie");
    assert_eq!(mode(&file), 0o400);
    let cookie = std::fs::read_to_string(&file).unwrap();
    let me = node.name();
    // Elixir with no --cookie reads the same file (HOME is given to the child).
    let code = format!(
        r#"
        IO.puts("ping #{{Node.ping(:"{me}")}}")
        IO.gets("")
        "#
    );
    let mut ex = Peer::elixir_home("ex_ck", &home, &code);
    restore_home();
    drop(g);
    assert_eq!(ex.expect("ping ", 20), "ping pong");
    let exname = ex.name.clone();
    rt().block_on(async {
        assert_eq!(node.ping(&exname).await, Ping::Pong);
    });
    assert_eq!(
        std::fs::read_to_string(&file).unwrap(),
        cookie,
        "both used the file as it was"
    );
    drop(ex);
    std::fs::remove_dir_all(&home).unwrap();
}

#[test]
fn orbit_cookie_beats_the_cookie_file_on_the_wire() {
    let home = temp_home("env");
    write_cookie(&home, "file_cookie_x");
    let g = env_guard();
    // An orbit-node with no cookie argument, ORBIT_COOKIE set and a different file.
    let name = unique("orbit_env");
    let home_s = home.to_str().unwrap();
    let mut o = orbit_node_with(
        &name,
        &["-"],
        &[("HOME", home_s), ("ORBIT_COOKIE", "env_cookie_x")],
    );
    let up = "io:format(\"up~n\"), receive stop -> ok end.";
    let mut with_env = Peer::erl("erl_env", "env_cookie_x", up);
    let mut with_file = Peer::erl("erl_file", "file_cookie_x", up);
    drop(g);
    with_env.expect("up", 20);
    with_file.expect("up", 20);
    o.say(&format!("ping {}", with_env.name));
    assert_eq!(
        o.expect("ping ", 15),
        format!("ping {} Pong", with_env.name)
    );
    o.say(&format!("ping {}", with_file.name));
    assert_eq!(
        o.expect("ping ", 15),
        format!("ping {} Pang", with_file.name)
    );
    drop(o);
    std::fs::remove_dir_all(&home).unwrap();
}
