//! The jail, on both backends: pack code runs in runner processes the kernel confines, and
//! a panic, a call over its time limit, an allocation over the memory limit or a forbidden
//! system call ends one call, with a receipt, while everything else goes on. A binary of
//! its own: it links the faulty test pack (`tests/faulty-pack`), which no other test sees.

use std::path::PathBuf;
use std::time::Duration;

use ops_contract_incidents::Severity;
use ops_core::capability::Scope;
use ops_core::contract::Contract;
use ops_core::fault::PackCodeFaulted;
use ops_core::projection::DynProjection;
use ops_core_runtime::command::CommandBus;
use ops_core_runtime::jail::{Jail, Limits, PackCode};
use ops_core_runtime::projection::ProjectionRunner;
use ops_core_runtime::reaction::ReactionRunner;
use ops_core_runtime::store::EventStore;
use ops_tests::commands::{book_of, capability, grant, open_titled};
use ops_tests::on_both_backends;
use ops_tests::responder;
use ops_tests::storage::Backend;
use pack_faulty as _;
use serde_json::Value;

/// The faulty host is the runner: it links the same packs as this test.
fn jail() -> Jail {
    Jail::with(
        PathBuf::from(env!("CARGO_BIN_EXE_faulty_host")),
        true,
        Limits {
            call_time: Duration::from_millis(1500),
            memory_bytes: 512 << 20,
        },
        Vec::new(),
    )
}

fn projection(pack: &str, name: &str) -> &'static dyn DynProjection {
    ops_core::projection::installed(ops_core_runtime::CORE)
        .into_iter()
        .find(|p| p.pack_id() == pack && p.name() == name)
        .expect("the projection is installed")
}

/// Every capability the tests act on, the faulty pack's reactions' included.
fn bus(store: &EventStore) -> CommandBus {
    let authority = book_of([
        grant(capability(), responder(), Scope::everything()),
        grant(
            ops_core::id::CapabilityId::of(&("reactions", "faulty")).expect("canonical"),
            ops_core::reaction::reactor("faulty"),
            Scope::everything(),
        ),
    ]);
    CommandBus::new(store.clone(), authority).expect("consistent handlers")
}

/// Incidents opened with these titles, through the bus (the incidents pack's handler runs
/// in its runner too).
async fn opened(store: &EventStore, titles: &[&str]) {
    for (n, title) in titles.iter().enumerate() {
        open_one(store, &format!("INC-{n}"), title).await;
    }
}

/// Incident `id` opened with `title`, through the bus.
async fn open_one(store: &EventStore, id: &str, title: &str) {
    let receipt = bus(store)
        .submit(&open_titled(id, title, Severity::Sev2), capability(), None)
        .await
        .expect("opening an incident");
    assert_eq!(
        receipt.outcome,
        ops_core::envelope::CommandOutcome::Accepted
    );
}

/// `table`'s rows of a projection as its runner holds them after catching up.
fn rows(runner: &ProjectionRunner) -> Vec<((String, String), Value)> {
    runner
        .state()
        .rows()
        .map(|((table, key), row)| ((table.to_owned(), key.to_owned()), row.clone()))
        .collect()
}

async fn receipts(store: &EventStore) -> Vec<PackCodeFaulted> {
    store
        .read_by_type(PackCodeFaulted::TYPE)
        .await
        .expect("reading receipts")
        .into_iter()
        .map(|e| serde_json::from_value(e.envelope.payload).expect("a receipt"))
        .collect()
}

/// A jailed store and the faulty pack's projection started on it, then incidents opened
/// with `titles`: the projection's catch-up is what folds them.
async fn tripwire_over(
    backend: Backend,
    test: &str,
    titles: &[&str],
) -> (EventStore, ProjectionRunner) {
    let store = backend
        .store(test)
        .await
        .with_pack_code(PackCode::Jailed(jail()));
    let tripwire = ProjectionRunner::start(store.clone(), projection("faulty", "tripwire"))
        .await
        .expect("the projection starts");
    opened(&store, titles).await;
    (store, tripwire)
}

const TITLES: [&str; 9] = [
    "fine one",
    "fold:panic",
    "fine two",
    "fold:alloc",
    "fine three",
    "fold:socket",
    "fine four",
    "fold:loop",
    "fine five",
];

