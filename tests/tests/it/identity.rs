//! Identity is the Rust type and the crate rustc compiled it in. A host binary with pieces
//! forged past the compile-time rules (`tests/src/bin/forged_host.rs`: a hand-written pack
//! type claiming `incidents`, an event type claiming its private `TriageNoteAdded`, and a
//! projection of them) does not start, and says which crate compiled each forged claim.

use std::process::Command;

#[test]
fn a_host_with_forged_identities_refuses_to_start_naming_the_crate() {
    let folder = std::env::temp_dir().join(format!("ops-forged-host-{}", std::process::id()));
    std::fs::create_dir_all(&folder).unwrap();
    let output = Command::new(env!("CARGO_BIN_EXE_forged_host"))
        .arg("demo")
        .current_dir(&folder)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    for claim in [
        "projection `notes_copy` claims pack `incidents`, but rustc compiled its pack type as `forged_host::Impostor`",
        "projection `notes_copy` claims pack `incidents`, but rustc compiled it as `forged_host::Eavesdropper`",
        "connector `tickets` is installed twice: by `pack_filesync::TicketExport` and by `forged_host::CursorThief`",
        "connector `tickets` claims pack `incidents`, but rustc compiled it as `forged_host::CursorThief`",
        "projection `notes_copy` claims `pack.incidents.triage.TriageNoteAdded` v1, but rustc compiled the type it names as `forged_host::ForgedTriageNote`, and that name is registered for `pack_incidents::TriageNoteAdded`",
    ] {
        assert!(stderr.contains(claim), "{claim}\n{stderr}");
    }
    // It stopped before it touched anything: no store was created.
    assert_eq!(std::fs::read_dir(&folder).unwrap().count(), 0);
    std::fs::remove_dir_all(&folder).ok();
}
