//! The host's side: one runner process per pack, started on first use and again after a
//! fault. A call waits for each reply at most the pack's time limit; a runner that does not
//! answer in time is killed. What a runner says is read on a thread of its own into a
//! channel, and what it is told is written on another, so neither a runner that stops
//! reading nor one that stops writing can hold the host past the limit.

use std::collections::BTreeMap;
use std::io::{BufReader, BufWriter, Read};
use std::os::unix::process::ExitStatusExt;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc::{Receiver, RecvTimeoutError, Sender, channel};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use super::wire::{MAX_REPLY_BYTES, Reply, decode, read_frame_bytes, write_frame};
use super::{Fault, JailError, Limits, RUNNER_ARG};

/// How long a new runner may take to confine itself and say it is ready.
const START_TIME: Duration = Duration::from_secs(20);
/// How long a runner whose output ended may take to exit before it is killed.
const EXIT_GRACE: Duration = Duration::from_secs(1);
/// How much later than computed a reply may arrive: a runner's burst, and some.
const REPLY_SLACK: Duration = Duration::from_millis(30);
/// How much of what a runner wrote on its standard error the host keeps: the end of it.
const DIAGNOSTICS_KEPT: usize = 4096;

pub(super) struct Pool {
    program: PathBuf,
    confined: bool,
    default_limits: Limits,
    /// Each configured pack's limits; changed while runners run (a reloaded `ops.toml`).
    limits: std::sync::RwLock<BTreeMap<String, Limits>>,
    slots: Mutex<BTreeMap<String, Arc<Mutex<Slot>>>>,
}

/// One pack's runner, or none until the next call starts one.
#[derive(Default)]
pub(super) struct Slot {
    runner: Option<Runner>,
    /// Counts the runners this slot started: a copy of rows or states a runner held is
    /// known by the runner it was sent to.
    started: u64,
}

impl Slot {
    /// Which runner is alive now (`None`: none is), as [`Slot::started`] counts them.
    pub(super) fn alive(&self) -> Option<u64> {
        self.runner.as_ref().map(|_| self.started)
    }
}

/// What the reader of a runner's output passes on.
enum Incoming {
    Frame(Vec<u8>),
    /// The output is not frames (one over the limit, say): the runner is faulty.
    Broken(String),
    /// The output ended.
    Closed,
}

struct Runner {
    child: Child,
    calls: Sender<Vec<u8>>,
    replies: Receiver<Incoming>,
    diagnostics: Arc<Mutex<Vec<u8>>>,
}

impl Pool {
    pub(super) fn new(program: PathBuf, confined: bool) -> Self {
        Pool {
            program,
            confined,
            default_limits: Limits::default(),
            limits: Default::default(),
            slots: Mutex::new(BTreeMap::new()),
        }
    }

    pub(super) fn confined(&self) -> bool {
        self.confined
    }

    pub(super) fn set_default_limits(&mut self, limits: Limits) {
        self.default_limits = limits;
    }

    /// Replaces every pack's own limits with `per_pack`. A pack whose limits changed has
    /// its runner stopped once its call in flight ends, so the next call starts one under
    /// the new limits (a runner's memory is fixed when it starts); what that runner held is
    /// sent again, as after any runner's end.
    pub(super) fn set_limits(&self, per_pack: BTreeMap<String, Limits>) {
        let before = std::mem::replace(
            &mut *self.limits.write().unwrap_or_else(|e| e.into_inner()),
            per_pack,
        );
        let changed: Vec<String> = {
            let slots = self.slots.lock().unwrap_or_else(|e| e.into_inner());
            slots
                .keys()
                .filter(|pack| {
                    before.get(*pack).copied().unwrap_or(self.default_limits)
                        != self.limits_of(pack)
                })
                .cloned()
                .collect()
        };
        for pack in changed {
            self.slot(&pack)
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .runner = None;
        }
    }

