//! `ops-host retention`: applies a retention policy, showing its progress class by class,
//! and prints each class's receipt.

use ops_core_runtime::clock::WallClock;
use std::io::Write;

use ops_core::envelope::Actor;
use ops_core::id::CapabilityId;
use ops_core::retention::RetentionPolicy;
use ops_core::time::Timestamp;
use ops_core_runtime::retention::Retention;
use ops_core_runtime::store::EventStore;

pub async fn apply(
    store: &EventStore,
    policy: &RetentionPolicy,
    installed: &[&str],
    actor: &Actor,
    out: &mut impl Write,
) -> anyhow::Result<()> {
    let retention = Retention::new(store.clone(), CapabilityId::of("host.retention")?);
    let progress = crate::progress::Progress::new("retention", "classes");
    let receipts = retention
        .apply_reporting(
            policy,
            installed,
            Timestamp::now(),
            actor,
            Some(progress.callback()),
        )
        .await;
    progress.finish();
    for receipt in receipts? {
        writeln!(
            out,
            "{}: kept {} days, removed {}{}",
            receipt.class,
            receipt.retention_days,
            receipt.removed.len(),
            if receipt.removed.is_empty() {
                String::new()
            } else {
                format!(" ({})", receipt.removed.join(", "))
            }
        )?;
    }
    Ok(())
}
