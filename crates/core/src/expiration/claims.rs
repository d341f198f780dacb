//! Renewal against revocation. A renewal reads, extends and writes back a lease; a
//! revocation reads it, decides, calls the engine and removes it. Without order between
//! them a client could be told its lease was renewed and lose the credential a moment
//! later, or a renewal could write back the record of a lease just revoked.
//!
//! So each holds a `Claim` on the lease: a renewal from its read to its write, a revocation
//! from before its read until the removal is durable (or the failure recorded). A revocation
//! waits for a renewal in flight, then reads what it wrote; a renewal waits for another
//! renewal and is refused while a revocation holds the lease. Revocations do not exclude
//! each other (a prefix job and the scheduler may both be at one lease; revoking is
//! idempotent).
//!
//! Issuance holds its reservation the same way, from reserve until the lease is activated
//! or aborted. Without that, a reservation whose deadline passed while the engine was still
//! creating (a slow upstream) could be revoked by the scheduler in the very moment it was
//! activated: the client handed a credential already deleted, or the credential created
//! after its planned name was revoked and never revoked again. A revocation waits for the
//! issuance, then reads the active lease; the scheduler does not wait (a hung request must
//! not hold expiries back) but looks again a moment later.
//!
//! The uncontended path is one map operation under a short lock, with no await: a burst of
//! expiries claims 100k leases without yielding to the runtime more than it did before.

use std::collections::HashMap;
use std::collections::hash_map::Entry;
use std::sync::Arc;

use foldhash::fast::RandomState;
use tokio::sync::Notify;

/// Lease ids to holds; the id is allocated once, shared by the map and the claim.
type Held = HashMap<Arc<str>, Hold, RandomState>;

#[derive(Default)]
pub struct Claims {
    held: parking_lot::Mutex<Held>,
    /// Woken whenever a claim drops, so a waiter looks again.
    released: Notify,
}

enum Hold {
    Renewing,
    /// The request that reserved the lease is creating its credential.
    Issuing,
    /// How many revocations hold the lease.
    Revoking(u32),
}

/// Why a renewal cannot proceed.
#[derive(Debug, PartialEq, Eq)]
pub struct BeingRevoked;

/// Why the scheduler cannot revoke a lease now.
#[derive(Debug, PartialEq, Eq)]
pub struct BeingIssued;

impl Claims {
    /// Holds a lease just reserved until its request activates or aborts it. The id is new
    /// (random), so nothing else can hold it yet.
    pub fn issuance(self: &Arc<Self>, id: &str) -> Claim {
        let key: Arc<str> = id.into();
        self.held.lock().insert(key.clone(), Hold::Issuing);
        self.claim(key)
    }

    /// Holds the lease for a renewal, after any other renewal of it; refused while a
    /// revocation holds it.
    pub async fn renewal(self: &Arc<Self>, id: &str) -> Result<Claim, BeingRevoked> {
        let key = self
            .take(|held| match held.get(id) {
                None => {
                    let key: Arc<str> = id.into();
                    held.insert(key.clone(), Hold::Renewing);
                    Some(Ok(key))
                }
                Some(Hold::Renewing | Hold::Issuing) => None,
                Some(Hold::Revoking(_)) => Some(Err(BeingRevoked)),
            })
            .await?;
        Ok(self.claim(key))
    }

    /// Holds the lease for a revocation, once any renewal or issuance in flight has landed.
    pub async fn revocation(self: &Arc<Self>, id: &str) -> Claim {
        // Held for an issuance (`Err`): wait for it as for a renewal.
        let key = self
            .take(|held| Self::revoking(held, id).and_then(Result::ok))
            .await;
        self.claim(key)
    }

    /// As `revocation`, but refused at once while the lease is being issued.
    pub async fn revocation_unless_issuing(
        self: &Arc<Self>,
        id: &str,
    ) -> Result<Claim, BeingIssued> {
        let key = self.take(|held| Self::revoking(held, id)).await?;
        Ok(self.claim(key))
    }

