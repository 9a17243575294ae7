//! The checks judged on facts alone: no database, no clock.

use std::time::Duration;

use ops_core::capability::Decision;
use ops_core::egress::{Approval, Check, Reversibility};
use ops_core::envelope::{Actor, ActorId};
use ops_core::id::{CapabilityId, ContentHash, CorrelationId};
use ops_core::time::Timestamp;
use serde_json::json;

use super::{ApprovalPolicy, Facts, Gateway};
use crate::egress::Effect;

fn at(text: &str) -> Timestamp {
    text.parse().expect("a time")
}

fn ada() -> Actor {
    Actor::Human(ActorId::new("ada@example.com").expect("an actor id"))
}

fn effect(approval: Option<Approval>, expires: Option<&str>) -> Effect {
    Effect {
        id: 1,
        command_id: "cmd_0000000000000000000000000000000000000000000000000000000000000001"
            .parse()
            .expect("an id"),
        command_type: "pack.notify.oncall.NotifyOnCall".to_owned(),
        destination: "pager".to_owned(),
        tenant_id: "acme".to_owned(),
        idempotency_key: ContentHash::of_bytes(b"key"),
        request_hash: ContentHash::of_bytes(b"request"),
        request: json!({}),
        actor: ada(),
        capability_id: CapabilityId::of("responders").expect("an id"),
        correlation_id: CorrelationId::of("incident").expect("an id"),
        approval,
        approval_expires_at: expires.map(at),
        compensates: None,
        reversibility: Reversibility::Reversible,
        attempts: 1,
        requested_at: at("2026-12-01T09:00:00Z"),
    }
}

fn allowed() -> Decision {
    Decision {
        allowed: true,
        state_ref: "evt_grant".to_owned(),
        chain: Vec::new(),
        reason: None,
    }
}

fn facts() -> Facts {
    Facts {
        now: at("2026-12-01T10:00:00Z"),
        known_destination: true,
        destination_used: None,
        actor_used: None,
    }
}

fn by_ada() -> Option<Approval> {
    Some(Approval::Actor { actor: ada() })
}

struct ApprovesEverything;

impl ApprovalPolicy for ApprovesEverything {
    fn approve(&self, _: &super::Effect) -> Option<Approval> {
        Some(Approval::Policy {
            policy_id: "notify.sev1".to_owned(),
            policy_version: "1.0.0".to_owned(),
        })
    }
}

fn check_of(result: Result<Approval, (Check, String)>) -> Check {
    result.expect_err("refused").0
}

#[test]
fn an_approved_effect_to_a_known_destination_passes() {
    let approval = Gateway::default()
        .judge(&effect(by_ada(), None), &allowed(), &facts())
        .expect("allowed");
    assert_eq!(approval, Approval::Actor { actor: ada() });
}

#[test]
fn the_kill_switch_stops_before_anything_else() {
    let gateway = Gateway {
        killed: ["pager".to_owned()].into(),
        ..Gateway::default()
    };
    let denied = Decision {
        allowed: false,
        ..allowed()
    };
    assert_eq!(
        check_of(gateway.judge(&effect(by_ada(), None), &denied, &facts())),
        Check::KillSwitch
    );
}

#[test]
fn a_denied_capability_is_refused_with_its_reason() {
    let denied = Decision {
        allowed: false,
        reason: Some("revoked at 09:00".to_owned()),
        ..allowed()
    };
    let refused = Gateway::default()
        .judge(&effect(by_ada(), None), &denied, &facts())
        .expect_err("refused");
    assert_eq!(refused, (Check::Capability, "revoked at 09:00".to_owned()));
}

