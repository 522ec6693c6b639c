//! Leader election over a coordination.k8s.io/v1 Lease, so that two operator replicas are
//! safe: only the holder reconciles.
//!
//! Written here (about a hundred lines on kube's own Api) rather than taken from a crate:
//! the candidates either lag behind kube 5 or bring a runtime of their own, and what we need
//! is small: acquire with a resourceVersion compare-and-set, renew, and stop before anyone
//! else could take over. The holder renews every `renew_every`; if no renewal succeeds for
//! `renew_deadline` (shorter than the lease duration) it gives up, so it stops reconciling
//! before the Lease expires for the others.

use std::time::Duration;

use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta};
use k8s_openapi::jiff::Timestamp;
use kube::api::{Api, PostParams};

/// Timings and names of the election.
#[derive(Clone, Debug)]
pub struct LeaseConfig {
    pub name: String,
    pub identity: String,
    pub duration: Duration,
    pub renew_every: Duration,
    pub renew_deadline: Duration,
    pub retry_every: Duration,
}

impl LeaseConfig {
    pub fn new(name: impl Into<String>, identity: impl Into<String>) -> Self {
        LeaseConfig {
            name: name.into(),
            identity: identity.into(),
            duration: Duration::from_secs(15),
            renew_every: Duration::from_secs(3),
            renew_deadline: Duration::from_secs(10),
            retry_every: Duration::from_secs(2),
        }
    }
}

/// Whether a Lease as read can be taken by `identity` at `now`: it is ours, has no holder,
/// or its holder has not renewed within its duration.
pub fn can_take(spec: Option<&LeaseSpec>, identity: &str, now: Timestamp) -> bool {
    let Some(spec) = spec else { return true };
    match spec.holder_identity.as_deref() {
        None | Some("") => return true,
        Some(holder) if holder == identity => return true,
        Some(_) => {}
    }
    let Some(renewed) = spec.renew_time.as_ref().or(spec.acquire_time.as_ref()) else {
        return true;
    };
    let duration = i64::from(spec.lease_duration_seconds.unwrap_or(15).max(1));
    now.as_second() > renewed.0.as_second() + duration
}

fn our_spec(cfg: &LeaseConfig, previous: Option<&LeaseSpec>, now: Timestamp) -> LeaseSpec {
    let ours = previous.and_then(|p| p.holder_identity.as_deref()) == Some(cfg.identity.as_str());
    let transitions = previous.and_then(|p| p.lease_transitions).unwrap_or(0);
    LeaseSpec {
        holder_identity: Some(cfg.identity.clone()),
        lease_duration_seconds: Some(i32::try_from(cfg.duration.as_secs()).unwrap_or(15)),
        acquire_time: if ours {
            previous.and_then(|p| p.acquire_time.clone())
        } else {
            Some(MicroTime(now))
        },
        renew_time: Some(MicroTime(now)),
        lease_transitions: Some(if ours { transitions } else { transitions + 1 }),
        ..LeaseSpec::default()
    }
}

/// One attempt to take or renew the Lease. Ok(true) when we hold it now; Ok(false) when
/// another holder's Lease is live (or someone else wrote first: the compare-and-set failed).
pub async fn try_acquire(api: &Api<Lease>, cfg: &LeaseConfig) -> Result<bool, kube::Error> {
    let now = Timestamp::now();
    match api.get_opt(&cfg.name).await? {
        None => {
            let lease = Lease {
                metadata: ObjectMeta {
                    name: Some(cfg.name.clone()),
                    ..ObjectMeta::default()
                },
                spec: Some(our_spec(cfg, None, now)),
            };
            match api.create(&PostParams::default(), &lease).await {
                Ok(_) => Ok(true),
                Err(kube::Error::Api(e)) if e.code == 409 => Ok(false),
                Err(e) => Err(e),
            }
        }
        Some(mut lease) => {
            if !can_take(lease.spec.as_ref(), &cfg.identity, now) {
                return Ok(false);
            }
            // replace carries the resourceVersion we read: a compare-and-set.
            lease.spec = Some(our_spec(cfg, lease.spec.as_ref(), now));
            match api.replace(&cfg.name, &PostParams::default(), &lease).await {
                Ok(_) => Ok(true),
                Err(kube::Error::Api(e)) if e.code == 409 => Ok(false),
                Err(e) => Err(e),
            }
        }
    }
}