async fn each_fault_ends_one_call_with_a_receipt(backend: Backend) {
    let (store, mut tripwire) = tripwire_over(backend, "jail_each_fault", &TITLES).await;
    let report = tripwire
        .catch_up()
        .await
        .expect("the catch-up ends normally");
    assert_eq!(
        (report.applied, report.quarantined, report.faulted),
        (5, 4, 4),
        "{report:?}"
    );
    assert_eq!(report.paused, None, "no two faults were in a row");
    let seen: Vec<String> = rows(&tripwire)
        .into_iter()
        .map(|((_, key), _)| key)
        .collect();
    assert_eq!(seen, ["INC-0", "INC-2", "INC-4", "INC-6", "INC-8"]);

    let receipts = receipts(&store).await;
    let faults: Vec<&str> = receipts.iter().map(|r| r.fault.as_str()).collect();
    assert_eq!(receipts.len(), 4, "{faults:?}");
    assert!(
        receipts.iter().all(|r| r.pack == "faulty"
            && r.piece == "projection pack:faulty/tripwire"
            && r.confined)
    );
    // Applied in canonical order (which the event ids decide here), one of each.
    let each = |kind: &str| {
        faults
            .iter()
            .filter(|fault| fault.starts_with(kind))
            .count()
    };
    assert_eq!(
        each("panicked: the faulty pack panics on cue"),
        1,
        "{faults:?}"
    );
    assert_eq!(
        each("went over its memory limit: memory allocation of"),
        1,
        "{faults:?}"
    );
    assert_eq!(each("made a system call the jail forbids"), 1, "{faults:?}");
    assert_eq!(
        each("did not return within its time limit of 1500 ms"),
        1,
        "{faults:?}"
    );
    let quarantined = store
        .quarantined("projection:pack:faulty/tripwire")
        .await
        .expect("reading the quarantine");
    assert_eq!(quarantined.len(), 4);

    // Another pack's projection over the same log, jailed, ends as it does in process on a
    // store that never ran the faulty pack's code.
    let mut board =
        ProjectionRunner::start(store.clone(), projection("incidents", "incident_board"))
            .await
            .expect("the board starts");
    board.catch_up().await.expect("the board catches up");
    let plain = backend.store("jail_each_fault_plain").await;
    opened(&plain, &TITLES).await;
    let mut plain_board = ProjectionRunner::start(plain, projection("incidents", "incident_board"))
        .await
        .expect("the board starts");
    plain_board.catch_up().await.expect("the board catches up");
    assert!(!rows(&board).is_empty());
    assert_eq!(rows(&board), rows(&plain_board));
}

async fn faults_in_a_row_pause_the_piece_until_a_rebuild(backend: Backend) {
    let titles = [
        "fold:panic",
        "fold:panic",
        "fold:panic",
        "fine",
        "fold:panic",
    ];
    let (store, mut tripwire) = tripwire_over(backend, "jail_pause", &titles).await;
    let report = tripwire
        .catch_up()
        .await
        .expect("the catch-up ends normally");
    let paused = report.paused.expect("three faults in a row pause it");
    assert_eq!(report.faulted, 3, "{report:?}");
    // What came after the pause was set aside, not given to the piece.
    assert_eq!(report.quarantined, 5, "{report:?}");
    let receipts = receipts(&store).await;
    assert_eq!(receipts.iter().filter(|r| r.paused).count(), 1);
    // Paused, it is given nothing, and a new runner of it knows.
    let again = ProjectionRunner::start(store.clone(), projection("faulty", "tripwire"))
        .await
        .expect("the projection starts")
        .catch_up()
        .await
        .expect("the catch-up ends");
    assert_eq!((again.paused, again.faulted), (Some(paused), 0));
    assert_eq!(
        ops_core_runtime::faults::paused(&store)
            .await
            .unwrap()
            .len(),
        1
    );
    // A rebuild resumes it and gives it every event again; the code was not fixed, so it
    // faults three times in a row again and is paused by a new receipt.
    tripwire.rebuild().await.expect("the rebuild runs");
    let resumed = store
        .read_by_type(ops_core::fault::PackPieceResumed::TYPE)
        .await
        .expect("reading the log");
    assert_eq!(resumed.len(), 1);
    let after = self::receipts(&store).await;
    assert_eq!(after.len(), 6);
    assert_eq!(after.iter().filter(|r| r.paused).count(), 2);
    let paused_again = ops_core_runtime::faults::paused(&store).await.unwrap();
    assert_ne!(
        paused_again.values().next().map(|(_, receipt)| *receipt),
        Some(paused)
    );
}

