//! The side-by-side app, Orbit version (docs/side-by-side.md): a supervised counter, a
//! pool, a cache with a TTL, tasks, and a remote call. The Elixir version,
//! `docs/side-by-side/app.exs`, prints the same lines.
//!
//! Run: `cargo run -p orbit-examples --example side_by_side`. With `NAME=me@host
//! PEER=other@host` it then starts its node (cookie `side_by_side`), calls the peer's
//! counter (an Elixir node running app.exs, or this program again), and serves its own
//! counter until stdin closes.
use orbit_dist::prelude::*;

struct Counter(u64);
impl SimpleServer for Counter {
    type Call = Atom; // :get, as Elixir's
    type Reply = u64;
    type Cast = u64;
    fn call(&mut self, _: Atom) -> u64 {
        self.0
    }
    fn cast(&mut self, k: u64) {
        self.0 += k;
    }
}
type Squarer = FnServer<u64, u64>;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let cache = CacheOptions::new()
        .ttl_check_interval(Duration::from_millis(10))
        .global_ttl(Duration::from_millis(50));
    let children = [
        ChildSpec::gen_server_named("counter", "counter", || Counter(0)),
        Pool::child_spec("pool", PoolOptions::new(2, 0), || Squarer::new(|x| x * x)).name("pool"),
        ConCache::<String, String>::child_spec("cache", cache.name("cache")),
        TaskSupervisor::child_spec("tasks", Some("tasks")),
    ];
    Supervisor::start(children, Strategy::OneForOne).await?;

    (1..=3).for_each(|k| gen_server::cast::<Counter>("counter", k));
    let n = gen_server::call::<Counter>("counter", atom!("get")).await?;
    println!("counter: {n}");

    let pool = Pool::<Squarer>::whereis("pool").ok_or("no pool")?;
    println!("pool: {}", pool.call(7).await?);

    let tasks = TaskSupervisor::whereis("tasks").ok_or("no tasks")?;
    let opts = StreamOptions::default().max_concurrency(2);
    let squares = tasks.async_stream(1..=5, move |x| pool.call(x), opts);
    let squares: Vec<u64> = squares.map(|r| r.unwrap().unwrap()).collect().await;
    println!("tasks: {squares:?}");

    let cache = ConCache::<String, String>::whereis("cache").ok_or("no cache")?;
    cache.put("greeting".into(), "hello").await?;
    println!("cache: {}", cache.get("greeting")?.unwrap_or_default());
    tokio::time::sleep(Duration::from_millis(200)).await;
    let expired = cache.get("greeting")?;
    println!("cache after ttl: {}", expired.unwrap_or("nil".into()));

    if let (Ok(name), Ok(peer)) = (std::env::var("NAME"), std::env::var("PEER")) {
        let node = Node::start(&name, Options::cookie("side_by_side")).await?;
        remote_server::<Counter>(); // Elixir calls ours, we call Elixir's
        node.connect_retry(&peer, Duration::from_secs(10)).await?;
        let n = gen_server::call::<Counter>(("counter", peer.as_str()), atom!("get")).await?;
        println!("remote counter: {n}");
        std::io::Read::read_to_end(&mut std::io::stdin(), &mut Vec::new())?;
    }
    Ok(())
}
