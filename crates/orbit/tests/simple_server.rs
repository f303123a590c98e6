//! `SimpleServer`: a GenServer from `call`/`cast` on the state alone, usable wherever a
//! GenServer is (started, named, supervised, pooled).

use std::time::Duration;

use orbit::{gen_server, CallError, ChildSpec, Pool, PoolOptions, SimpleServer, Supervisor};
use orbit::{Strategy, SupervisorOptions};

struct Counter(u64);

enum Req {
    Get,
    Crash,
}

impl SimpleServer for Counter {
    type Call = Req;
    type Reply = u64;
    type Cast = u64;
    fn call(&mut self, req: Req) -> u64 {
        match req {
            Req::Get => self.0,
            Req::Crash => panic!("counter crash"),
        }
    }
    fn cast(&mut self, k: u64) {
        self.0 += k;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn calls_and_casts_run_on_the_state_in_order() {
    let c = gen_server::start(Counter(1)).await.unwrap();
    for k in 1..=100 {
        c.cast(k);
    }
    assert_eq!(c.call(Req::Get).await.unwrap(), 1 + 5050);
    // A plain message goes to GenServer's default handle_info: logged, ignored.
    c.send(()).unwrap();
    assert_eq!(c.call(Req::Get).await.unwrap(), 5051);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_panic_in_call_stops_the_server_and_its_supervisor_restarts_it() {
    let sup = Supervisor::start(
        vec![ChildSpec::gen_server_named("c", "simple_counter", || {
            Counter(7)
        })],
        SupervisorOptions::strategy(Strategy::OneForOne),
    )
    .await
    .unwrap();
    gen_server::cast::<Counter>("simple_counter", 1);
    assert_eq!(
        gen_server::call::<Counter>("simple_counter", Req::Get).await,
        Ok(8)
    );
    let old = orbit::whereis("simple_counter").unwrap();
    let e = gen_server::call::<Counter>("simple_counter", Req::Crash)
        .await
        .unwrap_err();
    assert!(matches!(e, CallError::Exit(_)), "{e}");
    // The restarted child registers the name again, with a fresh state.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    loop {
        if orbit::whereis("simple_counter").is_some_and(|p| p != old) {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "no restart within 5 s"
        );
        tokio::task::yield_now().await;
    }
    assert_eq!(
        gen_server::call::<Counter>("simple_counter", Req::Get).await,
        Ok(7)
    );
    sup.stop(orbit::ExitReason::Shutdown, Duration::from_secs(5))
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn simple_servers_are_pool_workers() {
    let pool = Pool::start(PoolOptions::new(2, 0), || Counter(3))
        .await
        .unwrap();
    assert_eq!(pool.call(Req::Get).await.unwrap(), 3);
    assert_eq!(pool.status().available, 2);
}