/// Also: a command whose decoding panics (its type's `Deserialize` is its pack's code) is
/// decoded in the pack's runner, never in the host, and its event set aside.
async fn a_looping_reaction_and_a_panicking_handler_end_one_call_each(backend: Backend) {
    let store = backend
        .store("jail_reaction")
        .await
        .with_pack_code(PackCode::Jailed(jail()));
    opened(
        &store,
        &[
            "fine",
            "react:loop",
            "decide:panic",
            "decode:panic",
            "fine again",
        ],
    )
    .await;
    let bus = bus(&store);
    let reaction = ops_core::reaction::installed(ops_core_runtime::CORE)
        .into_iter()
        .find(|r| r.pack_id() == "faulty")
        .expect("the faulty reaction is installed");
    let capability = ops_core::id::CapabilityId::of(&("reactions", "faulty")).expect("canonical");
    let started = std::time::Instant::now();
    let report = ReactionRunner::new(store.clone(), reaction, capability)
        .catch_up(&bus)
        .await
        .expect("the reaction's run ends normally");
    assert!(
        started.elapsed() < Duration::from_secs(60),
        "the loop was ended"
    );
    assert_eq!(report.faulted, 1, "{report:?}");
    assert_eq!(report.quarantined, 2, "{report:?}");
    let set_aside = store
        .quarantined(
            "reaction:faulty/pack.incidents.incident.IncidentOpened->pack.faulty.trip.Trip",
        )
        .await
        .expect("reading the quarantine");
    assert!(
        set_aside
            .iter()
            .any(|entry| format!("{entry:?}").contains("decoding it faulted: panicked")),
        "{set_aside:?}"
    );
    // Three commands: two accepted, and the one whose handler panicked refused.
    assert_eq!((report.accepted, report.rejected), (2, 1), "{report:?}");
    let receipts = receipts(&store).await;
    let pieces: Vec<&str> = receipts.iter().map(|r| r.piece.as_str()).collect();
    assert_eq!(receipts.len(), 2, "{pieces:?}");
    assert!(
        receipts
            .iter()
            .any(|r| r.piece.starts_with("reaction ") && r.fault.contains("time limit"))
    );
    assert!(
        receipts
            .iter()
            .any(|r| r.piece == "handler pack.faulty.trip.Trip" && r.fault.starts_with("panicked"))
    );
}

/// Two projection runners sharing one jail (one runner process per pack) over two stores
/// keep their rows apart: each folds into its own copy in the runner, and ends as the same
/// projection in process over its store.
async fn runners_of_one_projection_keep_their_own_copies(backend: Backend) {
    let jail = jail();
    let board = projection("incidents", "incident_board");
    let mut stores = Vec::new();
    // Different counts of open incidents per service, so a fold into the wrong copy shows.
    let logs: [(&str, &[&str]); 2] = [
        ("jail_copies_a", &["a one", "a two"]),
        ("jail_copies_b", &["b one"]),
    ];
    for (test, titles) in logs {
        let store = backend
            .store(test)
            .await
            .with_pack_code(PackCode::Jailed(jail.clone()));
        opened(&store, titles).await;
        stores.push(store);
    }
    let mut runners = Vec::new();
    for store in &stores {
        let mut runner = ProjectionRunner::start(store.clone(), board)
            .await
            .expect("the board starts");
        runner.catch_up().await.expect("the board catches up");
        runners.push(runner);
    }
    // The first store moves on after the second's runner folded into the same runner
    // process: an incident opened a day later, so it is no late event (a rewind would send
    // the rows again anyway).
    let mut later = open_titled("INC-2", "a three", Severity::Sev2);
    later.requested_at = "2026-11-27T06:00:00Z".parse().expect("a time");
    bus(&stores[0])
        .submit(&later, capability(), None)
        .await
        .expect("opening an incident");
    runners[0].catch_up().await.expect("the board catches up");
    for (store, runner) in stores.iter().zip(&runners) {
        let mut in_process =
            ProjectionRunner::start(store.clone().with_pack_code(PackCode::InProcess), board)
                .await
                .expect("the board loads");
        in_process
            .rebuild()
            .await
            .expect("the board rebuilds in process");
        assert_eq!(rows(runner), rows(&in_process));
    }
}

