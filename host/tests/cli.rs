//! The host binary as a user runs it.

use std::path::{Path, PathBuf};
use std::process::Command;

#[path = "support/postgres.rs"]
mod postgres;
#[path = "support/running.rs"]
mod running;

fn host(args: &[&str]) -> (bool, String) {
    let (code, text) = host_exit(args);
    (code == 0, text)
}

#[test]
fn registry_export_writes_the_document_and_one_schema_per_type_version() {
    let out = fresh_dir("export");
    let (ok, text) = host(&["registry", "export", "--out", out.to_str().unwrap()]);
    assert!(ok, "{text}");
    let document: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("registry.json")).unwrap()).unwrap();
    let types = document["types"].as_array().unwrap();
    assert!(!types.is_empty());
    for entry in types {
        let file = entry["schema_file"].as_str().unwrap();
        let schema: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(out.join(file)).unwrap()).unwrap();
        assert_eq!(
            schema["$schema"], "https://json-schema.org/draft/2020-12/schema",
            "{file}"
        );
    }
    let schema_files = std::fs::read_dir(out.join("schemas")).unwrap().count();
    assert_eq!(schema_files, types.len());
    assert!(
        Path::new(&out.join("schemas/pack.incidents.incident.IncidentOpened@v2.json")).exists()
    );

    // A second export into the same place gives the same bytes.
    let first = std::fs::read(out.join("registry.json")).unwrap();
    let (ok, text) = host(&["registry", "export", "--out", out.to_str().unwrap()]);
    assert!(ok, "{text}");
    assert_eq!(std::fs::read(out.join("registry.json")).unwrap(), first);
    std::fs::remove_dir_all(&out).unwrap();
}

