use orbit::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn spawn_send_recv() {
    let (tx, rx) = tokio::sync::oneshot::channel();
    let h = spawn(move |mut ctx: Context<u32>| async move {
        let mut sum = 0;
        loop {
            match ctx.recv().await {
                Message::Msg(0) => break,
                Message::Msg(n) => sum += n,
                _ => {}
            }
        }
        tx.send(sum).unwrap();
    })
    .unwrap();
    for i in 1..=100 {
        h.send(i).unwrap();
    }
    h.send(0).unwrap();
    assert_eq!(rx.await.unwrap(), 5050);
    assert_eq!(h.wait_exit().await, ExitReason::Normal);
}