on_both_backends!(
    runners_of_one_projection_keep_their_own_copies,
    each_fault_ends_one_call_with_a_receipt,
    faults_in_a_row_pause_the_piece_until_a_rebuild,
    a_looping_reaction_and_a_panicking_handler_end_one_call_each,
    a_reconciler_runs_in_the_contracts_runner,
);

/// Limits changed while runners run (a reloaded `ops.toml`) apply from the next call: the
/// pack whose limits changed gets a new runner under them, and keeps its projection's
/// rows; a pack whose limits did not change keeps its runner.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn limits_changed_while_runners_run_apply_from_the_next_call() {
    let jail = jail();
    let store = Backend::Sqlite
        .store("jail_limits_changed")
        .await
        .with_pack_code(PackCode::Jailed(jail.clone()));
    let mut tripwire = ProjectionRunner::start(store.clone(), projection("faulty", "tripwire"))
        .await
        .expect("the projection starts");
    opened(&store, &["fine one", "fine two"]).await;
    tripwire.catch_up().await.expect("it catches up");
    let pid_of = |pack: &str| {
        jail.runner_pids()
            .into_iter()
            .find(|(running, _)| running == pack)
            .map(|(_, pid)| pid)
    };
    let (faulty, incidents) = (pid_of("faulty"), pid_of("incidents"));
    assert!(faulty.is_some() && incidents.is_some());

    let tighter = Limits {
        call_time: Duration::from_millis(300),
        memory_bytes: 512 << 20,
    };
    jail.set_limits(vec![("faulty".to_owned(), tighter)]);
    assert_eq!(jail.limits_of("faulty"), tighter);
    assert_eq!(pid_of("faulty"), None, "its runner was stopped");
    assert_eq!(pid_of("incidents"), incidents, "the other keeps its runner");

    open_one(&store, "INC-9", "fold:loop").await;
    let report = tripwire.catch_up().await.expect("it catches up");
    assert_eq!((report.quarantined, report.faulted), (1, 1), "{report:?}");
    let faults: Vec<String> = receipts(&store)
        .await
        .into_iter()
        .map(|r| r.fault)
        .collect();
    assert!(
        faults[0].starts_with("did not return within its time limit of 300 ms"),
        "{faults:?}"
    );
    assert_ne!(
        pid_of("faulty"),
        faulty,
        "a new runner, under the new limits"
    );
    let seen: Vec<String> = rows(&tripwire)
        .into_iter()
        .map(|((_, key), _)| key)
        .collect();
    assert_eq!(
        seen,
        ["INC-0", "INC-1"],
        "the new runner was given the rows"
    );
}

/// The runner is confined while it works: seccomp in filter mode, no new privileges.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_runner_is_confined_by_the_kernel() {
    let jail = jail();
    let store = Backend::Sqlite
        .store("jail_confined")
        .await
        .with_pack_code(PackCode::Jailed(jail.clone()));
    opened(&store, &["fine"]).await;
    let pids = jail.runner_pids();
    let (pack, pid) = pids
        .first()
        .expect("the incidents pack's runner decided the command");
    assert_eq!(pack, "incidents");
    let status =
        std::fs::read_to_string(format!("/proc/{pid}/status")).expect("the runner is alive");
    let field = |name: &str| {
        status
            .lines()
            .find_map(|line| line.strip_prefix(name))
            .map(str::trim)
            .unwrap_or_default()
            .to_owned()
    };
    assert_eq!(field("Seccomp:"), "2", "{status}");
    assert_eq!(field("NoNewPrivs:"), "1", "{status}");
}

/// The ticket export the filesync connector reads, one opened ticket per title.
fn tickets(dir: &std::path::Path, titles: &[&str]) {
    let _ = std::fs::remove_dir_all(dir);
    std::fs::create_dir_all(dir.join("tickets")).expect("creating the export");
    let lines: Vec<String> = titles
        .iter()
        .enumerate()
        .map(|(n, title)| {
            format!(
                r#"{{"seq": {}, "op": "create", "id": "T-{n}", "at": "2026-11-20T09:{:02}:00Z", "service": "payments", "title": "{title}", "severity": "sev2"}}"#,
                n + 1,
                n % 60
            )
        })
        .collect();
    std::fs::write(dir.join("tickets/0001.jsonl"), lines.join("\n") + "\n")
        .expect("writing the export");
}

