//! Drawing `orbit top`'s screen: a header with the node's figures, the process table
//! sorted by the chosen column (marked `▼`), an optional process pane, a key line.

use ratatui::layout::{Constraint, Layout};
use ratatui::style::{Modifier, Style};
use ratatui::text::Line;
use ratatui::widgets::{Block, Borders, Paragraph, Row, Table, TableState};
use ratatui::Frame;

use super::State;

fn num(v: f64) -> String {
    let a = v.abs();
    if a >= 1e9 {
        format!("{:.2}G", v / 1e9)
    } else if a >= 1e6 {
        format!("{:.2}M", v / 1e6)
    } else if a >= 1e4 {
        format!("{:.1}k", v / 1e3)
    } else if v.fract() == 0.0 {
        format!("{v:.0}")
    } else {
        format!("{v:.1}")
    }
}

pub(crate) fn draw(f: &mut Frame<'_>, st: &State) {
    let [head, body, keys] = Layout::vertical([
        Constraint::Length(3),
        Constraint::Min(5),
        Constraint::Length(1),
    ])
    .areas(f.area());
    let n = &st.node;
    let status = match &st.error {
        Some(e) => format!("  !! {e}"),
        None => String::new(),
    };
    let header = format!(
        "{}  procs {}  msgs/s {}  p99 {:.1}us  cpu {}  mem {}  runq {}  [refresh {}]{status}",
        n.node,
        num(n.processes as f64),
        num(n.messages_per_second),
        n.handling_p99_us,
        n.cpu_percent.map_or("-".into(), |c| format!("{c:.0}%")),
        n.rss_bytes
            .map_or("-".into(), |b| format!("{:.1}MiB", b as f64 / 1048576.0)),
        n.run_queue,
        st.refreshed,
    );
    f.render_widget(
        Paragraph::new(header).block(Block::default().borders(Borders::ALL).title(" orbit top ")),
        head,
    );
    let (table_area, page_area) = if st.page.is_some() {
        let [a, b] =
            Layout::vertical([Constraint::Percentage(55), Constraint::Percentage(45)]).areas(body);
        (a, Some(b))
    } else {
        (body, None)
    };
    let col = |name: &str, key: &str| {
        if st.sort == key {
            format!("{name}▼")
        } else {
            name.to_string()
        }
    };
    let header = Row::new(vec![
        "PID".to_string(),
        "NAME".to_string(),
        col("MAILBOX", "mailbox"),
        col("MEMORY", "memory"),
        col("TIME ms", "time"),
        col("MSG/S", "rate"),
        "HANDLED".to_string(),
        "MEAN us".to_string(),
    ])
    .style(Style::default().add_modifier(Modifier::BOLD));
    let rows = st.ranking.rows.iter().map(|r| {
        Row::new(vec![
            r.pid.clone(),
            r.name
                .clone()
                .or_else(|| r.label.clone())
                .unwrap_or_default(),
            num(r.mailbox as f64),
            num(r.memory as f64),
            format!("{:.1}", r.handling_ms),
            num(r.rate),
            num(r.handled as f64),
            format!("{:.1}", r.mean_us),
        ])
    });
    let widths = [
        Constraint::Length(16),
        Constraint::Min(12),
        Constraint::Length(9),
        Constraint::Length(9),
        Constraint::Length(10),
        Constraint::Length(9),
        Constraint::Length(9),
        Constraint::Length(9),
    ];
    let title = format!(
        " {} processes by {} ({:.0} ms) ",
        st.ranking.total, st.sort, st.ranking.took_ms
    );
    let table = Table::new(rows, widths)
        .header(header)
        .block(Block::default().borders(Borders::ALL).title(title))
        .row_highlight_style(Style::default().add_modifier(Modifier::REVERSED));
    let mut ts = TableState::default().with_selected(Some(st.selected));
    f.render_stateful_widget(table, table_area, &mut ts);
    if let (Some(p), Some(area)) = (&st.page, page_area) {
        let list = |v: &[String]| {
            if v.is_empty() {
                "-".to_string()
            } else {
                v.join(", ")
            }
        };
        let text = vec![
            Line::from(format!(
                "{} {}  status {}  trap_exit {}",
                p.row.pid,
                p.row.name.clone().unwrap_or_default(),
                p.status,
                p.trap_exit
            )),
            Line::from(format!(
                "mailbox {}  handled {}  time {:.1} ms  mean {:.1} us  long handlers {}",
                p.row.mailbox, p.row.handled, p.row.handling_ms, p.row.mean_us, p.row.long_handlers
            )),
            Line::from(format!("links: {}", list(&p.links))),
            Line::from(format!("monitors: {}", list(&p.monitors))),
            Line::from(format!("monitored by: {}", list(&p.monitored_by))),
        ];
        f.render_widget(
            Paragraph::new(text).block(
                Block::default()
                    .borders(Borders::ALL)
                    .title(" process (Esc: back) "),
            ),
            area,
        );
    }
    f.render_widget(
        Paragraph::new(
            "sort: m mailbox  e memory  t time  r rate   ↑↓ select  Enter open  Esc back  q quit",
        ),
        keys,
    );
}
