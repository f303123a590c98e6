//! Application: a program's whole supervision tree started and stopped in one call, as
//! an OTP application's top supervisor.
//!
//! ```
//! use orbit::{Application, ChildSpec};
//! # #[derive(Default)] struct Counter;
//! # impl orbit::GenServer for Counter {
//! #     type Call = (); type Reply = (); type Cast = (); type Info = (); type Continue = ();
//! # }
//! # #[tokio::main] async fn main() -> Result<(), orbit::application::ApplicationError> {
//! let app = Application::new("my_app")
//!     .child(ChildSpec::gen_server("counter", Counter::default).name("counter"))
//!     .child(orbit::TaskSupervisor::child_spec("tasks", Some("my_app.tasks")))
//!     .start()
//!     .await?;
//! assert!(orbit::whereis("counter").is_some());
//! app.stop().await?;
//! // In `main`, `run` starts the tree and stops it on ctrl-c or SIGTERM:
//! // Application::new("my_app").child(..).stop_on_signals(true).run().await
//! # Ok(()) }
//! ```
//!
//! The contract:
//! - [`Application::start`] starts a root [`Supervisor`] (not linked to the caller,
//!   which need not be a process) with the children in the order given; each starts
//!   only after the one before it has. If a child fails to start, the children already
//!   started are stopped in reverse order and `start` fails with
//!   [`ApplicationError::ChildFailed`] naming the application and the child.
//! - [`AppHandle::stop`] stops the children in reverse start order, each as its
//!   [`Shutdown`](crate::Shutdown) says, and returns once all have exited (or after
//!   [`Application::stop_timeout`], infinity by default).
//! - [`Application::run`] starts, then waits: with [`stop_on_signals`](Application::stop_on_signals)
//!   (off by default, so tests and embedding programs keep their signals), ctrl-c
//!   (SIGINT) or SIGTERM stops the tree and `run` returns `Ok`; if the root supervisor
//!   exits by itself (its restart intensity was exceeded: too many crashes), `run`
//!   returns [`ApplicationError::Exited`] with its reason, so `main` can exit non-zero.
//!
//! Differences from OTP: there is no application controller, `.app` file, environment
//! or dependency start order between applications: an application is its root
//! supervisor's children. Start types (`permanent`, `transient`, `temporary`) come down
//! to what the caller of `run` does with the error.

use std::time::Duration;

use futures::future::Either;

use crate::exit::ExitReason;
use crate::supervisor::{
    ChildSpec, Strategy, Supervisor, SupervisorError, SupervisorOptions, SupervisorRef,
};

/// Why an application did not start, did not stop cleanly, or ended.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ApplicationError {
    /// A child's start failed; the children started before it were stopped in reverse
    /// order and nothing of the application runs.
    #[error("application {app:?} did not start: child {child:?} failed to start: {reason}; the children started before it were stopped in reverse order")]
    ChildFailed {
        /// The application.
        app: String,
        /// The id of the child whose start failed.
        child: String,
        /// Why it failed.
        reason: ExitReason,
    },
    /// The root supervisor could not be started or asked (duplicate child ids, its
    /// name taken, ...).
    #[error("application {app:?}: {error}")]
    Supervisor {
        /// The application.
        app: String,
        /// What the supervisor reported.
        error: SupervisorError,
    },
    /// The root supervisor exited while `run` waited: too many restarts within its
    /// intensity window, or something stopped it directly. The application is down.
    #[error("application {app:?} exited: its root supervisor stopped with {reason} (a child kept crashing and the restart intensity was exceeded, see the logs; or the supervisor was stopped directly instead of through AppHandle::stop)")]
    Exited {
        /// The application.
        app: String,
        /// The root supervisor's exit reason.
        reason: ExitReason,
    },
    /// ctrl-c and SIGTERM cannot be listened for (the tokio runtime was built without
    /// its IO driver).
    #[error("application {app:?}: cannot listen for ctrl-c/SIGTERM: {error}; build the tokio runtime with enable_all(), or turn stop_on_signals off")]
    Signals {
        /// The application.
        app: String,
        /// The error from tokio.
        error: String,
    },
}

/// An application to start: a name, its children in start order, and the root
/// supervisor's options.
#[derive(Debug, Clone)]
pub struct Application {
    name: String,
    children: Vec<ChildSpec>,
    options: SupervisorOptions,
    signals: bool,
    stop_timeout: Duration,
}

impl Application {
    /// An application named `name` (used in errors and logs) with no children yet, a
    /// `OneForOne` root supervisor (3 restarts in 5 s), signals not handled, and no
    /// limit on how long stopping may take.
    pub fn new(name: impl Into<String>) -> Application {
        Application {
            name: name.into(),
            children: Vec::new(),
            options: SupervisorOptions::default(),
            signals: false,
            stop_timeout: Duration::MAX,
        }
    }

    /// Adds a child, started after the ones added before it and stopped before them.
    pub fn child(mut self, spec: ChildSpec) -> Application {
        self.children.push(spec);
        self
    }

    /// Adds children, in order.
    pub fn children(mut self, specs: impl IntoIterator<Item = ChildSpec>) -> Application {
        self.children.extend(specs);
        self
    }

    /// The root supervisor's restart strategy (default `OneForOne`).
    pub fn strategy(mut self, strategy: Strategy) -> Application {
        self.options.strategy = strategy;
        self
    }

    /// The root supervisor's restart intensity: more than `max_restarts` restarts
    /// within `within` end the application (default 3 in 5 s).
    pub fn max_restarts(mut self, max_restarts: u32, within: Duration) -> Application {
        self.options.max_restarts = max_restarts;
        self.options.max_seconds = within;
        self
    }