    pub(super) fn limits_of(&self, pack: &str) -> Limits {
        self.limits
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(pack)
            .copied()
            .unwrap_or(self.default_limits)
    }

    pub(super) fn slot(&self, pack: &str) -> Arc<Mutex<Slot>> {
        self.slots
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .entry(pack.to_owned())
            .or_default()
            .clone()
    }

    /// The process ids of the runners alive now, by pack.
    pub(super) fn runner_pids(&self) -> Vec<(String, u32)> {
        let slots = self.slots.lock().unwrap_or_else(|e| e.into_inner());
        slots
            .iter()
            .filter_map(|(pack, slot)| {
                let slot = slot.lock().ok()?;
                Some((pack.clone(), slot.runner.as_ref()?.child.id()))
            })
            .collect()
    }

    /// Starts a runner of `pack` and waits until it is confined and ready.
    fn start(&self, pack: &str, slot: &mut Slot) -> Result<(), JailError> {
        let limits = self.limits_of(pack);
        let mut command = Command::new(&self.program);
        command
            .arg(RUNNER_ARG)
            .arg(pack)
            .arg(limits.memory_bytes.to_string())
            .arg(if self.confined {
                "confined"
            } else {
                "unconfined"
            })
            // Nothing of the host's environment (a database URL, a password) goes along.
            .env_clear()
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = command.spawn().map_err(|source| JailError::Start {
            program: self.program.clone(),
            source,
        })?;
        let (to_runner, calls) = channel::<Vec<u8>>();
        let mut input = BufWriter::new(child.stdin.take().expect("stdin is piped"));
        std::thread::spawn(move || {
            for frame in calls {
                if std::io::Write::write_all(&mut input, &frame)
                    .and_then(|()| std::io::Write::flush(&mut input))
                    .is_err()
                {
                    break;
                }
            }
        });
        let (replies_in, replies) = channel();
        let mut output = BufReader::new(child.stdout.take().expect("stdout is piped"));
        std::thread::spawn(move || {
            loop {
                let incoming = match read_frame_bytes(&mut output, MAX_REPLY_BYTES) {
                    Ok(Some(frame)) => Incoming::Frame(frame),
                    Ok(None) => Incoming::Closed,
                    Err(error) => Incoming::Broken(error.to_string()),
                };
                let last = !matches!(incoming, Incoming::Frame(_));
                if replies_in.send(incoming).is_err() || last {
                    break;
                }
            }
        });
        let diagnostics = Arc::new(Mutex::new(Vec::new()));
        let kept = diagnostics.clone();
        let mut errors = child.stderr.take().expect("stderr is piped");
        std::thread::spawn(move || {
            let mut buffer = [0u8; 1024];
            while let Ok(read) = errors.read(&mut buffer) {
                if read == 0 {
                    break;
                }
                let mut kept = kept.lock().unwrap_or_else(|e| e.into_inner());
                kept.extend_from_slice(&buffer[..read]);
                let excess = kept.len().saturating_sub(DIAGNOSTICS_KEPT);
                kept.drain(..excess);
            }
        });
        let mut runner = Runner {
            child,
            calls: to_runner,
            replies,
            diagnostics,
        };
        match runner.next_reply(START_TIME) {
            Ok(Reply::Ready) => {}
            Ok(Reply::Unconfined(reason)) => {
                runner.kill();
                return Err(JailError::CannotConfine(reason));
            }
            Ok(other) => {
                runner.kill();
                return Err(JailError::Protocol(format!("a new runner said {other:?}")));
            }
            Err(fault) => return Err(JailError::Protocol(format!("a new runner failed: {fault}"))),
        }
        slot.started += 1;
        slot.runner = Some(runner);
        Ok(())
    }