#[test]
fn demo_runs_the_packs_end_to_end_and_a_second_run_resumes_from_the_cursor() {
    let (data, text) = demo_said("demo");
    let data_arg = data.to_str().unwrap();
    assert!(text.contains("pack incidents 0.1.1  cid_"), "{text}");
    assert!(
        text.contains("pack.incidents.incident.IncidentOpened v1"),
        "{text}"
    );
    assert!(text.contains("-> v2 {"), "{text}");
    assert!(
        text.contains("connector tickets/tickets: 10 records, 10 new events, 0 already stored, 1 tombstones, 1 quarantined"),
        "{text}"
    );
    assert!(
        text.contains("quarantined tickets/0002.jsonl:2: at `/severity`"),
        "{text}"
    );
    assert!(
        text.contains("open/[\"catalogue/payments\",\"T-100\"] {")
            && text.contains("open/[\"catalogue/payments\",\"T-102\"] {")
            && text.matches("open/[").count() == 2,
        "{text}"
    );
    // The SEV1 incident T-100 reaches the on-call once, through the gateway, with a receipt.
    assert!(
        text.contains("-> pack.notify.oncall.NotifyOnCall: 4 events, 1 commands accepted, 0 rejected, 0 denied"),
        "{text}"
    );
    assert!(text.contains("dispatched: 1 executed, 0 refused"), "{text}");
    assert!(text.contains(r#"{"incident_id":"T-100""#), "{text}");
    assert!(
        text.contains(
            r#"approved by Policy { policy_id: "notify.oncall-sev1", policy_version: "1.0.0" }"#
        ),
        "the policy promoted through its gates approved it: {text}"
    );
    assert!(text.contains("activated on eval cid_"), "{text}");
    assert!(
        text.contains("after the lead's capability was revoked: allowed = false"),
        "{text}"
    );
    assert!(
        text.contains(r#"read through the store now: "[shredded]""#),
        "{text}"
    );
    assert!(text.contains("feedback [Accepted]"), "{text}");
    assert!(
        text.contains("pack `incidents` 0.1.1 cid_")
            && text.contains(": signed, verified, pinned to ops-core "),
        "{text}"
    );
    assert!(
        text.contains("a changed copy refused: pack `filesync` 0.1.0: it no longer hashes to cid_"),
        "{text}"
    );
    let (ok, again) = host(&["demo", "--data", data_arg]);
    assert!(ok, "{again}");
    assert!(
        again.contains("connector tickets/tickets: 0 records, 0 new events, 0 already stored, 0 tombstones, 0 quarantined; cursor 0002.jsonl:5"),
        "{again}"
    );
    // The second run answers nothing twice and sends nothing twice.
    assert!(
        again.contains("-> pack.notify.oncall.NotifyOnCall: 0 events, 0 commands accepted"),
        "{again}"
    );
    assert!(again.contains("dispatched: 0 executed"), "{again}");
    // The board holds names sealed: the first run shows Ada's opened, the second (after
    // the first erased her) shows it shredded, without rebuilding anything.
    assert!(
        text.contains(r#""acknowledged_by_name":"Ada Responder""#),
        "{text}"
    );
    assert!(
        again.contains(r#""acknowledged_by_name":"[shredded]""#),
        "{again}"
    );
    assert!(again.contains("granted before"), "{again}");
    let (ok, status) = host(&["projections", "status", "--data", data_arg]);
    assert!(ok, "{status}");
    assert!(
        status.contains("pack:incidents/incident_board v3: lag ")
            && status.contains("ms of 5000 ms allowed (fresh)"),
        "{status}"
    );
    // The sample export's malformed record is in the quarantine: status names it and
    // exits 1; the board, caught up on the events it folds, is fresh although the demo
    // wrote other events after it.
    let (ok, status) = host(&["status", "--data", data_arg]);
    assert!(!ok, "{status}");
    assert!(
        status.contains("projections: 3 within their freshness objective, 0 over it")
            && status.contains("quarantine: 1 records set aside")
            && status.contains("QUARANTINED 1 from connector:tickets/tickets")
            && status.contains("effects: 0 pending, 1 executed, 0 refused, 0 cancelled, 0 failed"),
        "{status}"
    );
    assert!(
        status.contains("sagas: 0 running, 1 completed, 0 failed"),
        "{status}"
    );
    let backup = data.join("backup.db");
    let backup_arg = backup.to_str().unwrap();
    let (ok, backed_up) = host(&["backup", "--out", backup_arg, "--data", data_arg]);
    assert!(ok && backup.exists(), "{backed_up}");
    let (ok, again) = host(&["backup", "--out", backup_arg, "--data", data_arg]);
    assert!(!ok && again.contains("the file exists"), "{again}");
    let (ok, capabilities) = host(&["capabilities", "list", "--data", data_arg]);
    assert!(ok, "{capabilities}");
    assert!(
        capabilities.contains("active: held by service `pack.notify`"),
        "{capabilities}"
    );
    let notify_capability = capabilities
        .lines()
        .find(|line| line.contains("held by service `pack.notify`"))
        .and_then(|line| line.split(' ').next())
        .unwrap_or_default();
    let check = |type_name: &str| {
        host(&[
            "capabilities",
            "check",
            "--data",
            data_arg,
            "--capability",
            notify_capability,
            "--actor",
            "service:pack.notify",
            "--type",
            type_name,
            "--safety",
            "write_external",
            "--destination",
            "webhook.oncall",
        ])
    };
    let (ok, allowed) = check("pack.notify.oncall.NotifyOnCall");
    assert!(ok && allowed.starts_with("allowed"), "{allowed}");
    let (ok, denied) = check("pack.incidents.incident.OpenIncident");
    assert!(
        !ok && denied.contains("does not cover `pack.incidents.incident.OpenIncident`"),
        "{denied}"
    );
    let (ok, types) = host(&["log", "types", "--data", data_arg]);
    assert!(ok, "{types}");
    assert!(
        types.contains("pack.incidents.incident.IncidentOpened 4 typed"),
        "{types}"
    );

    // The host runs the reconcilers its contract modules install.
    let operations = operator_capability(
        &data,
        "operations",
        "core.reconcile.Run,core.projections.Rebuild,core.quarantine.Retry,core.connectors.Sync",
    );
    let (code, denied) = host_exit(&[
        "reconcile",
        "--by",
        "human:ada@example.com",
        "--capability",
        &operations,
        "--data",
        data_arg,
    ]);
    assert!(code == 1 && denied.contains("(receipted)"), "{denied}");
    let (ok, reconciled) = host(&[
        "reconcile",
        "--by",
        OPERATOR,
        "--capability",
        &operations,
        "--data",
        data_arg,
    ]);
    assert!(
        ok && reconciled.contains("incident-openings: 0 new conflicts"),
        "{reconciled}"
    );

    let (ok, releases) = host(&["releases", "list", "--data", data_arg]);
    assert!(ok, "{releases}");
    assert!(
        releases.contains("tool manifest `ops-host.webhook` 0.1.0 cid_")
            && !releases.contains("NOT ACTIVE"),
        "{releases}"
    );
    // A database where nothing was released: every installed artifact is named, exit 1.
    // (Set up by one tick of a worker, which in enforce mode refuses to run on it, and
    // warns and runs with `--releases warn`: `releases` only reads, and creates no store.)
    let empty = format!("sqlite://{}", data.join("empty.db").display());
    let (code, refused) = host_exit(&["run", "--ticks", "1", "--database", &empty]);
    assert!(
        code == 1 && refused.contains("refused to run") && refused.contains("never recorded"),
        "{refused}"
    );
    let (ok, ran) = host(&[
        "run",
        "--ticks",
        "1",
        "--releases",
        "warn",
        "--database",
        &empty,
    ]);
    assert!(ok && ran.contains("stopped after 1 ticks"), "{ran}");
    let (ok, unreleased) = host(&["releases", "list", "--database", &empty]);
    assert!(
        !ok && unreleased.contains("pack `incidents` 0.1.1 cid_")
            && unreleased.contains("NOT ACTIVE: never recorded"),
        "{unreleased}"
    );

    // Retention is applied on a capability: on one that does not allow it, it is denied
    // with a receipt and removes nothing (exit 1).
    let operator = OPERATOR;
    let (_, types) = host(&["log", "types", "--data", data_arg]);
    let denials_before = events_of(&types, "core.CapabilityDenied");
    let (code, denied) = host_exit(&[
        "retention",
        "--by",
        operator,
        "--capability",
        "cap_0000000000000000000000000000000000000000000000000000000000000000",
        "--data",
        data_arg,
    ]);
    assert!(
        code == 1
            && denied.contains("does not allow applying retention")
            && denied.contains("(receipted)"),
        "{code}: {denied}"
    );
    let (_, types) = host(&["log", "types", "--data", data_arg]);
    assert!(
        events_of(&types, "core.CapabilityDenied") == denials_before + 1
            && !types.contains("RetentionApplied"),
        "{types}"
    );
    let capability = operator_capability(&data, "retention", "core.RetentionApplied");
    let on_capability = ["--by", operator, "--capability", &capability];
    // Retention: one receipt per class; nothing from this run is old enough to go.
    let (ok, retention) = host(&[&["retention", "--data", data_arg][..], &on_capability].concat());
    assert!(ok, "{retention}");
    for class in [
        "artifacts: kept 365 days, removed 0",
        "projections: kept 30 days, removed 0",
        "receipts: kept 90 days, removed 0",
        // its progress, as a log line (not a terminal)
        "retention: 3/3 classes",
    ] {
        assert!(retention.contains(class), "{retention}");
    }
    let (ok, refused) = host(
        &[
            &["retention", "--receipts-days", "0", "--data", data_arg][..],
            &on_capability,
        ]
        .concat(),
    );
    assert!(
        !ok && refused.contains("receipts are kept at least one day"),
        "{refused}"
    );

    // A projection that fell behind its objective: status names it and exits 1.
    fall_behind(&data.join("ops.db"));
    let (ok, status) = host(&["status", "--data", data_arg]);
    assert!(
        !ok,
        "status exits 1 when an objective is violated: {status}"
    );
    assert!(
        status.contains("projections: 1 within their freshness objective, 2 over it")
            && status.contains("SLO VIOLATED pack:incidents/incident_board v3: lag "),
        "{status}"
    );
    // `projections status` prints it STALE, and says so by its exit code too.
    let (code, board) = host_exit(&["projections", "status", "--data", data_arg]);
    assert!(code == 1 && board.contains("(STALE)"), "{code}: {board}");
    std::fs::remove_dir_all(&data).unwrap();
}

/// Rewinds every projection to the start of the log and gives it no lag allowance, as a
/// projection whose runner stopped long ago.
/// How many live leases `holder` holds in the SQLite store at `database` (none before the
/// store has its lease table).
fn leases_held_by(database: &Path, holder: &str) -> i64 {
    tokio::runtime::Runtime::new().unwrap().block_on(async {
        let db = ops_core_runtime::db::Db::open_sqlite(database)
            .await
            .unwrap();
        let held = ops_core_runtime::db::on_db!(&db, pool => {
            sqlx::query_scalar::<_, i64>(
                "SELECT count(*) FROM core_leases WHERE holder = $1 AND expires_at_us > 0",
            )
            .bind(holder)
            .fetch_one(pool)
            .await
            .unwrap_or(0)
        });
        db.close().await;
        held
    })
}

fn fall_behind(database: &Path) {
    tokio::runtime::Runtime::new().unwrap().block_on(async {
        let db = ops_core_runtime::db::Db::open_sqlite(database).await.unwrap();
        ops_core_runtime::db::on_db!(&db, pool => {
            sqlx::query("UPDATE core_projections SET follow_tx_order = 0, follow_seq = 0, max_lag_ms = 0")
                .execute(pool)
                .await
                .unwrap();
        });
        db.close().await;
    });
}

/// `ops-host-<name>-<pid>` in the temporary directory, emptied: this test run's own.
fn fresh_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("ops-host-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    dir
}

/// A new data directory of this test run's (`ops-host-<name>-<pid>`) where the demo ran.
fn fresh_demo(name: &str) -> PathBuf {
    demo_said(name).0
}

/// As [`fresh_demo`], with what the demo printed.
fn demo_said(name: &str) -> (PathBuf, String) {
    let data = fresh_dir(name);
    let (ok, text) = host(&["demo", "--data", data.to_str().unwrap()]);
    assert!(ok, "{text}");
    (data, text)
}

/// A data directory where the demo ran, and a copy of the demo's ticket source in
/// `DIR/source` with `tickets` added as a new file.
fn demo_with_new_tickets(name: &str, tickets: &[String]) -> PathBuf {
    let data = fresh_demo(name);
    let copy = data.join("source/tickets");
    std::fs::create_dir_all(&copy).unwrap();
    let sample = Path::new(env!("CARGO_MANIFEST_DIR")).join("../packs/filesync/sample/tickets");
    for file in ["0001.jsonl", "0002.jsonl"] {
        std::fs::copy(sample.join(file), copy.join(file)).unwrap();
    }
    std::fs::write(copy.join("0003.jsonl"), tickets.join("\n") + "\n").unwrap();
    data
}

/// A new SEV1 ticket, `T-<n>`, opened `n` minutes after 13:00.
fn sev1_ticket(n: u32) -> String {
    format!(
        r#"{{"seq": {}, "op": "create", "id": "T-{n}", "at": "2026-11-20T13:{:02}:00Z", "service": "payments", "title": "Payouts stall", "severity": "sev1"}}"#,
        n + 11,
        n % 60
    )
}

/// A worker on `data` sending to `sink` for 30 ticks (then `extra`): long enough to do
/// all that is due. Its output; it must end with exit 0.
fn run_to_the_end(data: &Path, sink: &ops_host::webhook::WebhookSink, extra: &[&str]) -> String {
    let ticks = [
        "--ticks",
        "30",
        "--interval-ms",
        "20",
        "--jobs-per-tick",
        "8",
    ];
    let args = worker_args(data, &sink.url(), 1000, &[&ticks[..], extra].concat());
    let (ok, finished) = host(&args.iter().map(String::as_str).collect::<Vec<_>>());
    assert!(ok, "{finished}");
    finished
}

/// The incidents `sink` was posted notifications of, one per post.
fn notified(sink: &ops_host::webhook::WebhookSink) -> Vec<String> {
    sink.deliveries()
        .values()
        .filter_map(|delivery| delivery.request.as_ref())
        .map(|request| {
            request["incident_id"]
                .as_str()
                .unwrap_or_default()
                .to_owned()
        })
        .collect()
}

/// A local endpoint that records what it is posted, and the runtime that serves it.
fn sink() -> (tokio::runtime::Runtime, ops_host::webhook::WebhookSink) {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let sink = runtime
        .block_on(ops_host::webhook::WebhookSink::start())
        .unwrap();
    (runtime, sink)
}

/// `ops-host run` arguments for `data`, its source and an `ops.toml` that sends the
/// on-call's effects to `webhook`, at most `quota` a day, then `extra`.
fn worker_args(data: &Path, webhook: &str, quota: u32, extra: &[&str]) -> Vec<String> {
    let config = data.join("ops.toml");
    std::fs::write(
        &config,
        format!(
            "[gateway]\nattempts = 5\n\n[destinations.\"webhook.oncall\"]\nurl = \"{webhook}\"\nquota = {{ effects = {quota}, per_seconds = 86400 }}\n"
        ),
    )
    .unwrap();
    let mut args: Vec<String> = [
        "run",
        "--data",
        data.to_str().unwrap(),
        "--source",
        &format!("tickets={}", data.join("source").display()),
        "--config",
        config.to_str().unwrap(),
    ]
    .iter()
    .map(|arg| (*arg).to_owned())
    .collect();
    args.extend(extra.iter().map(|arg| (*arg).to_owned()));
    args
}

/// What a worker run with `args` printed; it must end with exit 0.
fn worker_said(args: &[String]) -> String {
    let (ok, worked) = host(&args.iter().map(String::as_str).collect::<Vec<_>>());
    assert!(ok, "{worked}");
    worked
}

/// The index of the first of `lines` that contains `needle`; it must be there.
fn line_with(lines: &[&str], needle: &str) -> usize {
    lines
        .iter()
        .position(|line| line.contains(needle))
        .unwrap_or_else(|| panic!("no `{needle}` in:\n{}", lines.join("\n")))
}

/// The worker on the demo's data: a new SEV1 ticket arrives in the source; the worker
/// ingests it (background), the notify reaction asks for the on-call to be told
/// (background), the effect goes out to a live endpoint first thing the next tick
/// (interactive), and the batch work queued at the start runs once it has aged.
#[test]
fn the_worker_runs_due_work_in_lane_order_and_batch_work_still_runs() {
    let data = demo_with_new_tickets("worker", &[sev1_ticket(105)]);
    let (_runtime, sink) = sink();
    let args = worker_args(
        &data,
        &sink.url(),
        1000,
        &["--ticks", "4", "--interval-ms", "1", "--jobs-per-tick", "2"],
    );
    let worked = worker_said(&args);
    let lines: Vec<&str> = worked.lines().collect();
    let at = |needle: &str| line_with(&lines, needle);
    let ingested = at("tick 1 Background connector:tickets: 1 new events");
    let reacted = at(
        "Background reaction:notify/pack.incidents.incident.IncidentOpened->pack.notify.oncall.NotifyOnCall: 1 events, 1 accepted",
    );
    let dispatched = at("Interactive dispatch: 1 executed");
    assert!(ingested < reacted && reacted < dispatched, "{worked}");
    // The effect went out the tick after the reaction, before any background job of it.
    let tick_of = |line: usize| lines[line].split(' ').nth(1).unwrap().to_owned();
    assert_eq!(
        tick_of(dispatched).parse::<u32>().unwrap(),
        tick_of(reacted).parse::<u32>().unwrap() + 1,
        "{worked}"
    );
    assert!(lines[dispatched].ends_with("(waited 0 ticks)"), "{worked}");
    // Queued at tick 1 behind the background work, the batch jobs ran once they had aged.
    assert!(
        worked.contains("tick 4 Batch expire-capabilities: 0 expired (waited 3 ticks)"),
        "{worked}"
    );
    let deliveries = sink.deliveries();
    assert_eq!(deliveries.len(), 1, "{deliveries:?}");
    assert!(
        deliveries.values().all(|delivery| delivery
            .request
            .as_ref()
            .is_some_and(|request| request["incident_id"] == "T-105")),
        "{deliveries:?}"
    );
    std::fs::remove_dir_all(&data).unwrap();
}

/// S6 from the CLI: a long projection catch-up runs in slices, and interactive work that
/// arrives meanwhile (an effect the notify reaction asked for) runs between them; the
/// catch-up resumes after it, in its place, and ends where an uninterrupted one would.
#[test]
fn interactive_work_preempts_a_long_catch_up_between_its_slices() {
    // Two thousand SEV2 tickets (no one is paged) and one SEV1 (the on-call is); slices
    // of one batch (500 events).
    let mut tickets: Vec<String> = (0..2_000u32)
        .map(|n| {
            format!(
                r#"{{"seq": {}, "op": "create", "id": "B-{n}", "at": "2026-11-20T12:{:02}:{:02}Z", "service": "payments", "title": "Slow page", "severity": "sev2"}}"#,
                n + 1_000,
                (n / 60) % 60,
                n % 60
            )
        })
        .collect();
    tickets.push(sev1_ticket(105).replace("\"seq\": 116", "\"seq\": 99999"));
    let data = demo_with_new_tickets("preempt", &tickets);
    let (_runtime, sink) = sink();
    let args = worker_args(
        &data,
        &sink.url(),
        1000,
        &[
            "--ticks",
            "3",
            "--interval-ms",
            "1",
            "--jobs-per-tick",
            "5",
            "--slice-batches",
            "1",
        ],
    );
    let worked = worker_said(&args);
    let lines: Vec<&str> = worked.lines().collect();
    let at = |needle: &str| line_with(&lines, needle);
    let preempted = at("then preempted by interactive work; resumes in its place");
    let job = lines[preempted]
        .split(' ')
        .nth(3)
        .unwrap()
        .trim_end_matches(':');
    assert!(job.starts_with("projection:"), "{worked}");
    let dispatched = at("Interactive dispatch: 1 executed");
    let resumed = preempted
        + 1
        + lines[preempted + 1..]
            .iter()
            .position(|line| line.contains(&format!(" {job}: ")))
            .unwrap_or_else(|| panic!("`{job}` never resumed:\n{worked}"));
    assert!(preempted < dispatched && dispatched < resumed, "{worked}");
    assert_eq!(notified(&sink), ["T-105"]);
    // Every event folded once: the board holds each incident.
    let (_, board) = host_exit(&["projections", "status", "--data", data.to_str().unwrap()]);
    assert!(!board.contains("SLO VIOLATED"), "{board}");
    std::fs::remove_dir_all(&data).unwrap();
}

/// A worker process killed (SIGKILL) three times at different moments, then run to the
/// end: every new SEV1 ticket reaches the on-call once, with one receipt each. (Twelve:
/// with the demo's, within the on-call policy's twenty a day.)
#[test]
fn a_killed_worker_loses_nothing_and_does_nothing_twice() {
    let tickets: Vec<String> = (200..212).map(sev1_ticket).collect();
    let data = demo_with_new_tickets("worker-kill", &tickets);
    let (_runtime, sink) = sink();
    let lease = ["--lease-ms", "200"];
    // Each victim is killed mid-work: once it holds a lease (it is running a stream of
    // work then), and a little later each time.
    for (n, after_ms) in [0, 20, 80].into_iter().enumerate() {
        let victim = format!("victim-{n}");
        let args = worker_args(
            &data,
            &sink.url(),
            1000,
            &[
                &[
                    "--interval-ms",
                    "5",
                    "--jobs-per-tick",
                    "2",
                    "--worker-id",
                    &victim,
                ][..],
                &lease[..],
            ]
            .concat(),
        );
        let mut worker = Command::new(env!("CARGO_BIN_EXE_ops-host"))
            .args(&args)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        let started = std::time::Instant::now();
        while leases_held_by(&data.join("ops.db"), &victim) == 0 {
            assert!(
                started.elapsed() < std::time::Duration::from_secs(60),
                "{victim} never held a lease"
            );
            std::thread::sleep(std::time::Duration::from_millis(2));
        }
        std::thread::sleep(std::time::Duration::from_millis(after_ms));
        worker.kill().unwrap();
        let status = worker.wait().unwrap();
        assert!(!status.success(), "{victim} was killed, not finished");
    }
    // Long enough for any lease a killed worker held to end.
    let finished = run_to_the_end(&data, &sink, &lease);
    let notified: std::collections::BTreeSet<String> = notified(&sink).into_iter().collect();
    let expected: std::collections::BTreeSet<String> =
        (200..212).map(|n| format!("T-{n}")).collect();
    assert_eq!(notified, expected, "{finished}");
    assert_eq!(sink.deliveries().len(), 12, "one effect per notification");
    let (ok, types) = host(&["log", "types", "--data", data.to_str().unwrap()]);
    assert!(ok, "{types}");
    assert!(
        types.contains("core.EgressExecuted 13 typed") && !types.contains("EgressRefused"),
        "one receipt each, and the demo's: {types}"
    );
    std::fs::remove_dir_all(&data).unwrap();
}

#[test]
fn unknown_commands_are_usage_errors() {
    let (ok, text) = host(&["frobnicate"]);
    assert!(!ok);
    assert!(
        text.contains("unrecognized subcommand 'frobnicate'"),
        "{text}"
    );
}

/// The demo's operator.
const OPERATOR: &str = "human:operator@example.com";

/// A root capability `name` for the demo's operator over `types`, granted by that operator
/// (named in a configuration of its own, since a worker's may name none): its id.
fn operator_capability(data: &Path, name: &str, types: &str) -> String {
    let operators = data.join("operators.toml");
    std::fs::write(&operators, format!("operators = [\"{OPERATOR}\"]\n")).unwrap();
    let (ok, granted) = host(&[
        "capabilities",
        "grant",
        name,
        "--to",
        OPERATOR,
        "--by",
        OPERATOR,
        "--types",
        types,
        "--max-safety",
        "write_external",
        "--config",
        operators.to_str().unwrap(),
        "--data",
        data.to_str().unwrap(),
    ]);
    assert!(ok, "{granted}");
    granted.split_whitespace().nth(1).unwrap().to_owned()
}

/// The exit code and what was printed.
fn host_exit(args: &[&str]) -> (i32, String) {
    said(
        Command::new(env!("CARGO_BIN_EXE_ops-host"))
            .args(args)
            .output()
            .unwrap(),
    )
}

/// A finished process's exit code (-1 for a signal) and what it printed, out then err.
fn said(output: std::process::Output) -> (i32, String) {
    let text = String::from_utf8_lossy(&output.stdout).into_owned()
        + &String::from_utf8_lossy(&output.stderr);
    (output.status.code().unwrap_or(-1), text)
}

/// A `--data` that is a file and a `--database` naming a database the server does not
/// have are the operator's input: exit 2, and the message says each cause once.
#[test]
fn storage_flags_that_name_nothing_usable_are_exit_2_with_each_cause_once() {
    let dir = fresh_dir("bad-storage");
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("not-a-folder");
    std::fs::write(&file, "x").unwrap();
    let (code, said) = host_exit(&["run", "--ticks", "1", "--data", file.to_str().unwrap()]);
    assert_eq!(code, 2, "{said}");
    assert!(said.contains("is a file, not a folder"), "{said}");
    assert_eq!(
        std::fs::read_to_string(&file).unwrap(),
        "x",
        "the file is untouched"
    );
    let url = std::env::var("DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".to_owned());
    let (server, _) = url.rsplit_once('/').unwrap();
    let missing = format!("{server}/ops_no_such_database_{}", std::process::id());
    let (code, said) = host_exit(&["status", "--database", &missing]);
    assert_eq!(code, 2, "{said}");
    assert_eq!(said.matches("does not exist").count(), 1, "{said}");
    std::fs::remove_dir_all(&dir).unwrap();
}

/// Commands that only read refuse a store that is not there, for `--data` and `--database`
/// alike, and create nothing; that and other bad input is exit 2, one message, no backtrace.
#[test]
fn a_read_only_command_creates_no_store_and_bad_input_is_exit_2() {
    let dir = fresh_dir("no-store");
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("typo.db");
    let url = format!("sqlite://{}", file.display());
    let postgres = std::env::var("DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".to_owned());
    let schema = format!("t{}_0_no_such_store", std::process::id());
    let missing_data = dir.join("no-data");
    let cases: Vec<(Vec<&str>, &str)> = vec![
        (vec!["status", "--database", &url], "there is no store at"),
        (
            vec!["log", "types", "--database", &url],
            "there is no store at",
        ),
        (
            vec!["status", "--database", &postgres, "--schema", &schema],
            "there is no store at schema",
        ),
        (
            vec!["sagas", "list", "--data", missing_data.to_str().unwrap()],
            "there is no event log at",
        ),
        (
            vec!["status", "--database", &url, "--schema", "tenant_a"],
            "is for a PostgreSQL store",
        ),
        (vec!["status", "--database", "mysql://x"], "is neither"),
        (
            vec![
                "projections",
                "rebuild",
                "nobody/nothing",
                "--by",
                OPERATOR,
                "--capability",
                "cap_0000000000000000000000000000000000000000000000000000000000000000",
                "--database",
                &url,
            ],
            "no installed projection `nobody/nothing`",
        ),
        (
            vec![
                "run",
                "--ticks",
                "1",
                "--source",
                "tickets",
                "--database",
                &url,
            ],
            "--source `tickets`: expected KEY=VALUE",
        ),
    ];
    for (args, says) in cases {
        let (code, text) = host_exit(&args);
        assert_eq!(code, 2, "{args:?}: {text}");
        assert!(text.contains(says), "{args:?}: {text}");
        assert!(
            text.starts_with("error: ") && !text.contains("backtrace") && text.lines().count() == 1,
            "{args:?}: one message: {text}"
        );
    }
    assert!(
        !file.exists(),
        "a read-only command created {}",
        file.display()
    );
    assert!(!missing_data.exists());
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let created: Option<i32> = runtime.block_on(async {
        let pool = sqlx::PgPool::connect(&postgres).await.unwrap();
        sqlx::query_scalar("SELECT 1 FROM pg_namespace WHERE nspname = $1")
            .bind(&schema)
            .fetch_optional(&pool)
            .await
            .unwrap()
    });
    assert_eq!(created, None, "a read-only command created schema {schema}");
    std::fs::remove_dir_all(&dir).unwrap();
}

/// An operator's rebuild takes the projection's lease as a worker would: while a running
/// worker holds it the rebuild is refused (exit 1, naming the worker); once the worker
/// stops (Ctrl-C releases its leases) the rebuild runs.
#[test]
fn a_rebuild_waits_for_the_worker_that_runs_the_projection() {
    let data = demo_with_new_tickets("rebuild-lease", &[]);
    let data_arg = data.to_str().unwrap();
    let rebuilder = operator_capability(&data, "rebuilder", "core.projections.Rebuild");
    let rebuild = || {
        host_exit(&[
            "projections",
            "rebuild",
            "incidents/incident_board",
            "--by",
            OPERATOR,
            "--capability",
            &rebuilder,
            "--data",
            data_arg,
        ])
    };
    let worker = Command::new(env!("CARGO_BIN_EXE_ops-host"))
        .args([
            "run",
            "--data",
            data_arg,
            "--worker-id",
            "busy-worker",
            "--interval-ms",
            "20",
            "--lease-ms",
            "60000",
        ])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let worker = running::Running::new(worker);
    let started = std::time::Instant::now();
    let refused = loop {
        let (code, text) = rebuild();
        if code != 0 || started.elapsed() > std::time::Duration::from_secs(30) {
            break (code, text);
        }
        // The worker has not taken the lease yet; the rebuild ran alone.
        std::thread::sleep(std::time::Duration::from_millis(20));
    };
    assert_eq!(refused.0, 1, "{}", refused.1);
    assert!(
        refused.1.contains("is run by worker `busy-worker` now"),
        "{}",
        refused.1
    );
    let sent = Command::new("kill")
        .args(["-INT", &worker.id().to_string()])
        .status()
        .unwrap();
    assert!(sent.success());
    let stopped = worker.wait_with_output();
    let said = String::from_utf8_lossy(&stopped.stdout);
    assert!(
        stopped.status.success() && said.contains("leases released"),
        "{said}"
    );
    let (code, rebuilt) = rebuild();
    let ok = code == 0;
    assert!(
        ok && rebuilt.contains("rebuilt incidents/incident_board"),
        "{rebuilt}"
    );
    // Not on a terminal, its progress is a log line: every event of the log replayed.
    let events: u64 = host(&["log", "types", "--data", data_arg])
        .1
        .lines()
        .filter_map(|line| line.split(' ').nth(1)?.parse::<u64>().ok())
        .sum();
    assert!(
        rebuilt.contains(&format!(
            "rebuilding incidents/incident_board: {events}/{events} events"
        )),
        "{rebuilt}"
    );
    std::fs::remove_dir_all(&data).unwrap();
}

/// `ops.toml` is read fail closed: `config check` says what it declares, and what is wrong
/// is named with the file and its place (exit 2).
#[test]
fn config_check_reads_the_fences_and_names_what_is_wrong() {
    let dir = fresh_dir("config");
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("ops.toml");
    let check = |text: &str| {
        std::fs::write(&file, text).unwrap();
        host_exit(&["config", "check", "--config", file.to_str().unwrap()])
    };
    let (code, said) = check(
        "[gateway]\nhold_seconds = 60\nattempts = 3\n\n[destinations.pager]\nurl = \"https://pager.example/hook\"\nquota = { effects = 10, per_seconds = 3600 }\nkilled = true\n",
    );
    assert_eq!(code, 0, "{said}");
    assert!(
        said.contains("gateway: running, irreversible effects held 60 s, 3 attempts")
            && said.contains(
                "destination pager: https://pager.example/hook at most 10 effects per 3600 s, STOPPED"
            ),
        "{said}"
    );
    for (text, says) in [
        (
            "[destinations.pager]\nurl = \"https://pager.example/hook\"\n",
            "missing field `quota`",
        ),
        (
            "[destinations.pager]\nurl = \"https://pager.example/hook\"\nquota = { effects = 1, per_seconds = 60 }\nkill = true\n",
            "unknown field `kill`",
        ),
        (
            "[destinations.pager]\nurl = \"ftp://pager.example\"\nquota = { effects = 1, per_seconds = 60 }\n",
            "`destinations.\"pager\"`.url `ftp://pager.example` is not an http or https URL",
        ),
        (
            "[destinations.pager]\nurl = \"https://pager.example\"\nquota = { effects = 0, per_seconds = 60 }\n",
            "`destinations.\"pager\"`.quota allows nothing",
        ),
        // Durations that cannot be represented are refused, never wrapped or saturated.
        (
            "[gateway]\nhold_seconds = 10000000000000\n",
            "`gateway.hold_seconds` is longer than a hundred years",
        ),
        (
            "[gateway]\napproval_wait_seconds = 9223372036854775807\n",
            "`gateway.approval_wait_seconds` is longer than a hundred years",
        ),
        (
            "[destinations.pager]\nurl = \"https://pager.example\"\nquota = { effects = 1, per_seconds = 99999999999 }\n",
            "`destinations.\"pager\".quota.per_seconds` is longer than a hundred years",
        ),
        (
            "[destinations.pager]\nurl = \"https://pager.example\"\nhold_seconds = 4000000000\nquota = { effects = 1, per_seconds = 60 }\n",
            "`destinations.\"pager\".hold_seconds` is longer than a hundred years",
        ),
    ] {
        let (code, said) = check(text);
        assert_eq!(code, 2, "{text}: {said}");
        assert!(
            said.contains(&file.display().to_string()) && said.contains(says),
            "{text}: {said}"
        );
    }
    let (code, said) = check("[destinations.pager]\nurl = \"https://pager.example/hook\"\n");
    assert!(code == 2 && said.contains("(line 1)"), "{said}");
    std::fs::remove_dir_all(&dir).unwrap();
}

/// The worker's gateway has the fences `ops.toml` declares: over its quota, the on-call's
/// next effect is refused with its receipt, and `status` shows it (exit 1).
#[test]
fn the_worker_keeps_the_quota_its_configuration_declares() {
    let data = demo_with_new_tickets("worker-quota", &[sev1_ticket(300), sev1_ticket(301)]);
    let (_runtime, sink) = sink();
    // The demo's effect and one more within the day, then no more.
    let args = worker_args(
        &data,
        &sink.url(),
        2,
        &["--ticks", "6", "--interval-ms", "1", "--jobs-per-tick", "8"],
    );
    let (ok, worked) = host(&args.iter().map(String::as_str).collect::<Vec<_>>());
    assert!(ok, "{worked}");
    assert_eq!(sink.deliveries().len(), 1, "{worked}");
    let (code, status) = host_exit(&["status", "--data", data.to_str().unwrap()]);
    assert_eq!(code, 1, "{status}");
    assert!(
        status.contains("1 refused") && status.contains("REFUSED effect of command"),
        "{status}"
    );
    std::fs::remove_dir_all(&data).unwrap();
}

/// The operator's hands on effects: a worker whose configuration declares no destination
/// (not the demo's `ops.toml` in the data directory: `--config` names another) leaves the
/// on-call's effect pending; `effects list --format json` shows it, its requester cannot
/// approve it, an operator can, and cancelling it refuses it with a receipt. `quarantine
/// list` shows what the sample export's malformed record was set aside for.
#[test]
fn an_operator_lists_approves_and_cancels_effects_and_reads_the_quarantine() {
    let data = demo_with_new_tickets("effects-verbs", &[sev1_ticket(400)]);
    let data_arg = data.to_str().unwrap();
    let source = format!("tickets={}", data.join("source").display());
    let no_destinations = data.join("no-destinations.toml");
    std::fs::write(&no_destinations, "").unwrap();
    let (ok, worked) = host(&[
        "run",
        "--data",
        data_arg,
        "--config",
        no_destinations.to_str().unwrap(),
        "--source",
        &source,
        "--ticks",
        "2",
        "--interval-ms",
        "1",
    ]);
    assert!(ok, "{worked}");
    let (ok, listed) = host(&["effects", "list", "--format", "json", "--data", data_arg]);
    assert!(ok, "{listed}");
    let effects: Vec<serde_json::Value> = serde_json::from_str(&listed).unwrap();
    let pending: Vec<&serde_json::Value> = effects
        .iter()
        .filter(|effect| effect["state"] == "pending")
        .collect();
    assert_eq!(pending.len(), 1, "{listed}");
    let command = pending[0]["command_id"].as_str().unwrap().to_owned();

    // The operator approves on a capability of its own that reaches the effect.
    let (code, said) = host_exit(&[
        "capabilities",
        "grant",
        "approvals",
        "--to",
        "human:operator@example.com",
        "--by",
        "human:operator@example.com",
        "--types",
        "pack.notify.*",
        "--max-safety",
        "write_external",
        "--data",
        data_arg,
    ]);
    assert_eq!(code, 0, "{said}");
    let capability = said.split_whitespace().nth(1).unwrap().to_owned();
    let approve = |command: &str, by: &str| {
        host_exit(&[
            "effects",
            "approve",
            command,
            "--by",
            by,
            "--capability",
            &capability,
            "--data",
            data_arg,
        ])
    };
    let (code, said) = approve(&command, "service:pack.notify");
    assert!(
        code == 1 && said.contains("nobody approves their own effect"),
        "{said}"
    );
    let (code, said) = approve(&command, "human:operator@example.com");
    assert!(code == 0 && said.contains("approved"), "{said}");
    let (code, said) = host_exit(&[
        "effects",
        "cancel",
        &command,
        "--by",
        "human:operator@example.com",
        "--reason",
        "paged by phone instead",
        "--capability",
        &capability,
        "--data",
        data_arg,
    ]);
    assert!(code == 0 && said.contains("receipted"), "{said}");
    let (_, listed) = host(&["effects", "list", "--data", data_arg]);
    let line = listed
        .lines()
        .find(|line| line.starts_with(&command))
        .unwrap();
    assert!(
        line.contains("Cancelled: Pending -> Approved -> Cancelled")
            && line.contains(
                "cancelled by human `operator@example.com` before dispatch: paged by phone instead"
            ),
        "{listed}"
    );
    let (code, said) = approve("cmd_x", "human:a@b.c");
    assert!(
        code == 2 && said.contains("`cmd_x` is not a command id"),
        "{said}"
    );

    let (ok, quarantined) = host(&["quarantine", "list", "--format", "json", "--data", data_arg]);
    assert!(ok, "{quarantined}");
    let entries: Vec<serde_json::Value> = serde_json::from_str(&quarantined).unwrap();
    assert!(
        entries
            .iter()
            .any(|entry| entry["origin"] == "connector:tickets/tickets"),
        "{quarantined}"
    );
    // Retried with this build, the sample's malformed record is still unreadable: it stays
    // (exit 1), with why; an origin that is not a connector stream is bad input.
    let retrier = operator_capability(&data, "retrier", "core.quarantine.Retry");
    let (code, said) = host_exit(&[
        "quarantine",
        "retry",
        "connector:tickets/tickets",
        "--by",
        OPERATOR,
        "--capability",
        &retrier,
        "--data",
        data_arg,
    ]);
    assert!(
        code == 1 && said.contains("still set aside tickets/0002.jsonl:2"),
        "{said}"
    );
    let (code, said) = host_exit(&[
        "quarantine",
        "retry",
        "capabilities",
        "--by",
        OPERATOR,
        "--capability",
        &retrier,
        "--data",
        data_arg,
    ]);
    assert!(code == 2 && said.contains("projections rebuild"), "{said}");
    std::fs::remove_dir_all(&data).unwrap();
}

/// A job that fails every tick (here the connector: a source "file" that is a folder) is
/// recorded once as failing, `status` names it and exits 1; once the source reads again,
/// the next worker records it working and `status` is healthy on it. Six failing ticks
/// record it once, not once per tick.
#[test]
fn a_job_that_keeps_failing_makes_status_unhealthy_until_it_works_again() {
    let root = fresh_dir("failing-job");
    let source = root.join("source");
    let bad = source.join("tickets").join("0001.jsonl");
    std::fs::create_dir_all(&bad).unwrap();
    let data = root.join("data");
    let data_arg = data.to_str().unwrap();
    let source_arg = format!("tickets={}", source.display());
    let run = |ticks: &str| {
        let args = [
            "run",
            "--data",
            data_arg,
            "--source",
            &source_arg,
            "--ticks",
            ticks,
            "--interval-ms",
            "5",
            "--releases",
            "warn",
        ];
        let (code, text) = host_exit(&args);
        assert_eq!(code, 0, "{text}");
        text
    };
    let said = run("6");
    assert_eq!(
        said.matches("FAILING, recorded for status").count(),
        1,
        "{said}"
    );
    let (code, status) = host_exit(&["status", "--data", data_arg]);
    assert_eq!(code, 1, "{status}");
    assert!(
        status.contains("FAILING connector:tickets on worker"),
        "{status}"
    );
    // Each cause once.
    assert_eq!(
        status.matches("the source is unavailable").count(),
        1,
        "{status}"
    );

    std::fs::remove_dir(&bad).unwrap();
    std::fs::write(
        &bad,
        r#"{"seq": 1, "op": "create", "id": "T-1", "at": "2026-11-20T09:00:00Z", "service": "payments", "title": "works again", "severity": "sev2"}"#.to_owned() + "\n",
    )
    .unwrap();
    let said = run("2");
    assert!(said.contains("works again"), "{said}");
    let (_, status) = host_exit(&["status", "--data", data_arg]);
    assert!(status.contains("jobs: 0 failing"), "{status}");
    let _ = std::fs::remove_dir_all(&root);
}

/// Output into a pipe nobody reads any more (`ops-host log types | head -0`) is the
/// invocation's fault: exit 2, no panic.
#[test]
fn a_reader_that_went_away_is_exit_2() {
    let data = fresh_demo("broken-pipe");
    let data_arg = data.to_str().unwrap();
    for args in [
        &["log", "types", "--data", data_arg][..],
        &["log", "check", "--format", "json", "--data", data_arg][..],
        &["status", "--data", data_arg][..],
    ] {
        let mut child = Command::new(env!("CARGO_BIN_EXE_ops-host"))
            .args(args)
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        // The reader goes away before the host writes its first line.
        drop(child.stdout.take());
        let output = child.wait_with_output().unwrap();
        let said = String::from_utf8_lossy(&output.stderr).into_owned();
        assert_eq!(output.status.code(), Some(2), "{args:?}: {said}");
        assert!(!said.contains("panicked"), "{said}");
    }
    let _ = std::fs::remove_dir_all(&data);
}

/// A connector's record limit is set in `ops.toml`: a record over it is quarantined (the
/// rest are read), an unknown connector or a limit out of range is bad input.
#[test]
fn a_connectors_record_limit_is_set_in_ops_toml() {
    let root = fresh_dir("record-limit");
    let source = root.join("source");
    std::fs::create_dir_all(source.join("tickets")).unwrap();
    let line = |n: u32, title: &str| {
        format!(
            r#"{{"seq": {n}, "op": "create", "id": "T-{n}", "at": "2026-11-20T09:0{n}:00Z", "service": "payments", "title": "{title}", "severity": "sev2"}}"#
        )
    };
    let long = "x".repeat(400);
    std::fs::write(
        source.join("tickets/0001.jsonl"),
        [line(1, "short"), line(2, &long), line(3, "short too")].join("\n") + "\n",
    )
    .unwrap();
    let config = root.join("ops.toml");
    let data = root.join("data");
    let data_arg = data.to_str().unwrap();
    let config_arg = config.to_str().unwrap();
    let source_arg = format!("tickets={}", source.display());
    let run = |toml: &str| {
        std::fs::write(&config, toml).unwrap();
        host_exit(&[
            "run",
            "--data",
            data_arg,
            "--config",
            config_arg,
            "--source",
            &source_arg,
            "--ticks",
            "2",
            "--interval-ms",
            "5",
            "--releases",
            "warn",
        ])
    };
    let (code, said) = run("[connectors.nothing]\nmax_record_bytes = 300\n");
    assert_eq!(code, 2, "{said}");
    assert!(
        said.contains("`connectors.\"nothing\"` names no installed connector"),
        "{said}"
    );
    let (code, said) = run("[connectors.tickets]\nmax_record_bytes = 0\n");
    assert_eq!(code, 2, "{said}");
    assert!(
        said.contains("`connectors.\"tickets\".max_record_bytes` is 0"),
        "{said}"
    );
    let (code, said) = run("[connectors.tickets]\nmax_record_bytes = 300\n");
    assert_eq!(code, 0, "{said}");
    let (_, list) = host_exit(&["quarantine", "list", "--data", data_arg]);
    assert_eq!(list.lines().count(), 1, "{list}");
    assert!(list.contains("0001.jsonl:2"), "{list}");
    let (_, types) = host_exit(&["log", "types", "--data", data_arg]);
    assert!(
        types.contains("pack.incidents.incident.IncidentOpened 2 typed"),
        "{types}"
    );

    // A8: the rate limit and retry model, for the connector and one of its streams; each
    // wrong value is named, and what is in force is shown by `config check` and `status`.
    let reading = "[connectors.tickets]\nmax_record_bytes = 300\nmin_interval_ms = 5\nmax_attempts = 3\n[connectors.tickets.streams.tickets]\nmin_interval_ms = 20\nmax_backoff_ms = 400\n";
    for (toml, named) in [
        (
            "[connectors.tickets]\nmax_attempts = 0\n",
            "`connectors.\"tickets\".max_attempts` is 0; give 1 to 100",
        ),
        (
            "[connectors.tickets.streams.tickets]\ninitial_backoff_ms = 900\nmax_backoff_ms = 100\n",
            "`connectors.\"tickets\".streams.\"tickets\"`: `max_backoff_ms` (100) is shorter than `initial_backoff_ms` (900)",
        ),
        (
            "[connectors.tickets.streams.\"../x\"]\nmin_interval_ms = 1\n",
            "`connectors.\"tickets\".streams.\"../x\"` is not a stream name",
        ),
        (
            "[connectors.tickets]\nmin_interval_ms = 86400001\n",
            "`connectors.\"tickets\".min_interval_ms` is 86400001; give at most 86400000 (a day)",
        ),
    ] {
        let (code, said) = run(toml);
        assert!(code == 2 && said.contains(named), "{toml}: {said}");
    }
    let (code, said) = run(reading);
    assert_eq!(code, 0, "{said}");
    let (code, checked) = host_exit(&["config", "check", "--config", config_arg]);
    assert_eq!(code, 0, "{checked}");
    for line in [
        "connector tickets: records of at most 300 bytes; at most one read every 5 ms; a read that fails for now is tried 3 times, waiting 50 ms, doubled each time up to 30000 ms",
        "connector tickets, stream tickets: at most one read every 20 ms; a read that fails for now is tried 3 times, waiting 50 ms, doubled each time up to 400 ms",
    ] {
        assert!(checked.contains(line), "no `{line}` in:\n{checked}");
    }
    let (_, status) = host_exit(&["status", "--data", data_arg, "--config", config_arg]);
    assert!(
        status.contains("connector tickets: at most one read every 5 ms")
            && status.contains("  stream tickets: at most one read every 20 ms"),
        "{status}"
    );
    let _ = std::fs::remove_dir_all(&root);
}

/// A worker on a damaged store (a page of the SQLite file overwritten) stops with exit 1
/// naming the damage, instead of failing every tick and exiting 0.
#[test]
fn a_worker_on_a_damaged_store_stops_with_an_error() {
    let data = fresh_demo("damaged");
    let data_arg = data.to_str().unwrap();
    // The root page of the projections' table (which the worker's first jobs read, and
    // opening the store does not), overwritten.
    let root_page: i64 = tokio::runtime::Runtime::new().unwrap().block_on(async {
        let url = format!("sqlite://{}", data.join("ops.db").display());
        let pool = sqlx::SqlitePool::connect(&url).await.unwrap();
        let page = sqlx::query_scalar(
            "SELECT rootpage FROM sqlite_master WHERE name = 'core_projections'",
        )
        .fetch_one(&pool)
        .await
        .unwrap();
        pool.close().await;
        page
    });
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .open(data.join("ops.db"))
        .unwrap();
    let page_start = (root_page as u64 - 1) * 4096;
    std::io::Seek::seek(&mut file, std::io::SeekFrom::Start(page_start)).unwrap();
    std::io::Write::write_all(&mut file, &[0xff; 4096]).unwrap();
    drop(file);
    let (code, said) = host_exit(&[
        "run",
        "--data",
        data_arg,
        "--ticks",
        "3",
        "--interval-ms",
        "5",
        "--releases",
        "warn",
    ]);
    assert_eq!(code, 1, "{said}");
    assert!(
        said.contains("the store is damaged; the worker stopped"),
        "{said}"
    );
    assert_eq!(
        said.matches("database disk image is malformed").count(),
        1,
        "{said}"
    );
    let _ = std::fs::remove_dir_all(&data);
}

/// A destination that answers each post after `delay`, counting the incidents posted.
fn slow_destination(
    delay: std::time::Duration,
) -> (String, std::sync::Arc<std::sync::Mutex<Vec<String>>>) {
    use std::io::{BufRead, BufReader, Read, Write};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/hook", listener.local_addr().unwrap());
    let posted = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let seen = posted.clone();
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            let seen = seen.clone();
            std::thread::spawn(move || {
                let mut reader = BufReader::new(stream.try_clone().unwrap());
                let mut length = 0;
                loop {
                    let mut line = String::new();
                    if reader.read_line(&mut line).unwrap_or(0) == 0 {
                        return;
                    }
                    if let Some(value) = line.to_ascii_lowercase().strip_prefix("content-length:") {
                        length = value.trim().parse().unwrap_or(0);
                    }
                    if line == "\r\n" {
                        break;
                    }
                }
                let mut body = vec![0u8; length];
                reader.read_exact(&mut body).unwrap();
                let body: serde_json::Value = serde_json::from_slice(&body).unwrap_or_default();
                seen.lock()
                    .unwrap()
                    .push(body["incident_id"].as_str().unwrap_or_default().to_owned());
                std::thread::sleep(delay);
                let mut stream = stream;
                let _ = stream.write_all(
                    b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\nconnection: close\r\n\r\n",
                );
            });
        }
    });
    (url, posted)
}

/// SIGTERM while effects go to a slow destination: the worker stops claiming at once,
/// finishes or gives back what is in flight, and ends within a bounded grace with exit 0;
/// the next worker sends the rest, none twice.
#[test]
fn sigterm_during_a_slow_dispatch_ends_promptly_and_sends_nothing_twice() {
    let tickets: Vec<String> = (300..312).map(sev1_ticket).collect();
    let data = demo_with_new_tickets("worker-sigterm", &tickets);
    let (slow_url, slow_posts) = slow_destination(std::time::Duration::from_millis(700));
    let args = worker_args(
        &data,
        &slow_url,
        1000,
        &["--interval-ms", "5", "--jobs-per-tick", "8"],
    );
    let worker = running::Running::new(
        Command::new(env!("CARGO_BIN_EXE_ops-host"))
            .args(&args)
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap(),
    );
    let started = std::time::Instant::now();
    while slow_posts.lock().unwrap().is_empty()
        && started.elapsed() < std::time::Duration::from_secs(60)
    {
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    assert!(
        !slow_posts.lock().unwrap().is_empty(),
        "the slow destination was posted to"
    );
    let signalled = std::time::Instant::now();
    let sent = Command::new("kill")
        .args(["-TERM", &worker.id().to_string()])
        .status()
        .unwrap();
    assert!(sent.success());
    let output = worker.wait_with_output();
    let took = signalled.elapsed();
    let said = String::from_utf8_lossy(&output.stdout).into_owned();
    assert!(
        output.status.success(),
        "{said}{}",
        String::from_utf8_lossy(&output.stderr)
    );
    // One post in flight (0.7 s) and the leases given back; never the whole batch.
    assert!(
        took < std::time::Duration::from_secs(5),
        "took {took:?}: {said}"
    );
    let first = slow_posts.lock().unwrap().clone();
    assert!(
        first.len() < tickets.len(),
        "it stopped claiming: {first:?}"
    );

    let (_runtime, sink) = sink();
    let finished = run_to_the_end(&data, &sink, &[]);
    let mut all: Vec<String> = first;
    all.extend(notified(&sink));
    all.sort();
    let expected: Vec<String> = (300..312).map(|n| format!("T-{n}")).collect();
    assert_eq!(all, expected, "each effect sent once: {finished}");
    std::fs::remove_dir_all(&data).unwrap();
}

/// `ops-host ARGS` with `dir` mounted read-only (in a mount namespace of its own, so the
/// test needs no privilege and leaves no mount behind): the exit code and what it said.
fn host_on_read_only(dir: &Path, args: &[&str]) -> (i32, String) {
    let output = Command::new("unshare")
        .args(["--map-root-user", "--mount", "sh", "-c"])
        .arg(r#"mount --bind "$0" "$0" && mount -o remount,bind,ro "$0" && exec "$@""#)
        .arg(dir)
        .arg(env!("CARGO_BIN_EXE_ops-host"))
        .args(args)
        .output()
        .expect("unshare(1) runs the host in a mount namespace of its own");
    said(output)
}

/// A store on a read-only filesystem is read by every command that only reads; a command
/// that writes says the store is read-only (exit 2) and changes nothing. A write-ahead log
/// with commits the file lacks is read through the index its writer left, or, with none,
/// named instead of being read past.
#[test]
fn a_store_on_a_read_only_filesystem_is_read_and_writes_say_read_only() {
    let data = fresh_demo("read-only");
    let data_arg = data.to_str().unwrap();
    let (_, types) = host_exit(&["log", "types", "--data", data_arg]);
    let (_, board) = host_exit(&["projections", "status", "--data", data_arg]);
    let before = std::fs::read(data.join("ops.db")).unwrap();

    let (code, read) = host_on_read_only(&data, &["log", "types", "--data", data_arg]);
    assert_eq!((code, read.as_str()), (0, types.as_str()));
    let (code, read) = host_on_read_only(&data, &["projections", "status", "--data", data_arg]);
    assert_eq!((code, read.as_str()), (0, board.as_str()));
    let (code, said) = host_on_read_only(&data, &["status", "--data", data_arg]);
    assert!(said.contains("projections: 3 within"), "{code}: {said}");
    for writes in [
        &["run", "--ticks", "1", "--data", data_arg][..],
        &[
            "capabilities",
            "grant",
            "reader",
            "--to",
            "human:ada@example.com",
            "--by",
            "human:operator@example.com",
            "--types",
            "pack.incidents.*",
            "--max-safety",
            "read",
            "--data",
            data_arg,
        ],
    ] {
        let (code, said) = host_on_read_only(&data, writes);
        assert_eq!(code, 2, "{}: {said}", writes.join(" "));
        assert!(
            said.contains("the store is read-only") && said.matches("read-only (").count() == 1,
            "{said}"
        );
    }
    assert_eq!(std::fs::read(data.join("ops.db")).unwrap(), before);

    // A write-ahead log with commits and no index to read it through: refused, named.
    let _ = std::fs::remove_file(data.join("ops.db-shm"));
    std::fs::write(data.join("ops.db-wal"), b"commits not yet in the file").unwrap();
    let (code, said) = host_on_read_only(&data, &["log", "types", "--data", data_arg]);
    assert_eq!(code, 1, "{said}");
    assert!(said.contains("write-ahead log"), "{said}");
    std::fs::remove_dir_all(&data).unwrap();
}

/// A PostgreSQL store the server keeps read-only (a standby, a read-only role) is read;
/// a command that writes says the store is read-only (exit 2).
#[test]
fn a_postgres_store_the_server_keeps_read_only_is_read_and_writes_say_read_only() {
    let schema = postgres::Schema::new("read_only");
    let url = postgres::database_url();
    let (code, text) = host_exit(&[
        "run",
        "--ticks",
        "1",
        "--releases",
        "warn",
        "--database",
        &url,
        "--schema",
        &schema.name,
    ]);
    assert_eq!(code, 0, "{text}");
    let read_only_url = format!(
        "{url}{}options=-c%20default_transaction_read_only%3Don",
        if url.contains('?') { '&' } else { '?' }
    );
    let (code, types) = host_exit(&[
        "log",
        "types",
        "--database",
        &read_only_url,
        "--schema",
        &schema.name,
    ]);
    assert_eq!(code, 0, "{types}");
    assert!(types.contains("core."), "{types}");
    let (code, said) = host_exit(&[
        "run",
        "--ticks",
        "1",
        "--releases",
        "warn",
        "--database",
        &read_only_url,
        "--schema",
        &schema.name,
    ]);
    assert_eq!(code, 2, "{said}");
    assert!(said.contains("the store is read-only"), "{said}");
}

/// How many events of `event_type` `ops-host log types` counted in `types`.
fn events_of(types: &str, event_type: &str) -> usize {
    types
        .lines()
        .find_map(|line| line.strip_prefix(&format!("{event_type} ")))
        .and_then(|rest| rest.split_whitespace().next())
        .map_or(0, |count| count.parse().unwrap())
}

/// Waits up to a minute for `done`; whether it came.
fn eventually(mut done: impl FnMut() -> bool) -> bool {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while std::time::Instant::now() < deadline {
        if done() {
            return true;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    false
}

/// A worker whose disk fills up fails its jobs while it is full, loses nothing, and works
/// again at its next tick once there is room: no restart. The store lives on a small
/// filesystem of the worker's own (a tmpfs in a mount namespace of its own, which the test
/// reads by entering it), filled to the last byte by the test while tickets keep arriving.
#[test]
fn a_full_disk_heals_without_a_restart() {
    let root = fresh_dir("full-disk");
    let source = root.join("source");
    let small = root.join("small");
    std::fs::create_dir_all(source.join("tickets")).unwrap();
    std::fs::create_dir_all(&small).unwrap();
    let tickets = |from: u32, to: u32| -> String {
        (from..to)
            .map(|n| {
                format!(
                    r#"{{"seq": {n}, "op": "create", "id": "T-{n}", "at": "2026-11-20T09:00:00Z", "service": "payments", "title": "ticket {n} {}", "severity": "sev3"}}"#,
                    "x".repeat(200)
                ) + "\n"
            })
            .collect()
    };
    std::fs::write(source.join("tickets/0001.jsonl"), tickets(1, 21)).unwrap();
    let data = small.join("data");
    let data_arg = data.to_str().unwrap();
    let worker_out = root.join("worker.out");
    let worker = Command::new("unshare")
        .args(["--map-root-user", "--mount", "sh", "-c"])
        .arg(r#"mount -t tmpfs -o size=6m tmpfs "$0" && exec "$@""#)
        .arg(&small)
        .arg(env!("CARGO_BIN_EXE_ops-host"))
        .args([
            "run",
            "--ticks",
            "100000",
            "--interval-ms",
            "20",
            "--releases",
            "warn",
        ])
        .args(["--data", data_arg])
        .arg("--source")
        .arg(format!("tickets={}", source.display()))
        .stdout(std::fs::File::create(&worker_out).unwrap())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("unshare(1) runs the worker in a mount namespace of its own");
    let worker = running::Running::new(worker);
    let pid = worker.id().to_string();
    // `ops-host ARGS` where the worker's small filesystem is mounted.
    let beside_worker = |args: &[&str]| -> String {
        let output = Command::new("nsenter")
            .args([
                "--target",
                &pid,
                "--user",
                "--mount",
                "--preserve-credentials",
            ])
            .arg(env!("CARGO_BIN_EXE_ops-host"))
            .args(args)
            .output()
            .unwrap();
        said(output).1
    };
    let opened = |beside_worker: &dyn Fn(&[&str]) -> String| {
        events_of(
            &beside_worker(&["log", "types", "--data", data_arg]),
            "pack.incidents.incident.IncidentOpened",
        )
    };
    assert!(eventually(|| opened(&beside_worker) == 20));

    // Fill the filesystem to the last byte (through the worker's view of it), then more
    // tickets arrive.
    let seen = PathBuf::from(format!("/proc/{pid}/root")).join(small.strip_prefix("/").unwrap());
    let mut filler = std::fs::File::create(seen.join("filler")).unwrap();
    for size in [64 << 10, 512, 1] {
        let block = vec![0u8; size];
        loop {
            match std::io::Write::write_all(&mut filler, &block) {
                Ok(()) => {}
                Err(error) if error.raw_os_error() == Some(28) => break, // ENOSPC
                Err(error) => panic!("filling the disk: {error}"),
            }
        }
    }
    std::fs::write(source.join("tickets/0002.jsonl"), tickets(21, 61)).unwrap();
    assert!(eventually(|| {
        std::fs::read_to_string(&worker_out)
            .unwrap()
            .contains("database or disk is full")
    }));
    assert!(opened(&beside_worker) < 60);

    // Room again: the same worker takes every ticket, each once.
    drop(filler);
    std::fs::remove_file(seen.join("filler")).unwrap();
    assert!(
        eventually(|| opened(&beside_worker) == 60),
        "{} of 60 tickets",
        opened(&beside_worker)
    );
    // The board catches up on them within a few ticks.
    let board = || beside_worker(&["projections", "status", "--data", data_arg]);
    let caught_up = |board: &str| {
        board
            .lines()
            .any(|line| line.contains("incident_board") && line.contains(" 60 applied"))
    };
    assert!(
        eventually(|| caught_up(&board())),
        "{}\nthe worker said:\n{}",
        board(),
        std::fs::read_to_string(&worker_out).unwrap()
    );
    let status = beside_worker(&["status", "--data", data_arg]);
    assert!(status.contains("jobs: 0 failing"), "{status}");
    let sent = Command::new("kill").args(["-TERM", &pid]).status().unwrap();
    assert!(sent.success());
    let ended = worker.wait_with_output();
    assert_eq!(
        ended.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&ended.stderr)
    );
    let _ = std::fs::remove_dir_all(&root);
}

/// In the default enforce mode every verb that runs pack code refuses while what this
/// binary links is not the active release, and runs nothing (exit 1); `--releases warn`
/// says so and runs. Verbs that only read still read.
#[test]
fn every_verb_that_runs_pack_code_refuses_without_active_releases() {
    let root = fresh_dir("unreleased");
    let data = root.join("data");
    let data_arg = data.to_str().unwrap();
    let source = root.join("source");
    std::fs::create_dir_all(source.join("tickets")).unwrap();
    let (code, said) = host_exit(&[
        "run",
        "--ticks",
        "1",
        "--releases",
        "warn",
        "--data",
        data_arg,
    ]);
    assert_eq!(code, 0, "{said}");
    let (_, types_before) = host_exit(&["log", "types", "--data", data_arg]);
    let capability = "cap_0000000000000000000000000000000000000000000000000000000000000000";
    let acting = ["--by", "human:ada@example.com", "--capability", capability];
    let source_arg = source.to_str().unwrap();
    let verbs: Vec<Vec<&str>> = vec![
        vec!["run", "--ticks", "1"],
        [&["connectors", "sync", "tickets", "--source", source_arg][..], &acting].concat(),
        [
            &[
                "commands",
                "submit",
                "pack.incidents.incident.OpenIncident",
                "--payload",
                r#"{"incident_id": "INC-1", "service": {"system": "catalog", "id": "payments"}, "title": "Payouts stall", "severity": "sev1"}"#,
            ][..],
            &acting,
        ]
        .concat(),
        [&["projections", "rebuild", "incidents/incident_board"][..], &acting].concat(),
        [&["reconcile"][..], &acting].concat(),
        [&["quarantine", "retry", "connector:tickets/tickets"][..], &acting].concat(),
        [&["sagas", "unwind"][..], &acting].concat(),
    ];
    for verb in &verbs {
        let args = [&verb[..], &["--data", data_arg]].concat();
        let (code, said) = host_exit(&args);
        assert!(
            code == 1 && said.contains("refused to run"),
            "ops-host {}: {code}: {said}",
            args.join(" ")
        );
        assert!(said.contains("is not the active release"), "{said}");
    }
    let (_, types_after) = host_exit(&["log", "types", "--data", data_arg]);
    assert_eq!(types_after, types_before, "nothing was written");
    // `--releases warn` says so and goes on, to the next check: this fresh store grants
    // nobody anything, so the reconcile is denied, with its receipt.
    let (code, said) = host_exit(
        &[
            &["reconcile", "--releases", "warn", "--data", data_arg][..],
            &acting,
        ]
        .concat(),
    );
    assert!(
        code == 1
            && said.contains("NOT ACTIVE")
            && said.contains("does not allow `core.reconcile.Run`"),
        "{said}"
    );
    let (code, said) = host_exit(&["log", "types", "--data", data_arg]);
    assert_eq!(code, 0, "{said}");
    std::fs::remove_dir_all(&root).unwrap();
}

/// A revoked `reactions/<pack>` is granted again under the same name (a new capability,
/// with its own id): the reaction that waited at its denied command answers with the new
/// one, and `status` stops asking for the grant.
#[test]
fn a_revoked_reaction_capability_granted_again_answers() {
    let data = demo_with_new_tickets("regrant", &[sev1_ticket(120)]);
    let data_arg = data.to_str().unwrap();
    let operator = "human:operator@example.com";
    let (_, list) = host(&["capabilities", "list", "--data", data_arg]);
    let old = list
        .lines()
        .find(|line| line.contains("held by service `pack.notify`"))
        .and_then(|line| line.split_whitespace().next())
        .unwrap_or_else(|| panic!("{list}"))
        .to_owned();
    let (ok, said) = host(&[
        "capabilities",
        "revoke",
        &old,
        "--by",
        operator,
        "--reason",
        "rotated",
        "--data",
        data_arg,
    ]);
    assert!(ok, "{said}");
    let (_runtime, sink) = sink();
    run_to_the_end(&data, &sink, &[]);
    assert!(!notified(&sink).contains(&"T-120".to_owned()));
    let (code, status) = host_exit(&["status", "--data", data_arg]);
    assert!(
        code == 1
            && status.contains("WAITING reaction notify")
            && status.contains("ended: grant `reactions/notify` again"),
        "{status}"
    );
    // The worker's `ops.toml` (from `worker_args`) names no operator; this one does.
    let operators = data.join("operators.toml");
    std::fs::write(&operators, format!("operators = [\"{operator}\"]\n")).unwrap();
    let grant = |name: &str| {
        host(&[
            "capabilities",
            "grant",
            name,
            "--to",
            "service:pack.notify",
            "--by",
            operator,
            "--types",
            "pack.notify.*",
            "--max-safety",
            "write_external",
            "--config",
            operators.to_str().unwrap(),
            "--data",
            data_arg,
        ])
    };
    let (ok, granted) = grant("reactions/notify");
    assert!(ok, "{granted}");
    let new = granted.split_whitespace().nth(1).unwrap().to_owned();
    assert_ne!(new, old);
    // While it holds, the name is taken.
    let (ok, again) = grant("reactions/notify");
    assert!(!ok && again.contains("exists"), "{again}");
    run_to_the_end(&data, &sink, &[]);
    assert_eq!(
        notified(&sink).iter().filter(|id| *id == "T-120").count(),
        1,
        "{:?}",
        notified(&sink)
    );
    let (_, status) = host_exit(&["status", "--data", data_arg]);
    assert!(!status.contains("WAITING"), "{status}");
    std::fs::remove_dir_all(&data).unwrap();
}

/// A derived artifact and feedback on it are recorded from the command line, each on a
/// capability (a denial receipted): the artifact's inputs are hashed by the platform, and
/// its lineage reads back through the demo's own derived artifact to the source events.
#[test]
fn a_derived_artifact_and_its_feedback_are_recorded_on_a_capability() {
    let (data, demo) = demo_said("derive");
    let data_arg = data.to_str().unwrap();
    let summary = demo
        .lines()
        .find_map(|line| line.strip_prefix("derived artifact "))
        .and_then(|rest| rest.split_whitespace().next())
        .unwrap_or_else(|| panic!("{demo}"))
        .to_owned();
    let output = data.join("report.txt");
    std::fs::write(&output, "two incidents open on payments\n").unwrap();
    let recorder = operator_capability(
        &data,
        "recorder",
        "core.ArtifactRecorded,core.FeedbackGiven",
    );
    let derive = |from: &str, capability: &str| {
        host_exit(&[
            "lineage",
            "derive",
            "--from",
            from,
            "--output",
            output.to_str().unwrap(),
            "--policy-version",
            "weekly-report 1.0.0",
            "--tool",
            "summariser=2.1",
            "--by",
            OPERATOR,
            "--capability",
            capability,
            "--data",
            data_arg,
        ])
    };
    let (code, said) = derive(
        &summary,
        "cap_0000000000000000000000000000000000000000000000000000000000000000",
    );
    assert!(code == 1 && said.contains("(receipted)"), "{said}");
    let unknown = "evt_0000000000000000000000000000000000000000000000000000000000000000";
    let (code, said) = derive(unknown, &recorder);
    assert!(code == 2 && said.contains("is not stored"), "{said}");
    let (code, said) = derive(&summary, &recorder);
    assert_eq!(code, 0, "{said}");
    let report = said
        .trim()
        .strip_prefix("recorded derived artifact ")
        .unwrap_or_else(|| panic!("{said}"))
        .to_owned();
    let feedback = |kind: &str| {
        host_exit(&[
            "lineage",
            "feedback",
            &report,
            "--kind",
            kind,
            "--note",
            "checked by hand",
            "--by",
            OPERATOR,
            "--capability",
            &recorder,
            "--data",
            data_arg,
        ])
    };
    let (code, said) = feedback("liked");
    assert!(
        code == 2 && said.contains("not a kind of feedback"),
        "{said}"
    );
    let (code, said) = feedback("edited");
    assert_eq!(code, 0, "{said}");
    let (code, chain) = host_exit(&["lineage", &report, "--data", data_arg]);
    assert_eq!(code, 0, "{chain}");
    assert!(
        chain.contains(&format!(
            "{report} derived by weekly-report 1.0.0, 1 input(s); feedback [Edited]"
        )) && chain.contains(&format!("{summary} derived by board-summary"))
            && chain.contains("pack.incidents.incident.IncidentOpened"),
        "{chain}"
    );
    std::fs::remove_dir_all(&data).unwrap();
}

/// A6, A7 from the CLI: a grant under an action key, run again (a retry after a timeout),
/// finds the capability it granted and grants nothing twice; a new action is a new grant.
#[test]
fn a_retried_grant_under_its_action_key_grants_once() {
    let data = fresh_demo("grant-retry");
    let data_arg = data.to_str().unwrap();
    let operators = data.join("operators.toml");
    std::fs::write(&operators, format!("operators = [\"{OPERATOR}\"]\n")).unwrap();
    let grant = |name: &str, action: &str| {
        host_exit(&[
            "capabilities",
            "grant",
            name,
            "--to",
            "human:ada@example.com",
            "--by",
            OPERATOR,
            "--types",
            "pack.incidents.*",
            "--action",
            action,
            "--config",
            operators.to_str().unwrap(),
            "--data",
            data_arg,
        ])
    };
    let stored = |event_type: &str| {
        let (_, types) = host_exit(&["log", "types", "--data", data_arg]);
        events_of(&types, event_type)
    };
    let granted = || stored("core.CapabilityGranted");
    let before = granted();
    let (code, first) = grant("on-call", "grant-on-call-1");
    assert!(code == 0 && first.starts_with("granted cap_"), "{first}");
    assert_eq!(granted(), before + 1);
    let (code, again) = grant("on-call", "grant-on-call-1");
    assert!(
        code == 0 && again.contains("(already, by this action)"),
        "{again}"
    );
    let id = |said: &str| said.split_whitespace().nth(1).unwrap().to_owned();
    assert_eq!(id(&again), id(&first));
    assert_eq!(granted(), before + 1, "the retry granted again");
    let (code, other) = grant("pager", "grant-pager-1");
    assert!(code == 0 && !other.contains("already"), "{other}");
    assert_eq!(granted(), before + 2);

    // A revocation retried under its key states the revocation already stored.
    let revoked = || stored("core.CapabilityRevoked");
    let revoked_before = revoked();
    let revoke = || {
        host_exit(&[
            "capabilities",
            "revoke",
            &id(&first),
            "--by",
            OPERATOR,
            "--reason",
            "rota ended",
            "--action",
            "revoke-on-call-1",
            "--config",
            operators.to_str().unwrap(),
            "--data",
            data_arg,
        ])
    };
    let (code, once) = revoke();
    assert!(code == 0 && once.starts_with("revoked "), "{once}");
    let (code, twice) = revoke();
    assert!(code == 0 && twice == once, "{once} then {twice}");
    assert_eq!(revoked(), revoked_before + 1, "the retry revoked again");
    let _ = std::fs::remove_dir_all(&data);
}
