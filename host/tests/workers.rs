//! Several `ops-host run` processes on one PostgreSQL schema (at `DATABASE_URL`): three
//! start at once on a fresh schema and ingest a few thousand records through the ticket
//! connector; one is killed (SIGKILL) as soon as it holds a lease. The log and the
//! incident board's rows end as one worker's run of the same input leaves them, every
//! event stored once, and every lease the killed worker held was taken over.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

#[path = "../../tests/src/export.rs"]
mod export;
#[path = "support/postgres.rs"]
mod postgres;
#[path = "support/running.rs"]
mod running;

use postgres::{Schema, database_url};

const RECORDS: usize = 3_000;

impl Schema {
    /// Every event the input made, by id: its stream place and envelope, less when it was
    /// ingested (which differs between any two runs). The retention receipts each worker
    /// writes when it starts are its own, not the input's.
    fn log(&self) -> Vec<String> {
        self.rows(
            "SELECT event_id, stream_id, stream_version, envelope FROM {schema}.core_events \
             WHERE stream_id <> 'retention' ORDER BY event_id",
        )
        .into_iter()
        .map(|row| {
            let mut envelope: serde_json::Value = serde_json::from_str(&row[3]).unwrap();
            envelope.as_object_mut().unwrap().remove("ingested_at");
            format!("{} {} {} {envelope}", row[0], row[1], row[2])
        })
        .collect()
    }

    /// The board's rows; none before a worker built it.
    fn board(&self) -> Vec<Vec<String>> {
        let built = self.rows(
            "SELECT state_table FROM {schema}.core_projections WHERE name = 'incident_board'",
        );
        let Some(table) = built.first().map(|row| &row[0]) else {
            return Vec::new();
        };
        self.rows(&format!(
            "SELECT tbl, key, document FROM {{schema}}.{table} ORDER BY tbl, key"
        ))
    }
}

fn worker(schema: &Schema, source: &Path, id: &str, extra: &[&str]) -> running::Running {
    running::Running::new(
        Command::new(env!("CARGO_BIN_EXE_ops-host"))
            .args([
                "run",
                "--database",
                &database_url(),
                "--schema",
                &schema.name,
                "--source",
                &format!("tickets={}", source.display()),
                "--worker-id",
                id,
                "--interval-ms",
                "10",
                "--jobs-per-tick",
                "16",
                "--lease-ms",
                "1500",
                // Releases are the operator tests' subject; these workers run a fresh schema.
                "--releases",
                "warn",
            ])
            .args(extra)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap(),
    )
}

/// Stops a worker with SIGINT, as Ctrl-C does, and waits for it to end.
fn interrupt(child: running::Running) -> String {
    let sent = Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(sent.success());
    finish(child)
}

fn finish(child: running::Running) -> String {
    let output = child.wait_with_output();
    let text = String::from_utf8_lossy(&output.stdout).into_owned()
        + &String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{text}");
    text
}