    /// Sends `calls` to `pack`'s runner (starting one when there is none), each as soon
    /// as it is encoded, so the runner works on the first while the next is encoded, and
    /// reads `replies` replies in all, each within the time limit, giving each to `each`.
    /// A fault ends the exchange at the reply it happened on (its index), and the runner
    /// is gone.
    pub(super) fn exchange(
        &self,
        pack: &str,
        slot: &mut Slot,
        calls: &[impl serde::Serialize],
        replies: usize,
        mut each: impl FnMut(usize, Reply) -> Result<(), Fault>,
    ) -> Result<Result<(), (usize, Fault)>, JailError> {
        if slot.runner.is_none() {
            self.start(pack, slot)?;
        }
        let limit = self.limits_of(pack).call_time;
        let runner = slot.runner.as_mut().expect("started above");
        let mut sent = true;
        for call in calls {
            let mut frame = Vec::new();
            write_frame(&mut frame, call).map_err(|e| JailError::Protocol(e.to_string()))?;
            sent &= runner.calls.send(frame).is_ok();
        }
        for index in 0..replies {
            let reply = if sent {
                runner.next_reply(limit)
            } else {
                Err(runner.ended())
            };
            match reply {
                Ok(Reply::Panicked(message)) => {
                    let _ = runner.child.wait();
                    slot.runner = None;
                    return Ok(Err((index, Fault::Panicked(message))));
                }
                Ok(reply) => {
                    if let Err(fault) = each(index, reply) {
                        runner.kill();
                        slot.runner = None;
                        return Ok(Err((index, fault)));
                    }
                }
                Err(fault) => {
                    slot.runner = None;
                    return Ok(Err((index, fault)));
                }
            }
        }
        Ok(Ok(()))
    }
}

impl Runner {
    /// The next reply within `limit`, and the slack a burst of replies may take (a runner
    /// sends them in bursts, `runner::BURST`).
    fn next_reply(&mut self, limit: Duration) -> Result<Reply, Fault> {
        match self.replies.recv_timeout(limit + REPLY_SLACK) {
            Ok(Incoming::Frame(frame)) => decode(&frame).map_err(|reason| {
                self.kill();
                Fault::Unreadable(reason)
            }),
            Ok(Incoming::Broken(reason)) => {
                self.kill();
                Err(Fault::Unreadable(reason))
            }
            Ok(Incoming::Closed) | Err(RecvTimeoutError::Disconnected) => Err(self.ended()),
            Err(RecvTimeoutError::Timeout) => {
                self.kill();
                Err(Fault::TimedOut(limit))
            }
        }
    }

    fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Why the runner's output ended: how it exited and the end of what it said. A runner
    /// that closed its output and lives on is given a moment to exit, then killed.
    fn ended(&mut self) -> Fault {
        let given = std::time::Instant::now();
        while matches!(self.child.try_wait(), Ok(None)) && given.elapsed() < EXIT_GRACE {
            std::thread::sleep(Duration::from_millis(2));
        }
        let _ = self.child.kill();
        let status = self.child.wait();
        // The diagnostics thread reads until the pipe closes; give it that instant.
        std::thread::sleep(Duration::from_millis(5));
        let diagnostics =
            String::from_utf8_lossy(&self.diagnostics.lock().unwrap_or_else(|e| e.into_inner()))
                .into_owned();
        // The runtime says an allocation failed before it aborts; other lines (a note on
        // backtraces) may follow.
        let out_of_memory = diagnostics
            .lines()
            .find(|line| line.contains("memory allocation of"))
            .map(str::to_owned);
        let said = diagnostics
            .lines()
            .rfind(|line| !line.trim().is_empty() && !line.starts_with("note:"))
            .unwrap_or_default()
            .trim()
            .to_owned();
        match (status.ok().and_then(|s| s.signal()), out_of_memory) {
            (Some(libc::SIGSYS), _) => Fault::Forbidden,
            (Some(libc::SIGABRT), Some(line)) => Fault::OutOfMemory(line),
            (Some(signal), _) => Fault::Killed { signal, said },
            (None, _) => Fault::Exited(said),
        }
    }
}

impl Drop for Runner {
    fn drop(&mut self) {
        self.kill();
    }
}