#[test]
fn quotas_count_what_was_executed_in_their_window() {
    let gateway = Gateway {
        quotas: [("pager".to_owned(), (3, Duration::from_secs(60)))].into(),
        actor_quota: Some((10, Duration::from_secs(60))),
        ..Gateway::default()
    };
    let under = Facts {
        destination_used: Some(Ok(2)),
        actor_used: Some(Ok(9)),
        ..facts()
    };
    assert!(
        gateway
            .judge(&effect(by_ada(), None), &allowed(), &under)
            .is_ok()
    );
    let full = Facts {
        destination_used: Some(Ok(3)),
        ..under
    };
    let refused = gateway
        .judge(&effect(by_ada(), None), &allowed(), &full)
        .expect_err("over quota");
    assert_eq!(refused.0, Check::Quota);
    assert!(refused.1.contains("its quota is 3"), "{}", refused.1);
    let unreadable = Facts {
        actor_used: Some(Err("the quota cannot be read: gone".to_owned())),
        ..facts()
    };
    assert_eq!(
        check_of(gateway.judge(&effect(by_ada(), None), &allowed(), &unreadable)),
        Check::Quota
    );
}

#[test]
fn an_expired_approval_needs_a_policy() {
    let expired = effect(by_ada(), Some("2026-12-01T09:00:00Z"));
    let refused = Gateway::default()
        .judge(&expired, &allowed(), &facts())
        .expect_err("expired");
    assert_eq!(refused.0, Check::Approval);
    assert!(
        refused.1.contains("expired at 2026-12-01T09:00:00"),
        "{}",
        refused.1
    );
    let with_policy = Gateway {
        policies: vec![Box::new(ApprovesEverything)],
        ..Gateway::default()
    };
    assert!(matches!(
        with_policy.judge(&expired, &allowed(), &facts()),
        Ok(Approval::Policy { .. })
    ));
    assert_eq!(
        check_of(Gateway::default().judge(&effect(None, None), &allowed(), &facts())),
        Check::Approval
    );
}

#[test]
fn an_unknown_destination_is_refused_last() {
    let unknown = Facts {
        known_destination: false,
        ..facts()
    };
    assert_eq!(
        check_of(Gateway::default().judge(&effect(by_ada(), None), &allowed(), &unknown)),
        Check::Destination
    );
}

#[test]
fn an_effect_nobody_approved_waits_for_an_approval_until_its_wait_ends() {
    let waiting = Gateway {
        approval_wait: Some(Duration::from_secs(2 * 3600)),
        ..Gateway::default()
    };
    let unapproved = effect(None, None);
    assert!(waiting.awaits_approval(&unapproved, at("2026-12-01T10:59:59Z")));
    assert!(!waiting.awaits_approval(&unapproved, at("2026-12-01T11:00:00Z")));
    assert!(
        !waiting.awaits_approval(
            &effect(by_ada(), Some("2026-12-01T09:30:00Z")),
            at("2026-12-01T10:00:00Z")
        ),
        "an expired approval is refused, not waited on"
    );
    assert!(
        !Gateway::default().awaits_approval(&unapproved, at("2026-12-01T09:00:01Z")),
        "without a wait it is refused at once"
    );
}

/// A wait whose end is past the last representable time never ends: an overflow means
/// "still waiting", never "deadline passed".
#[test]
fn a_wait_longer_than_time_itself_still_waits() {
    let waiting = Gateway {
        approval_wait: Some(Duration::from_secs(u64::MAX)),
        ..Gateway::default()
    };
    assert!(waiting.awaits_approval(&effect(None, None), at("2026-12-01T10:59:59Z")));
    assert_eq!(
        crate::clock::micros(Duration::from_secs(u64::MAX)),
        i64::MAX
    );
    assert_eq!(crate::clock::micros(Duration::from_secs(1)), 1_000_000);
}

#[test]
fn a_destination_s_own_attempts_replace_the_gateway_s() {
    let gateway = Gateway {
        max_attempts: Some(5),
        attempts: [("pager".to_owned(), 2)].into(),
        ..Gateway::default()
    };
    assert_eq!(gateway.attempts_for("pager"), Some(2));
    assert_eq!(gateway.attempts_for("sms"), Some(5));
    assert_eq!(Gateway::default().attempts_for("pager"), None);
}