    /// Registers the root supervisor as `name` (find it with [`SupervisorRef::whereis`]).
    pub fn supervisor_name(mut self, name: impl Into<String>) -> Application {
        self.options.name = Some(name.into());
        self
    }

    /// With `true`, [`Application::run`] stops the application on ctrl-c (SIGINT) or
    /// SIGTERM and returns `Ok`. Off by default. Needs the `signal` cargo feature (on by
    /// default): without it `run` fails at once with [`ApplicationError::Signals`].
    pub fn stop_on_signals(mut self, on: bool) -> Application {
        self.signals = on;
        self
    }

    /// How long [`AppHandle::stop`] waits for every child to stop (default: as long as
    /// their shutdowns take).
    pub fn stop_timeout(mut self, timeout: Duration) -> Application {
        self.stop_timeout = timeout;
        self
    }

    /// Starts the children in order under a new root supervisor; see the module docs.
    pub async fn start(self) -> Result<AppHandle, ApplicationError> {
        let app = self.name;
        match Supervisor::start(self.children, self.options).await {
            Ok(root) => {
                tracing::info!(app = %app, supervisor = %root.pid(), "application started");
                Ok(AppHandle {
                    name: app,
                    root,
                    stop_timeout: self.stop_timeout,
                })
            }
            Err(SupervisorError::StartFailed { id, reason }) => {
                Err(ApplicationError::ChildFailed {
                    app,
                    child: id,
                    reason,
                })
            }
            Err(error) => Err(ApplicationError::Supervisor { app, error }),
        }
    }

    /// Starts the application and waits until it ends: `Ok` after a ctrl-c or SIGTERM
    /// stopped it (with [`stop_on_signals`](Application::stop_on_signals)),
    /// [`ApplicationError::Exited`] if the root supervisor gave up. The one call in
    /// `main`.
    pub async fn run(self) -> Result<(), ApplicationError> {
        let signals = if self.signals {
            Some(Signals::new().map_err(|e| ApplicationError::Signals {
                app: self.name.clone(),
                error: e.to_string(),
            })?)
        } else {
            None
        };
        let app = self.start().await?;
        match signals {
            Some(mut s) => {
                let exit = std::pin::pin!(app.root.wait_exit());
                let signal = std::pin::pin!(s.recv());
                match futures::future::select(exit, signal).await {
                    Either::Left((reason, _)) => Err(app.exited(reason)),
                    Either::Right((which, _)) => {
                        tracing::info!(app = %app.name, signal = which, "stopping the application");
                        app.stop().await
                    }
                }
            }
            None => {
                let reason = app.root.wait_exit().await;
                Err(app.exited(reason))
            }
        }
    }
}

/// A running application.
#[derive(Debug, Clone)]
pub struct AppHandle {
    name: String,
    root: SupervisorRef,
    stop_timeout: Duration,
}

impl AppHandle {
    /// The application's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The root supervisor (to inspect or change the children).
    pub fn supervisor(&self) -> &SupervisorRef {
        &self.root
    }

    /// Stops every child in reverse start order and the root supervisor, and waits for
    /// them (up to the application's `stop_timeout`). Stopping an application that
    /// already ended is `Ok`.
    pub async fn stop(&self) -> Result<(), ApplicationError> {
        if !self.root.is_alive() {
            return Ok(());
        }
        match self
            .root
            .stop(ExitReason::Shutdown, self.stop_timeout)
            .await
        {
            Ok(()) => Ok(()),
            // It ended meanwhile.
            Err(_) if !self.root.is_alive() => Ok(()),
            Err(error) => Err(ApplicationError::Supervisor {
                app: self.name.clone(),
                error,
            }),
        }
    }

    /// Waits until the application ends (stopped, or its root supervisor gave up) and
    /// returns the root supervisor's exit reason.
    pub async fn wait(&self) -> ExitReason {
        self.root.wait_exit().await
    }

    fn exited(&self, reason: ExitReason) -> ApplicationError {
        ApplicationError::Exited {
            app: self.name.clone(),
            reason,
        }
    }
}

/// ctrl-c and SIGTERM, listened for from before the children start.
struct Signals {
    #[cfg(all(unix, feature = "signal"))]
    int: tokio::signal::unix::Signal,
    #[cfg(all(unix, feature = "signal"))]
    term: tokio::signal::unix::Signal,
}

impl Signals {
    #[cfg(all(unix, feature = "signal"))]
    fn new() -> std::io::Result<Signals> {
        use tokio::signal::unix::{signal, SignalKind};
        Ok(Signals {
            int: signal(SignalKind::interrupt())?,
            term: signal(SignalKind::terminate())?,
        })
    }

    #[cfg(all(not(unix), feature = "signal"))]
    fn new() -> std::io::Result<Signals> {
        Ok(Signals {})
    }

    /// Waits for the next signal; returns its name.
    #[cfg(all(unix, feature = "signal"))]
    async fn recv(&mut self) -> &'static str {
        let int = std::pin::pin!(self.int.recv());
        let term = std::pin::pin!(self.term.recv());
        match futures::future::select(int, term).await {
            Either::Left(_) => "SIGINT",
            Either::Right(_) => "SIGTERM",
        }
    }

    #[cfg(not(feature = "signal"))]
    fn new() -> std::io::Result<Signals> {
        Err(std::io::Error::new(
            std::io::ErrorKind::Unsupported,
            "orbit was built without its `signal` cargo feature",
        ))
    }

    #[cfg(not(feature = "signal"))]
    async fn recv(&mut self) -> &'static str {
        std::future::pending().await
    }

    #[cfg(all(not(unix), feature = "signal"))]
    async fn recv(&mut self) -> &'static str {
        let _ = tokio::signal::ctrl_c().await;
        "ctrl-c"
    }
}
