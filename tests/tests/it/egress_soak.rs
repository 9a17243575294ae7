//! Randomized crash scenarios for the outbox and the egress gateway. Each scenario pages
//! several responders and runs one to three dispatchers with short leases against a pager
//! that dedupes by idempotency key, while faults strike at random: the destination is
//! unreachable before the request (a crash before the call), the answer is lost after it
//! (a crash after the call, before the receipt), or the call outlasts the lease (a claim
//! lost to another dispatcher). Afterwards: nothing lost, nothing done twice, every effect
//! executed with exactly one receipt, every saga final.
//!
//! `cargo test` runs a few scenarios per backend; `cargo xtask soak` runs
//! `OPS_SOAK_SCENARIOS` (1,000 by default there).

use std::sync::{Arc, Mutex};
use std::time::Duration;

use ops_core::capability::Scope;
use ops_core::contract::Contract;
use ops_core::egress::{Approval, EffectState, EgressExecuted};
use ops_core::id::ContentHash;
use ops_core_runtime::egress::{ApprovalPolicy, BoxFuture, Dispatcher, Effect, Executor, Gateway};
use ops_tests::commands::{Pager, authority, paged};
use ops_tests::on_both_backends;
use ops_tests::storage::Backend;
use proptest::prelude::*;
use proptest::strategy::ValueTree;
use proptest::test_runner::{Config, TestRunner};
use serde_json::Value;

#[derive(Clone, Copy, Debug)]
enum Fault {
    None,
    BeforeCall,
    AfterCall,
    OutlastsLease,
}

/// The pager: does each effect once per key, counts every request, and fails as told.
#[derive(Clone)]
struct FaultyPager {
    pager: Pager,
    faults: Arc<Mutex<Vec<Fault>>>,
    lease: Duration,
}

impl Executor for FaultyPager {
    fn execute<'a>(
        &'a self,
        key: &'a ContentHash,
        request: &'a Value,
    ) -> BoxFuture<'a, Result<(), String>> {
        Box::pin(async move {
            let fault = self.faults.lock().unwrap().pop().unwrap_or(Fault::None);
            match fault {
                Fault::BeforeCall => return Err("the pager is unreachable".to_owned()),
                Fault::OutlastsLease => tokio::time::sleep(self.lease * 3).await,
                Fault::None | Fault::AfterCall => {}
            }
            self.pager.execute(key, request).await?;
            match fault {
                Fault::AfterCall => Err("connection reset after the request was sent".to_owned()),
                _ => Ok(()),
            }
        })
    }
}

struct AlwaysApprove;

impl ApprovalPolicy for AlwaysApprove {
    fn approve(&self, _: &Effect) -> Option<Approval> {
        Some(Approval::Policy {
            policy_id: "soak".to_owned(),
            policy_version: "1.0.0".to_owned(),
        })
    }
}

/// A scenario: how many pages, dispatchers and what strikes each call.
fn scenario() -> impl Strategy<Value = (usize, usize, Vec<Fault>)> {
    let fault = prop_oneof![
        4 => Just(Fault::None),
        1 => Just(Fault::BeforeCall),
        1 => Just(Fault::AfterCall),
        1 => Just(Fault::OutlastsLease),
    ];
    (1usize..8, 1usize..4, prop::collection::vec(fault, 0..12))
}

fn scenarios(backend: Backend) -> u32 {
    std::env::var("OPS_SOAK_SCENARIOS")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(match backend {
            Backend::Sqlite => 12,
            Backend::Postgres => 6,
        })
}

on_both_backends!(crashes_at_any_step_lose_nothing_and_do_nothing_twice);

async fn crashes_at_any_step_lose_nothing_and_do_nothing_twice(backend: Backend) {
    let count = scenarios(backend);
    let mut runner = TestRunner::new(Config {
        cases: count,
        ..Config::default()
    });
    for case in 0..count {
        let (pages, dispatchers, faults) = scenario().new_tree(&mut runner).unwrap().current();
        let (store, _) = paged(backend, &format!("soak_{case}"), pages).await;
        let lease = Duration::from_millis(15);
        let pager = FaultyPager {
            pager: Pager::default(),
            faults: Arc::new(Mutex::new(faults.clone())),
            lease,
        };
        let tasks: Vec<_> = (0..dispatchers)
            .map(|n| {
                let dispatcher = Dispatcher::new(
                    store.clone(),
                    &format!("d{n}"),
                    Gateway {
                        policies: vec![Box::new(AlwaysApprove)],
                        ..Gateway::default()
                    },
                    authority(Scope::everything()),
                )
                .with_executor("pager", Box::new(pager.clone()))
                .with_lease(lease);
                let store = store.clone();
                tokio::spawn(async move {
                    for _ in 0..400 {
                        dispatcher.dispatch(3).await.unwrap();
                        let executed = store
                            .read_by_type(EgressExecuted::TYPE)
                            .await
                            .unwrap()
                            .len();
                        if executed == pages {
                            return;
                        }
                        tokio::time::sleep(Duration::from_millis(5)).await;
                    }
                })
            })
            .collect();
        for task in tasks {
            task.await.unwrap();
        }
        let context =
            format!("case {case}: {pages} pages, {dispatchers} dispatchers, faults {faults:?}");
        assert_eq!(
            pager.pager.effects(),
            pages,
            "an effect was lost; {context}"
        );
        let receipts = store.read_by_type(EgressExecuted::TYPE).await.unwrap();
        assert_eq!(receipts.len(), pages, "receipts; {context}");
        let effects = ops_core_runtime::egress::effects(&store).await.unwrap();
        assert_eq!(effects.len(), pages, "{context}");
        assert!(
            effects.iter().all(|e| e.state == EffectState::Executed),
            "every saga ends executed; {context}: {effects:?}"
        );
        store.db().close().await;
    }
}