    /// One attempt at a revocation's hold: `None` to wait for a renewal, `Err` when an
    /// issuance holds the lease.
    fn revoking(held: &mut Held, id: &str) -> Option<Result<Arc<str>, BeingIssued>> {
        match held.get_key_value(id) {
            None => {
                let key: Arc<str> = id.into();
                held.insert(key.clone(), Hold::Revoking(1));
                Some(Ok(key))
            }
            Some((_, Hold::Renewing)) => None,
            Some((_, Hold::Issuing)) => Some(Err(BeingIssued)),
            Some((key, Hold::Revoking(n))) => {
                let (key, n) = (key.clone(), *n + 1);
                held.insert(key.clone(), Hold::Revoking(n));
                Some(Ok(key))
            }
        }
    }

    /// Runs `attempt` under the lock until it answers (`None`: wait for a release).
    async fn take<T>(&self, attempt: impl Fn(&mut Held) -> Option<T>) -> T {
        loop {
            if let Some(t) = attempt(&mut self.held.lock()) {
                return t;
            }
            let released = self.released.notified();
            tokio::pin!(released);
            // Registered before looking again, so a release in between is not missed.
            released.as_mut().enable();
            if let Some(t) = attempt(&mut self.held.lock()) {
                return t;
            }
            released.await;
        }
    }

    fn claim(self: &Arc<Self>, id: Arc<str>) -> Claim {
        Claim {
            claims: self.clone(),
            id,
        }
    }
}

/// A hold on one lease, released when dropped.
pub struct Claim {
    claims: Arc<Claims>,
    id: Arc<str>,
}

impl Drop for Claim {
    fn drop(&mut self) {
        {
            let mut held = self.claims.held.lock();
            if let Entry::Occupied(mut o) = held.entry(self.id.clone()) {
                match o.get_mut() {
                    Hold::Revoking(n) if *n > 1 => *n -= 1,
                    _ => {
                        o.remove();
                    }
                }
            }
        }
        self.claims.released.notify_waiters();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn revocations_stack_and_refuse_renewals_until_the_last_drops() {
        let c = Arc::new(Claims::default());
        let one = c.revocation("a").await;
        let two = c.revocation("a").await;
        assert_eq!(c.renewal("a").await.err(), Some(BeingRevoked));
        let other = c.renewal("b").await.expect("another lease");
        drop(one);
        assert_eq!(c.renewal("a").await.err(), Some(BeingRevoked));
        drop(two);
        drop(other);
        let renewing = c.renewal("a").await.expect("free again");
        drop(renewing);
        assert!(c.held.lock().is_empty());
    }

    #[tokio::test]
    async fn a_revocation_waits_for_the_renewal_in_flight() {
        let c = Arc::new(Claims::default());
        let renewing = c.renewal("a").await.unwrap();
        let waiter = {
            let c = c.clone();
            tokio::spawn(async move { c.revocation("a").await })
        };
        tokio::task::yield_now().await;
        assert!(
            !waiter.is_finished(),
            "waits while the renewal holds the lease"
        );
        drop(renewing);
        let revoking = waiter.await.unwrap();
        assert_eq!(c.renewal("a").await.err(), Some(BeingRevoked));
        drop(revoking);
    }

    #[tokio::test]
    async fn an_issuance_holds_revocations_and_renewals_until_it_lands() {
        let c = Arc::new(Claims::default());
        let issuing = c.issuance("a");
        assert_eq!(
            c.revocation_unless_issuing("a").await.err(),
            Some(BeingIssued)
        );
        let revoker = {
            let c = c.clone();
            tokio::spawn(async move { c.revocation("a").await })
        };
        let renewer = {
            let c = c.clone();
            tokio::spawn(async move { c.renewal("a").await.is_ok() })
        };
        tokio::task::yield_now().await;
        assert!(
            !revoker.is_finished(),
            "a revocation waits for the issuance"
        );
        assert!(!renewer.is_finished(), "a renewal waits for the issuance");
        drop(issuing);
        let revoking = revoker.await.unwrap();
        drop(revoking);
        renewer.await.unwrap();
        assert!(c.held.lock().is_empty());
    }
}
