//! Per-named-process series: every registered process's mailbox, messages handled and
//! handling time, labelled `name` (names are few and stable; pids are not, so unnamed
//! processes are not series: the dashboard ranks them instead).

/// Publishes `orbit_process_mailbox_len{name}`, `orbit_process_messages_handled_total{name}`,
/// `orbit_process_handling_seconds{name}` and `orbit_process_long_handlers_total{name}`.
pub fn publish() {
    for name in orbit::registered() {
        let Some(pid) = orbit::whereis(&*name) else {
            continue;
        };
        let Some(i) = orbit::process_info(pid) else {
            continue;
        };
        let n = name.to_string();
        metrics::gauge!("orbit_process_mailbox_len", "name" => n.clone())
            .set(i.message_queue_len as f64);
        metrics::counter!("orbit_process_messages_handled_total", "name" => n.clone())
            .absolute(i.messages_handled);
        metrics::gauge!("orbit_process_handling_seconds", "name" => n.clone())
            .set(i.handling_time.as_secs_f64());
        metrics::counter!("orbit_process_long_handlers_total", "name" => n)
            .absolute(i.long_handlers as u64);
    }
}
