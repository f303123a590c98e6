//! Serves the dashboard on 127.0.0.1:PORT (first argument, default 4000) with a little
//! load: a named process receiving a steady stream of messages.
//!
//! `cargo run -p orbit-observe --example observe_demo -- 4000`, then open
//! <http://127.0.0.1:4000/>.

use std::time::Duration;

use orbit::{Context, Message};

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let port: u16 = std::env::args()
        .nth(1)
        .and_then(|p| p.parse().ok())
        .unwrap_or(4000);
    let dash = orbit_observe::serve(orbit_observe::ObserveOptions::new(
        ([127, 0, 0, 1], port).into(),
    ))
    .await?;
    println!("dashboard http://{}/", dash.local_addr());
    let worker = orbit::spawn(|mut ctx: Context<u64>| async move {
        while let Message::Msg(_) = ctx.recv().await {}
    })?;
    orbit::register("demo_worker", worker.pid())?;
    let mut i = 0u64;
    loop {
        for _ in 0..(i % 7 + 1) * 100 {
            let _ = worker.send(i);
        }
        i += 1;
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}