/// Waits until this replica holds the Lease.
pub async fn acquire(api: &Api<Lease>, cfg: &LeaseConfig) {
    let mut announced = false;
    loop {
        match try_acquire(api, cfg).await {
            Ok(true) => {
                tracing::info!(lease = %cfg.name, identity = %cfg.identity, "holding the lease");
                return;
            }
            Ok(false) => {
                if !announced {
                    tracing::info!(lease = %cfg.name, "another replica holds the lease: standing by");
                    announced = true;
                }
            }
            Err(e) => {
                tracing::warn!(lease = %cfg.name, error = %e, "cannot read or take the lease")
            }
        }
        tokio::time::sleep(cfg.retry_every).await;
    }
}

/// Renews the Lease until a renewal has not succeeded for `renew_deadline`; returns then
/// (the caller stops reconciling at once).
pub async fn hold(api: &Api<Lease>, cfg: &LeaseConfig) -> String {
    let mut last_renewed = tokio::time::Instant::now();
    loop {
        tokio::time::sleep(cfg.renew_every).await;
        match try_acquire(api, cfg).await {
            Ok(true) => last_renewed = tokio::time::Instant::now(),
            Ok(false) => return format!("lease {} was taken by another replica", cfg.name),
            Err(e) => tracing::warn!(lease = %cfg.name, error = %e, "lease renewal failed"),
        }
        if last_renewed.elapsed() >= cfg.renew_deadline {
            return format!(
                "lease {} not renewed for {:?}: giving it up",
                cfg.name, cfg.renew_deadline
            );
        }
    }
}

/// Gives the Lease up on shutdown so another replica takes over without waiting it out.
pub async fn release(api: &Api<Lease>, cfg: &LeaseConfig) {
    if let Ok(Some(mut lease)) = api.get_opt(&cfg.name).await
        && let Some(spec) = lease.spec.as_mut()
        && spec.holder_identity.as_deref() == Some(cfg.identity.as_str())
    {
        spec.holder_identity = None;
        spec.renew_time = None;
        if let Err(e) = api.replace(&cfg.name, &PostParams::default(), &lease).await {
            tracing::warn!(lease = %cfg.name, error = %e, "could not release the lease");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(holder: Option<&str>, renewed_at: i64) -> LeaseSpec {
        LeaseSpec {
            holder_identity: holder.map(str::to_string),
            lease_duration_seconds: Some(15),
            renew_time: Some(MicroTime(Timestamp::from_second(renewed_at).unwrap())),
            ..LeaseSpec::default()
        }
    }

    #[test]
    fn a_live_lease_of_another_holder_cannot_be_taken() {
        let now = Timestamp::from_second(1_000).unwrap();
        assert!(!can_take(Some(&spec(Some("b"), 990)), "a", now));
        assert!(can_take(Some(&spec(Some("b"), 980)), "a", now));
        assert!(can_take(Some(&spec(Some("a"), 999)), "a", now));
        assert!(can_take(Some(&spec(None, 999)), "a", now));
        assert!(can_take(None, "a", now));
    }

    #[test]
    fn taking_over_counts_a_transition_and_renewing_does_not() {
        let cfg = LeaseConfig::new("l", "a");
        let now = Timestamp::from_second(1_000).unwrap();
        let mut theirs = spec(Some("b"), 900);
        theirs.lease_transitions = Some(4);
        let taken = our_spec(&cfg, Some(&theirs), now);
        assert_eq!(taken.lease_transitions, Some(5));
        assert_eq!(taken.holder_identity.as_deref(), Some("a"));
        let renewed = our_spec(&cfg, Some(&taken), now);
        assert_eq!(renewed.lease_transitions, Some(5));
        assert_eq!(renewed.acquire_time, taken.acquire_time);
    }

    #[test]
    fn the_holder_gives_up_before_the_lease_expires() {
        let cfg = LeaseConfig::new("l", "a");
        assert!(cfg.renew_deadline < cfg.duration);
    }
}
