//! The lease census behind the metrics gauges: taken once, then served while a newer one is
//! taken in the background, so a scrape never waits for a pass once the first exists.

// Tests and their helpers may unwrap: a panic is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::Duration;

use common::Env;
use lessor_core::metrics::Rendered;

async fn num_leases(env: &Env) -> f64 {
    let Rendered::Text(text) = env.core.metrics.render(&env.core, true).await.unwrap() else {
        panic!("prometheus text expected");
    };
    text.lines()
        .find(|l| l.starts_with("vault_expire_num_leases "))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no vault_expire_num_leases in:\n{text}"))
}

#[tokio::test]
async fn a_stale_census_is_served_while_a_new_one_is_taken() {
    let env = Env::new().await;
    env.issue().await;
    assert_eq!(
        num_leases(&env).await,
        1.0,
        "the first scrape takes a census"
    );
    env.issue().await;
    assert_eq!(num_leases(&env).await, 1.0, "a fresh census is reused");

    env.core.metrics.age_census();
    assert_eq!(
        num_leases(&env).await,
        1.0,
        "a stale census is served at once"
    );
    // The refresh it started lands without another scrape waiting for it.
    let mut n = 1.0;
    for _ in 0..5000 {
        tokio::time::sleep(Duration::from_millis(1)).await;
        n = num_leases(&env).await;
        if n == 2.0 {
            break;
        }
    }
    assert_eq!(n, 2.0, "the refreshed census counts the second lease");
}