#[test]
fn three_worker_processes_one_killed_end_as_one_worker_does() {
    let source = export::ticket_export(
        &std::env::temp_dir().join(format!("ops-host-workers-{}", std::process::id())),
        RECORDS,
        250,
    );

    let alone = Schema::new("workers_alone");
    finish(worker(&alone, &source, "alone", &["--ticks", "5"]));
    let expected_log = alone.log();
    // One event per record, and the grants of the capabilities the connector and the
    // worker record on (the same two events whichever worker writes them).
    let grants = expected_log
        .iter()
        .filter(|row| row.contains(" capability/cap_"))
        .count();
    assert_eq!((expected_log.len(), grants), (RECORDS + 2, 2));
    let expected_board = alone.board();
    assert!(!expected_board.is_empty());

    let shared = Schema::new("workers_shared");
    // The one to be killed starts first, and the others as soon as it has opened the
    // store, so all three start on a fresh schema and it is the likelier to take leases;
    // it is killed as soon as it holds one.
    let doomed = worker(&shared, &source, "doomed", &[]);
    let until = |what: &str, done: &dyn Fn() -> bool| {
        let started = std::time::Instant::now();
        while !done() {
            assert!(started.elapsed() < Duration::from_secs(60), "{what}");
            std::thread::sleep(Duration::from_millis(2));
        }
    };
    let has_leases = || {
        shared.rows("SELECT count(*)::bigint FROM pg_tables WHERE schemaname = '{schema}' AND tablename = 'core_leases'")[0][0] == "1"
    };
    until("the first worker never opened the store", &has_leases);
    let first = worker(&shared, &source, "first", &[]);
    let second = worker(&shared, &source, "second", &[]);
    // Its leases of work, not the lease that says it is alive (no one takes that over).
    let holding = "SELECT name FROM {schema}.core_leases WHERE holder = 'doomed' AND expires_at_us > 0 \
         AND name NOT LIKE 'worker:%'";
    until("the first worker never held a lease", &|| {
        !shared.rows(holding).is_empty()
    });
    let status = doomed.kill();
    assert!(
        !status.success(),
        "the worker was killed mid-run, not finished"
    );
    let held_when_killed = shared.rows(holding);
    assert!(
        !held_when_killed.is_empty(),
        "the killed worker held no lease"
    );
    // The operator sees who runs what, the killed worker's leases until they end.
    let status = Command::new(env!("CARGO_BIN_EXE_ops-host"))
        .args([
            "status",
            "--database",
            &database_url(),
            "--schema",
            &shared.name,
        ])
        .output()
        .unwrap();
    let status = String::from_utf8_lossy(&status.stdout);
    assert!(
        status.contains(&format!("{} run by doomed until ", held_when_killed[0][0])),
        "{status}"
    );
    // The survivors run until the shared store holds what one worker made (or a minute
    // passes), then are stopped as an operator would, with Ctrl-C.
    let started = std::time::Instant::now();
    let stored = "SELECT count(*)::bigint FROM {schema}.core_events WHERE stream_id <> 'retention'";
    while started.elapsed() < Duration::from_secs(60)
        && (shared.rows(stored)[0][0] != expected_log.len().to_string()
            || shared.board() != expected_board)
    {
        std::thread::sleep(Duration::from_millis(100));
    }
    let (first, second) = (interrupt(first), interrupt(second));
    assert!(
        first.contains("leases released") && second.contains("leases released"),
        "{first}\n{second}"
    );
    let log = shared.log();
    assert_eq!(log.len(), expected_log.len(), "every event stored once");
    let differ = log.iter().zip(&expected_log).position(|(a, b)| a != b);
    assert_eq!(
        differ,
        None,
        "the logs differ first at {:?}",
        differ.map(|at| (&log[at], &expected_log[at]))
    );
    assert_eq!(shared.board(), expected_board);

    // Leases divided the work: somebody waited on another's lease, and every lease the
    // killed worker held was taken over once it ended.
    assert!(
        first.contains(": held by ") || second.contains(": held by "),
        "{first}\n{second}"
    );
    let leases = shared.rows("SELECT name, holder, generation FROM {schema}.core_leases");
    for name in held_when_killed {
        assert!(
            leases
                .iter()
                .any(|lease| lease[0] == name[0] && lease[1] != "doomed"),
            "{name:?} was not taken over: {leases:?}"
        );
    }
    std::fs::remove_dir_all(&source).unwrap();
}

/// Two workers share a projection split by stream (the incident activity, two partitions):
/// each runs one partition, and when one stops the other takes its partition over.
#[test]
fn two_workers_share_a_split_projection_and_one_takes_over_when_the_other_stops() {
    let source = export::ticket_export(
        &std::env::temp_dir().join(format!("ops-host-split-{}", std::process::id())),
        200,
        100,
    );
    let shared = Schema::new("workers_split");
    let holders = || {
        let opened = "SELECT count(*)::bigint FROM pg_tables WHERE schemaname = '{schema}' AND tablename = 'core_leases'";
        if shared.rows(opened)[0][0] != "1" {
            return Vec::new();
        }
        shared.rows(
            "SELECT name, holder FROM {schema}.core_leases \
             WHERE name LIKE 'projection:pack:incidents/incident\\_activity.%' AND expires_at_us > 0 ORDER BY name",
        )
    };
    let until = |what: &str, done: &dyn Fn() -> bool| {
        let started = std::time::Instant::now();
        while !done() {
            assert!(
                started.elapsed() < Duration::from_secs(60),
                "{what}: {:?}",
                holders()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    };
    let first = worker(&shared, &source, "first", &[]);
    // Alone, it runs both partitions.
    until("one worker never ran both partitions", &|| {
        let held = holders();
        held.len() == 2 && held.iter().all(|lease| lease[1] == "first")
    });
    let second = worker(&shared, &source, "second", &[]);
    until("the second worker never got its share", &|| {
        let held = holders();
        held.len() == 2 && held[0][1] != held[1][1]
    });
    let said = interrupt(second);
    assert!(
        said.contains("left to other workers") || said.contains("applied"),
        "{said}"
    );
    until(
        "the remaining worker never took the partition back",
        &|| {
            let held = holders();
            held.len() == 2 && held.iter().all(|lease| lease[1] == "first")
        },
    );
    interrupt(first);
    // Each partition's checkpoint row, and together every incident event once.
    let applied = shared.rows(
        "SELECT name, applied_events FROM {schema}.core_projections \
         WHERE name LIKE 'incident\\_activity.%' ORDER BY name",
    );
    let names: Vec<&str> = applied.iter().map(|row| row[0].as_str()).collect();
    assert_eq!(names, ["incident_activity.0of2", "incident_activity.1of2"]);
    let total: u64 = applied
        .iter()
        .map(|row| row[1].parse::<u64>().unwrap())
        .sum();
    let incident_events = shared.rows(
        "SELECT count(*)::bigint FROM {schema}.core_events WHERE event_type LIKE 'pack.incidents.incident.%'",
    );
    assert_eq!(total.to_string(), incident_events[0][0]);
    std::fs::remove_dir_all(&source).unwrap();
}
