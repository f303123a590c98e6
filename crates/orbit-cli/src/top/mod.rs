//! `orbit top`: the top processes of a running node, live in the terminal.
//!
//! `orbit top http://127.0.0.1:PORT [--sort mailbox|memory|time|rate] [--token T]
//! [--interval-ms N]` attaches to a node started with `orbit node --dashboard
//! 127.0.0.1:PORT` (or any program serving `orbit_observe`), reading its JSON API over
//! HTTP, and redraws every interval. Keys: `m` mailbox, `e` memory, `t` handling time,
//! `r` messages/s (sort), `↑`/`↓` or `j`/`k` select, `Enter` opens the selected
//! process (links, monitors, status; `Esc` back), `q` or `Ctrl-C` quits. A node that
//! stops answering is shown as such on the status line; `top` keeps trying.

mod client;
mod view;

use std::time::{Duration, Instant};

use clap::Args;
use crossterm::event::{self, Event, KeyCode, KeyEventKind, KeyModifiers};

use client::{Endpoint, Node, Page, Ranking};

/// `orbit top` options.
#[derive(Args, Debug)]
pub struct TopOptions {
    /// The dashboard's address: http://HOST:PORT.
    url: String,
    /// The column to sort by: mailbox, memory, time or rate.
    #[arg(long, default_value = "mailbox")]
    sort: String,
    /// The dashboard's token, if it requires one.
    #[arg(long, env = "ORBIT_DASHBOARD_TOKEN")]
    token: Option<String>,
    /// Refresh interval in milliseconds.
    #[arg(long, default_value_t = 1000)]
    interval_ms: u64,
    /// Rows to fetch.
    #[arg(long, default_value_t = 40)]
    rows: usize,
}

/// What the screen shows.
pub(crate) struct State {
    pub sort: &'static str,
    pub node: Node,
    pub ranking: Ranking,
    pub selected: usize,
    pub page: Option<Page>,
    pub error: Option<String>,
    pub refreshed: u64,
}

fn sort_name(s: &str) -> Option<&'static str> {
    ["mailbox", "memory", "time", "rate"]
        .into_iter()
        .find(|k| *k == s)
}

/// Runs until `q`.
pub fn run(o: TopOptions) -> Result<(), String> {
    let ep = Endpoint::parse(&o.url, o.token.clone())?;
    let sort = sort_name(&o.sort)
        .ok_or_else(|| format!("--sort {}: use mailbox, memory, time or rate", o.sort))?;
    // Fail before taking over the terminal if the node is not there.
    ep.get("/api/node")?;
    let mut st = State {
        sort,
        node: Node::default(),
        ranking: Ranking::default(),
        selected: 0,
        page: None,
        error: None,
        refreshed: 0,
    };
    let mut terminal = ratatui::init();
    let result = event_loop(
        &mut terminal,
        &ep,
        &mut st,
        Duration::from_millis(o.interval_ms.max(100)),
        o.rows,
    );
    ratatui::restore();
    result
}

fn refresh(ep: &Endpoint, st: &mut State, rows: usize) {
    let r = (|| -> Result<(), String> {
        st.node =
            serde_json::from_str(&ep.get("/api/node")?).map_err(|e| format!("/api/node: {e}"))?;
        let path = format!("/api/processes?sort={}&limit={rows}", st.sort);
        st.ranking = serde_json::from_str(&ep.get(&path)?).map_err(|e| format!("{path}: {e}"))?;
        if let Some(p) = &st.page {
            let path = format!("/api/process/{}", client::encode(&p.row.pid));
            match ep.get(&path) {
                Ok(body) => st.page = serde_json::from_str(&body).ok().or(st.page.take()),
                Err(e) => st.error = Some(format!("{}: {e}", p.row.pid)),
            }
        }
        Ok(())
    })();
    st.error = r.err();
    st.refreshed += 1;
    st.selected = st.selected.min(st.ranking.rows.len().saturating_sub(1));
}

fn event_loop(
    terminal: &mut ratatui::DefaultTerminal,
    ep: &Endpoint,
    st: &mut State,
    every: Duration,
    rows: usize,
) -> Result<(), String> {
    let mut next = Instant::now();
    loop {
        if Instant::now() >= next {
            refresh(ep, st, rows);
            next = Instant::now() + every;
        }
        terminal
            .draw(|f| view::draw(f, st))
            .map_err(|e| format!("drawing: {e}"))?;
        let wait = next.saturating_duration_since(Instant::now());
        if !event::poll(wait).map_err(|e| format!("reading keys: {e}"))? {
            continue;
        }
        let Event::Key(k) = event::read().map_err(|e| format!("reading keys: {e}"))? else {
            continue;
        };
        if k.kind != KeyEventKind::Press {
            continue;
        }
        let resort = |st: &mut State, s: &'static str| {
            st.sort = s;
            st.selected = 0;
        };
        match k.code {
            KeyCode::Char('q') => return Ok(()),
            KeyCode::Char('c') if k.modifiers.contains(KeyModifiers::CONTROL) => return Ok(()),
            KeyCode::Char('m') => resort(st, "mailbox"),
            KeyCode::Char('e') => resort(st, "memory"),
            KeyCode::Char('t') => resort(st, "time"),
            KeyCode::Char('r') => resort(st, "rate"),
            KeyCode::Down | KeyCode::Char('j') => {
                st.selected = (st.selected + 1).min(st.ranking.rows.len().saturating_sub(1));
                continue;
            }
            KeyCode::Up | KeyCode::Char('k') => {
                st.selected = st.selected.saturating_sub(1);
                continue;
            }
            KeyCode::Enter => {
                if let Some(row) = st.ranking.rows.get(st.selected) {
                    let path = format!("/api/process/{}", client::encode(&row.pid));
                    match ep
                        .get(&path)
                        .and_then(|b| serde_json::from_str(&b).map_err(|e| e.to_string()))
                    {
                        Ok(p) => st.page = Some(p),
                        Err(e) => st.error = Some(format!("{}: {e}", row.pid)),
                    }
                }
                continue;
            }
            KeyCode::Esc => {
                st.page = None;
                continue;
            }
            _ => continue,
        }
        // A new sort: fetch now.
        next = Instant::now();
    }
}
