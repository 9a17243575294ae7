//! The jail: pack and contract code runs outside the host process, in one runner process
//! per pack that the kernel confines (`confine`). The host binary is the runner, started
//! with [`RUNNER_ARG`] (`runner`), so a team's own host has it too; the host keeps one
//! runner per pack (`pool`) and talks to it in frames (`wire`). [`PackCode`] is what the
//! runtime calls pack code through, jailed or (under `--unjailed`, or a library's own
//! choice) in the host's process, and [`Fault`] is how a call can end other than with its
//! result: the fault ends that call only.

mod code;
mod confine;
mod pool;
mod runner;
mod wire;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

pub use code::ProjectedRef;
pub use code::{HandlerState, Mirror, PackCode, PieceError, Projected};
pub use runner::{RUNNER_ARG, serve_if_runner};
pub use wire::Conflict;

/// How long one call of a piece may take, unless `ops.toml` says otherwise for its pack.
pub const DEFAULT_CALL_TIME: Duration = Duration::from_secs(5);
/// A runner's address space, unless `ops.toml` says otherwise for its pack.
pub const DEFAULT_MEMORY_BYTES: u64 = 1 << 30;

/// A pack's limits: each call's time, and its runner's memory.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    pub call_time: Duration,
    pub memory_bytes: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            call_time: DEFAULT_CALL_TIME,
            memory_bytes: DEFAULT_MEMORY_BYTES,
        }
    }
}

/// How a call of pack code ended without its result. The runner is replaced after each.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum Fault {
    #[error("panicked: {0}")]
    Panicked(String),
    #[error("did not return within its time limit of {} ms; its runner was killed", .0.as_millis())]
    TimedOut(Duration),
    #[error("went over its memory limit: {0}")]
    OutOfMemory(String),
    #[error("made a system call the jail forbids; the kernel killed its runner")]
    Forbidden,
    #[error("its runner was killed by signal {signal}{}", said_suffix(.said))]
    Killed { signal: i32, said: String },
    #[error("its runner exited{}", said_suffix(.0))]
    Exited(String),
    #[error("its runner answered what the host cannot read: {0}")]
    Unreadable(String),
}

fn said_suffix(said: &str) -> String {
    if said.is_empty() {
        String::new()
    } else {
        format!(" saying `{said}`")
    }
}

#[derive(Debug, thiserror::Error)]
pub enum JailError {
    #[error("starting a pack runner ({}): {source}", program.display())]
    Start {
        program: PathBuf,
        source: std::io::Error,
    },
    #[error(
        "the kernel cannot confine pack code here ({0}); start the host with `--unjailed` to run pack code unconfined, which status and every receipt will say"
    )]
    CannotConfine(String),
    #[error("a pack runner broke the protocol: {0}")]
    Protocol(String),
}

/// Pack runners: the program to start (the host binary), each pack's limits, and the
/// runners alive. Cheap to clone; clones share runners.
#[derive(Clone)]
pub struct Jail {
    pool: Arc<pool::Pool>,
}

impl Jail {
    /// Runners started from `program`, which must be a host binary of the same packs (one
    /// whose `main` calls [`serve_if_runner`]; `ops_host::main!()` does).
    pub fn new(program: impl Into<PathBuf>) -> Self {
        Self::with(program.into(), true, Limits::default(), Vec::new())
    }

    /// Runners as [`Jail::new`] starts them, with `default` limits and some packs' own.
    pub fn with(
        program: PathBuf,
        confined: bool,
        default: Limits,
        per_pack: Vec<(String, Limits)>,
    ) -> Self {
        let mut pool = pool::Pool::new(program, confined);
        pool.set_default_limits(default);
        pool.set_limits(per_pack.into_iter().collect());
        Jail {
            pool: Arc::new(pool),
        }
    }

    /// The running host binary as the runner program.
    pub fn of_this_host() -> std::io::Result<PathBuf> {
        std::env::current_exe()
    }

    /// Starts and stops one runner, to learn now, not at the first event, whether the
    /// kernel confines it.
    pub fn check(&self) -> Result<(), JailError> {
        let probe = self.pool.slot("");
        let mut slot = probe.lock().unwrap_or_else(|e| e.into_inner());
        let call = wire::Call::Streams {
            connector: String::new(),
        };
        self.pool
            .exchange("", &mut slot, &[call], 1, |_, _| Ok(()))?
            .map_err(|(_, fault)| JailError::Protocol(format!("a probe runner faulted: {fault}")))
    }

    /// Whether runners are confined (`false` only when the host was told `--unjailed`).
    pub fn confined(&self) -> bool {
        self.pool.confined()
    }

    /// The process ids of the runners alive now, by pack.
    pub fn runner_pids(&self) -> Vec<(String, u32)> {
        self.pool.runner_pids()
    }

    /// Puts `per_pack` in force for every pack (the others get the default limits) from
    /// their next call on: a pack whose limits changed gets a new runner.
    pub fn set_limits(&self, per_pack: Vec<(String, Limits)>) {
        self.pool.set_limits(per_pack.into_iter().collect());
    }

    pub fn limits_of(&self, pack: &str) -> Limits {
        self.pool.limits_of(pack)
    }
}