/// `status` of the faulty host on `data`: its exit code and what it printed.
fn status_of(data: &std::path::Path) -> (Option<i32>, String) {
    let status = std::process::Command::new(env!("CARGO_BIN_EXE_faulty_host"))
        .args(["status", "--data"])
        .arg(data)
        .output()
        .expect("status runs");
    (
        status.status.code(),
        String::from_utf8_lossy(&status.stdout).into_owned(),
    )
}

/// The runners a host process started: its children started as pack runners.
fn runners_of(host: u32) -> Vec<u32> {
    std::fs::read_dir("/proc")
        .expect("reading /proc")
        .filter_map(|entry| entry.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| {
            let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
            let parent = status
                .lines()
                .find_map(|l| l.strip_prefix("PPid:"))
                .map(str::trim);
            let command = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
            parent == Some(&host.to_string())
                && String::from_utf8_lossy(&command).contains("__pack-runner")
        })
        .collect()
}

/// `ops-host run` with a pack that panics, allocates without bound, opens a socket and
/// loops: the host ends its ticks normally, its runners are confined while it runs, the
/// other packs' projections are complete (the incident board's stored rows are the ones an
/// in-process rebuild gives), and `status` names the faults and exits 1.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_host_running_a_faulty_pack_keeps_the_others_working_and_reports_it() {
    let root = std::env::temp_dir().join(format!("ops-jail-run-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&root);
    let source = root.join("source");
    let titles = [
        "fine",
        "fold:panic",
        "fine too",
        "fold:alloc",
        "fold:socket",
        "fine again",
        "fold:loop",
        "last",
    ];
    tickets(&source, &titles);
    let data = root.join("data");
    std::fs::create_dir_all(&data).expect("creating the data directory");
    let config = root.join("ops.toml");
    std::fs::write(
        &config,
        "[packs.faulty]\ncall_ms = 1000\nmemory_mib = 512\n",
    )
    .expect("writing ops.toml");
    let host = env!("CARGO_BIN_EXE_faulty_host");
    let run = std::process::Command::new(host)
        .args(["run", "--data"])
        .arg(&data)
        .arg("--config")
        .arg(&config)
        .args(["--source", &format!("tickets={}", source.display())])
        .args(["--interval-ms", "20", "--releases", "warn"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("starting the host");
    // Its runners, while it works, are confined.
    let started = std::time::Instant::now();
    let mut confined = Vec::new();
    while confined.len() < 2 && started.elapsed() < Duration::from_secs(60) {
        for pid in runners_of(run.id()) {
            let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
            if status.lines().any(|l| l == "Seccomp:\t2")
                && status.lines().any(|l| l == "NoNewPrivs:\t1")
                && !confined.contains(&pid)
            {
                confined.push(pid);
            }
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(confined.len() >= 2, "confined runners seen: {confined:?}");
    // Let it go through every fault (the loop takes its second), then stop it as Ctrl-C does.
    let quiet = || {
        status_of(&data)
            .1
            .contains("FAULTED projection pack:faulty/tripwire: 4 time(s)")
    };
    while !quiet() && started.elapsed() < Duration::from_secs(90) {
        std::thread::sleep(Duration::from_millis(200));
    }
    let killed = std::process::Command::new("kill")
        .args(["-INT", &run.id().to_string()])
        .status()
        .expect("signalling the host");
    assert!(killed.success());
    let ended = run.wait_with_output().expect("the host ends");
    let said = String::from_utf8_lossy(&ended.stdout).into_owned()
        + &String::from_utf8_lossy(&ended.stderr);
    assert!(
        ended.status.success(),
        "the host ends its ticks normally: {said}"
    );

    let (code, report) = status_of(&data);
    assert_eq!(code, Some(1), "{report}");
    assert!(
        report.contains("pack code: runs in runners the kernel confines"),
        "{report}"
    );
    assert!(
        report.contains("FAULTED projection pack:faulty/tripwire: 4 time(s)"),
        "{report}"
    );

    // The board the jailed worker stored is the one an in-process rebuild of the log gives.
    let db = ops_core_runtime::db::Db::open_sqlite(&data.join("ops.db"))
        .await
        .expect("opening the log");
    let registry =
        ops_core::registry::registry(ops_core_runtime::CORE).expect("a consistent registry");
    let store = EventStore::open_existing(db, registry)
        .await
        .expect("the store");
    let mut board = ProjectionRunner::start(store, projection("incidents", "incident_board"))
        .await
        .expect("the board loads");
    let stored = rows(&board);
    assert_eq!(
        stored
            .iter()
            .filter(|((table, _), _)| table == "incidents")
            .count(),
        titles.len(),
        "every ticket is on the board: {stored:?}"
    );
    board
        .rebuild()
        .await
        .expect("the board rebuilds in process");
    assert_eq!(rows(&board), stored);
    let _ = std::fs::remove_dir_all(&root);
}

/// `--unjailed`: runners without the kernel's filter, which the log records and `status`
/// and every fault receipt say; a fault still ends one call.
#[test]
fn a_host_told_unjailed_says_so_in_status_and_receipts() {
    let root = std::env::temp_dir().join(format!("ops-jail-unjailed-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&root);
    let source = root.join("source");
    tickets(&source, &["fine", "fold:panic", "fine too"]);
    let data = root.join("data");
    let host = env!("CARGO_BIN_EXE_faulty_host");
    let run = std::process::Command::new(host)
        .args(["--unjailed", "run", "--data"])
        .arg(&data)
        .args(["--source", &format!("tickets={}", source.display())])
        .args(["--ticks", "3", "--interval-ms", "10", "--releases", "warn"])
        .output()
        .expect("the host runs");
    let said = String::from_utf8_lossy(&run.stdout).into_owned();
    assert!(
        run.status.success(),
        "{said}{}",
        String::from_utf8_lossy(&run.stderr)
    );
    assert!(said.contains("pack code runs UNCONFINED"), "{said}");
    let (_, report) = status_of(&data);
    assert!(
        report.contains("ran UNCONFINED (`--unjailed`) in 1 host start(s)"),
        "{report}"
    );
    assert!(
        report.contains("FAULTED projection pack:faulty/tripwire: 1 time(s)"),
        "{report}"
    );
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let receipts = runtime.block_on(async {
        let db = ops_core_runtime::db::Db::open_sqlite(&data.join("ops.db"))
            .await
            .unwrap();
        let registry = ops_core::registry::registry(ops_core_runtime::CORE).unwrap();
        receipts(&EventStore::open_existing(db, registry).await.unwrap()).await
    });
    assert_eq!(receipts.len(), 1);
    assert!(!receipts[0].confined, "{receipts:?}");
    let _ = std::fs::remove_dir_all(&root);
}

/// A contract's reconciler runs in the contracts' runner; what it finds is what it finds in
/// process (the same conflict event, so the in-process run stores nothing new).
async fn a_reconciler_runs_in_the_contracts_runner(backend: Backend) {
    use ops_contract_incidents::{IncidentOpened, IncidentOpenings};
    let jail = jail();
    let store = backend
        .store("jail_reconciler")
        .await
        .with_pack_code(PackCode::Jailed(jail.clone()));
    let opened = |source: &str, severity| {
        let event = IncidentOpened {
            incident_id: "T-100".to_owned(),
            service: ops_shared_people::ServiceRef {
                system: "catalogue".to_owned(),
                id: "payments".to_owned(),
            },
            title: "Card authorisations time out".to_owned(),
            severity,
        };
        let origin = ops_tests::origin_at(
            &format!("{source}-T-100"),
            1_795_165_300_000_000,
            source,
            None,
        );
        ops_core::envelope::EventEnvelope::new(&event, origin).expect("an envelope")
    };
    store
        .append(
            "sources",
            ops_core_runtime::store::ExpectedVersion::Any,
            &[
                opened("tickets", Severity::Sev1),
                opened("pager", Severity::Sev2),
            ],
        )
        .await
        .expect("appending both sources' facts");
    let jailed = ops_core_runtime::reconcile::reconcile(&store, &IncidentOpenings)
        .await
        .expect("the reconciler runs");
    assert_eq!(jailed.appended.len(), 1);
    assert!(
        jail.runner_pids()
            .iter()
            .any(|(runner, _)| runner == "-contracts")
    );
    let in_process = ops_core_runtime::reconcile::reconcile(
        &store.clone().with_pack_code(PackCode::InProcess),
        &IncidentOpenings,
    )
    .await
    .expect("the reconciler runs");
    assert_eq!(
        (in_process.appended.len(), in_process.duplicates),
        (0, jailed.appended)
    );
}
