//! Task.Supervisor in a supervision tree: its child spec and finding it by name or pid
//! (kept out of `task_supervisor.rs`, which holds the tasks themselves).
//!
//! As Elixir's `{Task.Supervisor, name: ...}` child: a permanent supervisor with shutdown
//! infinity, linked to its supervisor; stopping it stops its tasks (`shutdown`, `kill`
//! after 5 s) and waits for them. A restarted task supervisor starts empty (its tasks
//! are temporary and die with it).

use super::{ChildSpec, IntoStartResult, StartResult};
use crate::error::Error;
use crate::exit::ExitReason;
use crate::pid::Pid;
use crate::task_supervisor::TaskSupervisor;

impl TaskSupervisor {
    /// A child spec that starts a task supervisor linked to the supervisor at each
    /// (re)start, registered as `name` when given (find it with
    /// [`TaskSupervisor::whereis`]): permanent, kind supervisor, shutdown infinity.
    pub fn child_spec(id: impl Into<String>, name: Option<&str>) -> ChildSpec {
        let spec = ChildSpec::supervisor(id, || async { TaskSupervisor::start_link() });
        ChildSpec {
            name: name.map(str::to_string),
            ..spec
        }
    }

    /// The task supervisor running as `pid`, if it is one.
    pub fn from_pid(pid: Pid) -> Option<TaskSupervisor> {
        crate::attachment::attached::<TaskSupervisor>(pid)
    }

    /// The task supervisor registered as `name`, if it runs: after a supervisor
    /// restarted it, the new one.
    pub fn whereis(name: impl Into<crate::registry::Dest>) -> Option<TaskSupervisor> {
        name.into().whereis().and_then(Self::from_pid)
    }
}

impl ChildSpec {
    /// A Task.Supervisor as a child: [`TaskSupervisor::child_spec`].
    pub fn task_supervisor(id: impl Into<String>, name: Option<&str>) -> ChildSpec {
        TaskSupervisor::child_spec(id, name)
    }
}

impl IntoStartResult for Result<TaskSupervisor, Error> {
    fn into_start_result(self) -> StartResult {
        self.map(|s| Some(s.pid()))
            .map_err(|e| ExitReason::error(e.to_string()))
    }
}
