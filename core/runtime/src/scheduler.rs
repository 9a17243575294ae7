//! Priority lanes (Section 6): interactive > background > batch.
//!
//! The order of the queue is priority → arrival → a deterministic tie-break. Priority is a
//! job's effective lane: its own, raised one step for every `aging` ticks it has waited, so
//! batch work is never starved by a steady stream of interactive work. Arrival is the tick
//! a job was pushed at. Jobs of one priority that arrived in the same tick are taken by the
//! tie-break: the actor served least so far first (fairness per actor, so one actor's burst
//! does not hold back everyone else's), then push order, then job id. A running job is
//! preempted, between its batches, when a waiting job's effective lane is higher than its
//! own; it goes back to the queue with its arrival and resumes before what came after it.
//! Time is a logical tick the caller advances, so the same pushes and ticks always give the
//! same order.

use std::collections::BTreeMap;

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Lane {
    Interactive,
    Background,
    Batch,
}

impl Lane {
    fn rank(self) -> u64 {
        match self {
            Lane::Interactive => 0,
            Lane::Background => 1,
            Lane::Batch => 2,
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Job {
    pub id: String,
    pub lane: Lane,
    pub actor: String,
}

#[derive(Clone, Debug, PartialEq, Eq)]
struct Waiting {
    job: Job,
    /// Its place in push order.
    arrival: u64,
    /// The tick it was pushed at.
    since: u64,
}

#[derive(Clone, Debug)]
pub struct Scheduler {
    waiting: Vec<Waiting>,
    /// The job taken last, until it is preempted or the next is taken.
    running: Option<Waiting>,
    served: BTreeMap<String, u64>,
    arrivals: u64,
    now: u64,
    /// Ticks of waiting that raise a job by one lane.
    aging: u64,
}

impl Scheduler {
    pub fn new(aging: u64) -> Self {
        Scheduler {
            waiting: Vec::new(),
            running: None,
            served: BTreeMap::new(),
            arrivals: 0,
            now: 0,
            aging: aging.max(1),
        }
    }

    pub fn push(&mut self, job: Job) {
        self.arrivals += 1;
        self.waiting.push(Waiting {
            job,
            arrival: self.arrivals,
            since: self.now,
        });
    }

    pub fn tick(&mut self) {
        self.now += 1;
    }

    pub fn now(&self) -> u64 {
        self.now
    }

    pub fn len(&self) -> usize {
        self.waiting.len()
    }

    pub fn is_empty(&self) -> bool {
        self.waiting.is_empty()
    }

    /// The lane rank a job has now: its own, raised one step per `aging` ticks waited.
    fn effective(&self, waiting: &Waiting) -> u64 {
        let raised = (self.now - waiting.since) / self.aging;
        waiting.job.lane.rank().saturating_sub(raised)
    }

    /// Priority, arrival, then the tie-break: served least, push order, id.
    fn key<'a>(&self, waiting: &'a Waiting) -> (u64, u64, u64, u64, &'a str) {
        (
            self.effective(waiting),
            waiting.since,
            self.served.get(&waiting.job.actor).copied().unwrap_or(0),
            waiting.arrival,
            &waiting.job.id,
        )
    }

    /// The job to run next, taken off the queue.
    pub fn pop_next(&mut self) -> Option<Job> {
        let index = (0..self.waiting.len()).min_by_key(|&index| self.key(&self.waiting[index]))?;
        let taken = self.waiting.swap_remove(index);
        *self.served.entry(taken.job.actor.clone()).or_default() += 1;
        let job = taken.job.clone();
        self.running = Some(taken);
        Some(job)
    }

    /// Whether `running` (started in its own lane) should yield to a waiting job.
    pub fn preempts(&self, running: &Job) -> bool {
        self.waiting
            .iter()
            .any(|waiting| self.effective(waiting) < running.lane.rank())
    }

    /// Puts the job taken last back in the queue, preempted before it finished: with its
    /// arrival, so it resumes before the jobs that came after it, and not counted as a turn
    /// of its actor's.
    pub fn preempted(&mut self) {
        if let Some(running) = self.running.take() {
            if let Some(served) = self.served.get_mut(&running.job.actor) {
                *served = served.saturating_sub(1);
            }
            self.waiting.push(running);
        }
    }

    /// The longest any waiting job has waited, in ticks.
    pub fn longest_wait(&self) -> u64 {
        self.waiting
            .iter()
            .map(|waiting| self.now - waiting.since)
            .max()
            .unwrap_or(0)
    }
}
