//! A process killed before its task first runs still exits: links, monitors and
//! `wait_exit` hear of it (a supervisor brutal-killing a child it has just started
//! depends on this).

use orbit::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_process_killed_before_it_first_runs_reports_killed() {
    for _ in 0..1000 {
        let h = spawn(|mut ctx: Context<()>| async move {
            while let Message::Msg(()) = ctx.recv().await {}
        })
        .unwrap();
        exit(h.pid(), ExitReason::Kill);
        assert_eq!(h.wait_exit().await, ExitReason::Killed);
    }
}
