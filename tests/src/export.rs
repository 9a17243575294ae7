//! A ticket export for the filesync pack's connector, as large as a test needs: tickets
//! opened, then each acknowledged or (every fifth) resolved, in files of `per_file` lines.
//! No ticket is SEV1, so the notify pack's reaction proposes nothing. The host's own tests
//! include this file by path, since they cannot depend on this crate.

use std::path::{Path, PathBuf};

/// Writes `records` records into `DIR/tickets/NNNN.jsonl` under a fresh `dir`.
pub fn ticket_export(dir: &Path, records: usize, per_file: usize) -> PathBuf {
    let _ = std::fs::remove_dir_all(dir);
    std::fs::create_dir_all(dir.join("tickets")).expect("creating the export directory");
    let services = ["payments", "search", "mail", "checkout"];
    let tickets = records / 2;
    let mut lines = Vec::new();
    for n in 0..tickets {
        lines.push(format!(
            r#"{{"seq": {}, "op": "create", "id": "T-{n}", "at": "2026-11-20T09:{:02}:00Z", "service": "{}", "title": "ticket {n}", "severity": "sev2"}}"#,
            lines.len() + 1,
            n % 60,
            services[n % services.len()]
        ));
    }
    for n in 0..tickets {
        let seq = lines.len() + 1;
        let minute = n % 60;
        lines.push(if n % 5 == 0 {
            format!(
                r#"{{"seq": {seq}, "op": "update", "id": "T-{n}", "at": "2026-11-20T10:{minute:02}:00Z", "status": "resolved", "assignee": {{"id": "U007", "name": "Grace Oncall"}}, "resolution": "fixed"}}"#
            )
        } else {
            format!(
                r#"{{"seq": {seq}, "op": "update", "id": "T-{n}", "at": "2026-11-20T10:{minute:02}:00Z", "status": "acknowledged", "assignee": {{"id": "U042", "name": "Ada Responder"}}}}"#
            )
        });
    }
    for (index, chunk) in lines.chunks(per_file).enumerate() {
        std::fs::write(
            dir.join("tickets").join(format!("{:04}.jsonl", index + 1)),
            chunk.join("\n") + "\n",
        )
        .expect("writing the export");
    }
    dir.to_owned()
}
