//! Where this host runs pack code: in jailed runners (this binary started as a runner, see
//! `ops_core_runtime::jail`), confined by the kernel unless the operator said `--unjailed`,
//! with each pack's limits from `ops.toml`. One setting per process, made before the first
//! store is opened; the limits change with a reloaded configuration.

use std::sync::{Mutex, OnceLock};

use anyhow::Context;
use ops_core_runtime::jail::{Jail, Limits, PackCode};

#[derive(Default)]
struct Settings {
    unjailed: bool,
    limits: Vec<(String, Limits)>,
}

static SETTINGS: Mutex<Settings> = Mutex::new(Settings {
    unjailed: false,
    limits: Vec::new(),
});
static CODE: OnceLock<PackCode> = OnceLock::new();

/// `--unjailed`: runners are started without the kernel's confinement.
pub(crate) fn set_unjailed(unjailed: bool) {
    SETTINGS.lock().unwrap_or_else(|e| e.into_inner()).unjailed = unjailed;
}

/// Each configured pack's limits (`[packs.<id>]` in `ops.toml`): for the runners to come,
/// and, once runners run (a reloaded configuration), for each pack from its next call on.
pub(crate) fn set_limits(limits: Vec<(String, Limits)>) {
    SETTINGS.lock().unwrap_or_else(|e| e.into_inner()).limits = limits.clone();
    if let Some(jail) = CODE.get().and_then(PackCode::jail) {
        jail.set_limits(limits);
    }
}

/// The pack code of this process: jailed runners of this binary.
pub(crate) fn pack_code() -> anyhow::Result<PackCode> {
    if let Some(code) = CODE.get() {
        return Ok(code.clone());
    }
    let program =
        Jail::of_this_host().context("finding this host's binary to start pack runners")?;
    let settings = SETTINGS.lock().unwrap_or_else(|e| e.into_inner());
    let jail = Jail::with(
        program,
        !settings.unjailed,
        Limits::default(),
        settings.limits.clone(),
    );
    Ok(CODE.get_or_init(|| PackCode::Jailed(jail)).clone())
}

/// Starts one runner now: a host that would run pack code refuses to start where the
/// kernel cannot confine it (unless `--unjailed`), rather than at its first event.
pub(crate) fn check() -> anyhow::Result<PackCode> {
    let code = pack_code()?;
    if let Some(jail) = code.jail() {
        jail.check()?;
    }
    Ok(code)
}
