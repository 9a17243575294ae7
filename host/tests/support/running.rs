//! A worker process a test started, killed (and reaped) when the test lets go of it: a
//! test that fails half-way leaves no worker running behind it to slow every later run.

use std::process::{Child, Output};

pub struct Running(Option<Child>);

impl Running {
    pub fn new(child: Child) -> Running {
        Running(Some(child))
    }

    pub fn id(&self) -> u32 {
        self.0.as_ref().expect("running until finished").id()
    }

    /// Kills it (SIGKILL, a crash) and says how it ended.
    #[allow(dead_code)] // not every test binary that shares this kills a worker
    pub fn kill(mut self) -> std::process::ExitStatus {
        let mut child = self.0.take().expect("running until finished");
        child.kill().expect("killing the worker");
        child.wait().expect("reaping the worker")
    }

    /// Waits for it to end by itself: its exit and what it printed.
    pub fn wait_with_output(mut self) -> Output {
        self.0
            .take()
            .expect("running until finished")
            .wait_with_output()
            .expect("waiting for the worker")
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        if let Some(mut child) = self.0.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}
