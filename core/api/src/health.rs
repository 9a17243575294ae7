//! A worker's jobs that keep failing (Section 6: what needs an operator is said, not
//! logged away). A worker records a job once when it starts failing and once when it works
//! again, never per tick, so a failing host does not grow the log by a tick's worth.

use crate::event;

/// A worker's job (`projection:…`, `connector:…`, a reaction, dispatch) failed this many
/// times in a row; the last error is kept. `ops-host status` is unhealthy until the job
/// works again.
#[event(public)]
#[derive(Clone, Debug, PartialEq)]
#[schemars(example = JobFailing {
    worker: "host-1/4242/1765000000".to_owned(),
    job: "connector:tickets/tickets".to_owned(),
    failures: 3,
    error: "reading the source failed: permission denied".to_owned(),
})]
pub struct JobFailing {
    pub worker: String,
    pub job: String,
    pub failures: u32,
    pub error: String,
}

/// A job recorded as failing worked again.
#[event(public)]
#[derive(Clone, Debug, PartialEq)]
#[schemars(example = JobRecovered {
    worker: "host-1/4242/1765000000".to_owned(),
    job: "connector:tickets/tickets".to_owned(),
})]
pub struct JobRecovered {
    pub worker: String,
    pub job: String,
}
