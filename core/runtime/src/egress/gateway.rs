//! The gateway's checks of A5, in order: kill switch, capability, quota per destination and
//! per actor, approval (an actor's, unless it expired, or a policy's), destination. They
//! judge an effect on [`Facts`] the dispatcher reads beforehand, so they are a pure
//! function, tested without a database.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use ops_core::capability::{Decision, actor_label};
use ops_core::egress::{Approval, Check};
use ops_core::time::Timestamp;

use super::Effect;

/// Approves effects by rule: a policy with an id and a version.
pub trait ApprovalPolicy: Send + Sync {
    fn approve(&self, effect: &Effect) -> Option<Approval>;
}

/// The gateway's settings.
#[derive(Default)]
pub struct Gateway {
    /// Everything stops.
    pub kill_all: bool,
    /// These destinations stop.
    pub killed: BTreeSet<String>,
    /// At most this many executed effects per destination in this window.
    pub quotas: BTreeMap<String, (i64, Duration)>,
    /// At most this many executed effects per requesting actor in this window.
    pub actor_quota: Option<(i64, Duration)>,
    pub policies: Vec<Box<dyn ApprovalPolicy>>,
    /// How long an irreversible effect waits after it was requested before it may be
    /// dispatched; until then it can be cancelled.
    pub hold: Duration,
    /// The hold of these destinations, in place of `hold`.
    pub holds: BTreeMap<String, Duration>,
    /// Unconfirmed attempts after which an effect fails; `None` tries until it is confirmed.
    pub max_attempts: Option<u32>,
    /// The attempts of these destinations, in place of `max_attempts`.
    pub attempts: BTreeMap<String, u32>,
    /// How long an effect no actor approved and no policy covers waits, pending, for an
    /// actor's approval before it is refused; `None` refuses it at once.
    pub approval_wait: Option<Duration>,
}

impl Gateway {
    /// The unconfirmed attempts after which an effect to `destination` fails.
    pub fn attempts_for(&self, destination: &str) -> Option<u32> {
        self.attempts
            .get(destination)
            .copied()
            .or(self.max_attempts)
    }

    /// Whether `effect`, refused at the approval check at `now`, is rather left pending for
    /// an actor to approve: it never had an approval, and its wait is not over.
    pub fn awaits_approval(&self, effect: &Effect, now: Timestamp) -> bool {
        effect.approval.is_none()
            && self.approval_wait.is_some_and(|wait| {
                // A deadline past the last representable time is never reached: it waits.
                effect
                    .requested_at
                    .plus(wait)
                    .is_none_or(|deadline| now < deadline)
            })
    }
}

/// What the gateway judges an effect on besides the effect: read by the dispatcher just
/// before, as of `now`.
pub struct Facts {
    pub now: Timestamp,
    /// Whether the destination has an executor.
    pub known_destination: bool,
    /// Effects executed at the destination within its quota's window, when it has a quota.
    pub destination_used: Option<Result<i64, String>>,
    /// Effects executed for the requesting actor within the actor quota's window.
    pub actor_used: Option<Result<i64, String>>,
}

impl Gateway {
    /// The approval under which `effect` may go out, or the check that stops it and why.
    pub fn judge(
        &self,
        effect: &Effect,
        capability: &Decision,
        facts: &Facts,
    ) -> Result<Approval, (Check, String)> {
        if self.kill_all || self.killed.contains(&effect.destination) {
            return Err((
                Check::KillSwitch,
                format!("the kill switch for `{}` is on", effect.destination),
            ));
        }
        if !capability.allowed {
            return Err((
                Check::Capability,
                capability
                    .reason
                    .clone()
                    .unwrap_or_else(|| "the capability does not allow it".to_owned()),
            ));
        }
        if let (Some((max, window)), Some(used)) = (
            self.quotas.get(&effect.destination),
            &facts.destination_used,
        ) {
            let used = used.clone().map_err(|reason| (Check::Quota, reason))?;
            if used >= *max {
                return Err((
                    Check::Quota,
                    format!(
                        "`{}` had {used} effects in the last {}s, its quota is {max}",
                        effect.destination,
                        window.as_secs()
                    ),
                ));
            }
        }
        if let (Some((max, window)), Some(used)) = (self.actor_quota, &facts.actor_used) {
            let used = used.clone().map_err(|reason| (Check::Quota, reason))?;
            if used >= max {
                return Err((
                    Check::Quota,
                    format!(
                        "{} had {used} effects in the last {}s, the quota per actor is {max}",
                        actor_label(&effect.actor),
                        window.as_secs()
                    ),
                ));
            }
        }
        let expired = effect
            .approval_expires_at
            .filter(|expires| *expires <= facts.now)
            .filter(|_| effect.approval.is_some());
        let approval = effect
            .approval
            .clone()
            .filter(|_| expired.is_none())
            .or_else(|| self.policies.iter().find_map(|p| p.approve(effect)))
            .ok_or_else(|| match expired {
                Some(expires) => (
                    Check::Approval,
                    format!("its approval expired at {expires} and no policy covers it"),
                ),
                None => (
                    Check::Approval,
                    "no actor approved it and no policy covers it".to_owned(),
                ),
            })?;
        if !facts.known_destination {
            return Err((
                Check::Destination,
                format!("`{}` is not a known destination", effect.destination),
            ));
        }
        Ok(approval)
    }
}

#[cfg(test)]
mod tests;
