//! Priority lanes: ordering rules as properties over random queues, and a simulation in
//! which batch work still completes under a steady stream of interactive work.

use std::collections::BTreeMap;

use ops_core_runtime::scheduler::{Job, Lane, Scheduler};
use proptest::prelude::*;

fn lane() -> impl Strategy<Value = Lane> {
    prop_oneof![
        Just(Lane::Interactive),
        Just(Lane::Background),
        Just(Lane::Batch)
    ]
}

fn jobs() -> impl Strategy<Value = Vec<(Lane, u8)>> {
    proptest::collection::vec((lane(), 0u8..4), 1..40)
}

fn job(n: usize, lane: Lane, actor: u8) -> Job {
    Job {
        id: format!("job-{n:03}"),
        lane,
        actor: format!("actor-{actor}"),
    }
}

/// Pushes everything at tick 0, then drains without time passing.
fn drain(pushed: &[(Lane, u8)]) -> Vec<Job> {
    let mut scheduler = Scheduler::new(u64::MAX);
    for (n, (lane, actor)) in pushed.iter().enumerate() {
        scheduler.push(job(n, *lane, *actor));
    }
    std::iter::from_fn(|| scheduler.pop_next()).collect()
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 500, ..ProptestConfig::default() })]

    /// Without aging, a lower lane never runs while a higher one waits.
    #[test]
    fn lanes_are_served_in_priority_order(pushed in jobs()) {
        let order = drain(&pushed);
        prop_assert_eq!(order.len(), pushed.len());
        for pair in order.windows(2) {
            prop_assert!(pair[0].lane <= pair[1].lane, "{:?} before {:?}", pair[0], pair[1]);
        }
    }

    /// One actor's jobs in one lane run in arrival order.
    #[test]
    fn an_actors_jobs_in_a_lane_keep_their_arrival_order(pushed in jobs()) {
        let order = drain(&pushed);
        let mut last: BTreeMap<(Lane, String), String> = BTreeMap::new();
        for job in order {
            let key = (job.lane, job.actor.clone());
            if let Some(previous) = last.get(&key) {
                prop_assert!(previous < &job.id, "{} ran after {}", previous, job.id);
            }
            last.insert(key, job.id);
        }
    }

    /// Within a lane, no actor gets two turns while another waits with fewer served.
    #[test]
    fn actors_in_a_lane_take_turns(a in 1usize..10, b in 1usize..10) {
        let pushed: Vec<(Lane, u8)> = (0..a).map(|_| (Lane::Background, 0)).chain((0..b).map(|_| (Lane::Background, 1))).collect();
        let order = drain(&pushed);
        let mut served: BTreeMap<String, usize> = BTreeMap::new();
        for job in &order {
            *served.entry(job.actor.clone()).or_default() += 1;
            let (zero, one) = (served.get("actor-0").copied().unwrap_or(0), served.get("actor-1").copied().unwrap_or(0));
            let (left_zero, left_one) = (a - zero, b - one);
            if left_zero > 0 && left_one > 0 {
                prop_assert!(zero.abs_diff(one) <= 1, "{:?}", served);
            }
        }
    }

    /// Within one priority, what arrived at an earlier tick runs first, whoever its actor.
    #[test]
    fn within_a_priority_earlier_arrivals_run_first(pushed in proptest::collection::vec((lane(), 0u8..4, 0u8..3), 1..40)) {
        let mut scheduler = Scheduler::new(u64::MAX);
        let mut arrived = BTreeMap::new();
        for (n, (lane, actor, ticks)) in pushed.iter().enumerate() {
            for _ in 0..*ticks {
                scheduler.tick();
            }
            let job = job(n, *lane, *actor);
            arrived.insert(job.id.clone(), scheduler.now());
            scheduler.push(job);
        }
        let order: Vec<Job> = std::iter::from_fn(|| scheduler.pop_next()).collect();
        for pair in order.windows(2) {
            if pair[0].lane == pair[1].lane {
                prop_assert!(arrived[&pair[0].id] <= arrived[&pair[1].id], "{:?} before {:?}", pair[0], pair[1]);
            }
        }
    }

    /// The same pushes give the same order.
    #[test]
    fn the_order_is_deterministic(pushed in jobs()) {
        prop_assert_eq!(drain(&pushed), drain(&pushed));
    }
}

#[test]
fn a_waiting_interactive_job_preempts_batch_work() {
    let mut scheduler = Scheduler::new(100);
    let running = job(0, Lane::Batch, 0);
    assert!(!scheduler.preempts(&running));
    scheduler.push(job(1, Lane::Interactive, 1));
    assert!(scheduler.preempts(&running));
    assert!(
        !scheduler.preempts(&job(2, Lane::Interactive, 1)),
        "same lane does not preempt"
    );
}

/// A job preempted between its batches goes back with its arrival: the interactive job
/// runs, then the preempted one before the batch work that came after it.
#[test]
fn a_preempted_job_resumes_before_later_arrivals() {
    let mut scheduler = Scheduler::new(100);
    scheduler.push(job(0, Lane::Batch, 0));
    scheduler.tick();
    scheduler.push(job(1, Lane::Batch, 1));
    let running = scheduler.pop_next().expect("work");
    assert_eq!(running.id, "job-000");
    scheduler.push(job(2, Lane::Interactive, 2));
    assert!(scheduler.preempts(&running));
    scheduler.preempted();
    let order: Vec<String> = std::iter::from_fn(|| scheduler.pop_next())
        .map(|job| job.id)
        .collect();
    assert_eq!(order, ["job-002", "job-000", "job-001"]);
}

/// One job finishes per tick; a new interactive job arrives every tick; twenty batch jobs
/// wait from the start. With aging every batch job completes, within a bound; without it,
/// none would.
#[test]
fn batch_work_completes_under_sustained_interactive_load() {
    const TICKS: usize = 2_000;
    const AGING: u64 = 10;
    let mut scheduler = Scheduler::new(AGING);
    for n in 0..20 {
        scheduler.push(job(n, Lane::Batch, 9));
    }
    let mut completed: BTreeMap<Lane, usize> = BTreeMap::new();
    let mut longest = 0;
    for tick in 0..TICKS {
        scheduler.push(job(100 + tick, Lane::Interactive, (tick % 3) as u8));
        longest = longest.max(scheduler.longest_wait());
        let done = scheduler.pop_next().expect("work is waiting");
        *completed.entry(done.lane).or_default() += 1;
        scheduler.tick();
    }
    assert_eq!(completed.get(&Lane::Batch), Some(&20), "{completed:?}");
    assert!(
        completed[&Lane::Interactive] > TICKS * 9 / 10,
        "interactive work keeps most of the capacity: {completed:?}"
    );
    // Two lanes of aging; then the batch jobs, which arrived first, run before the
    // interactive jobs that arrived after them.
    assert!(longest <= 2 * AGING + 20, "longest wait {longest}");

    let mut no_aging = Scheduler::new(u64::MAX);
    no_aging.push(job(0, Lane::Batch, 9));
    for tick in 0..100 {
        no_aging.push(job(100 + tick, Lane::Interactive, 0));
        assert_eq!(no_aging.pop_next().expect("work").lane, Lane::Interactive);
        no_aging.tick();
    }
}
