//! Leader election with a `coordination.k8s.io/v1` Lease: only the holder reconciles.
//! A replica takes the Lease when it is free, expired or already its own (optimistic
//! concurrency on `resourceVersion`), renews it every `renew`, and reports the loss
//! when a renewal fails for longer than the lease lasts. `release` hands it over on
//! shutdown. Time comes from the clock here (this is the I/O edge), never from the core.

use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta};
use kube::Client;
use kube::api::{Api, PostParams};
use std::time::Duration;

#[derive(Debug, Clone)]
pub struct LeaseConfig {
    pub namespace: String,
    pub name: String,
    pub identity: String,
    pub duration: Duration,
    pub renew: Duration,
}

#[derive(Debug, thiserror::Error)]
pub enum LeaderError {
    #[error(
        "the Lease {namespace}/{name} could not be renewed for {seconds} s; another replica may lead now"
    )]
    Lost {
        namespace: String,
        name: String,
        seconds: u64,
    },
}

/// What the current Lease says, relative to us.
#[derive(Debug, PartialEq, Eq)]
pub enum LeaseState {
    /// No Lease object yet.
    Absent,
    /// Held by us, or free, or expired: ours to take.
    Takeable,
    /// Held by another live replica.
    HeldBy(String),
}

/// Decides from a Lease and the time whether we may take it (pure).
pub fn lease_state(lease: Option<&Lease>, identity: &str, now: jiff::Timestamp) -> LeaseState {
    let Some(lease) = lease else {
        return LeaseState::Absent;
    };
    let spec = lease.spec.clone().unwrap_or_default();
    let holder = spec.holder_identity.unwrap_or_default();
    if holder.is_empty() || holder == identity {
        return LeaseState::Takeable;
    }
    let duration =
        jiff::SignedDuration::from_secs(i64::from(spec.lease_duration_seconds.unwrap_or(15)));
    let renewed = spec
        .renew_time
        .map(|t| t.0)
        .unwrap_or(jiff::Timestamp::UNIX_EPOCH);
    if renewed
        .checked_add(duration)
        .is_ok_and(|expiry| expiry < now)
    {
        LeaseState::Takeable
    } else {
        LeaseState::HeldBy(holder)
    }
}

fn our_spec(config: &LeaseConfig, previous: Option<&LeaseSpec>, now: jiff::Timestamp) -> LeaseSpec {
    let ours =
        previous.and_then(|p| p.holder_identity.as_deref()) == Some(config.identity.as_str());
    let transitions = previous.and_then(|p| p.lease_transitions).unwrap_or(0);
    LeaseSpec {
        holder_identity: Some(config.identity.clone()),
        lease_duration_seconds: Some(i32::try_from(config.duration.as_secs()).unwrap_or(15)),
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

/// One attempt to take or renew the Lease. `Ok(true)` when we hold it now.
async fn try_hold(api: &Api<Lease>, config: &LeaseConfig) -> Result<bool, kube::Error> {
    let now = jiff::Timestamp::now();
    let current = api.get_opt(&config.name).await?;
    match lease_state(current.as_ref(), &config.identity, now) {
        LeaseState::HeldBy(_) => Ok(false),
        LeaseState::Absent => {
            let lease = Lease {
                metadata: ObjectMeta {
                    name: Some(config.name.clone()),
                    ..ObjectMeta::default()
                },
                spec: Some(our_spec(config, None, now)),
            };
            match api.create(&PostParams::default(), &lease).await {
                Ok(_) => Ok(true),
                Err(kube::Error::Api(status)) if status.code == 409 => Ok(false),
                Err(error) => Err(error),
            }
        }
        LeaseState::Takeable => {
            let Some(mut lease) = current else {
                return Ok(false);
            };
            lease.spec = Some(our_spec(config, lease.spec.as_ref(), now));
            match api
                .replace(&config.name, &PostParams::default(), &lease)
                .await
            {
                Ok(_) => Ok(true),
                Err(kube::Error::Api(status)) if status.code == 409 => Ok(false),
                Err(error) => Err(error),
            }
        }
    }
}

/// Waits until this replica holds the Lease.
pub async fn acquire(client: &Client, config: &LeaseConfig) {
    let api = Api::<Lease>::namespaced(client.clone(), &config.namespace);
    let mut announced = false;
    loop {
        match try_hold(&api, config).await {
            Ok(true) => {
                tracing::info!(lease = %config.name, identity = %config.identity, "acquired the leader Lease");
                return;
            }
            Ok(false) if !announced => {
                tracing::info!(lease = %config.name, "another replica leads; standing by");
                announced = true;
            }
            Ok(false) => {}
            Err(error) => {
                tracing::warn!(lease = %config.name, %error, "reading the leader Lease failed; retrying")
            }
        }
        tokio::time::sleep(config.renew).await;
    }
}

/// Renews the Lease until a renewal has failed for longer than the lease lasts.
pub async fn hold(client: &Client, config: &LeaseConfig) -> LeaderError {
    let api = Api::<Lease>::namespaced(client.clone(), &config.namespace);
    let mut last_renewed = tokio::time::Instant::now();
    loop {
        tokio::time::sleep(config.renew).await;
        match try_hold(&api, config).await {
            Ok(true) => last_renewed = tokio::time::Instant::now(),
            Ok(false) => {
                tracing::warn!(lease = %config.name, "the Lease is held by another replica")
            }
            Err(error) => tracing::warn!(lease = %config.name, %error, "renewing the Lease failed"),
        }
        if last_renewed.elapsed() > config.duration {
            return LeaderError::Lost {
                namespace: config.namespace.clone(),
                name: config.name.clone(),
                seconds: config.duration.as_secs(),
            };
        }
    }
}

/// Gives the Lease up on shutdown so a standby replica takes over at once.
pub async fn release(client: &Client, config: &LeaseConfig) {
    let api = Api::<Lease>::namespaced(client.clone(), &config.namespace);
    let Ok(Some(mut lease)) = api.get_opt(&config.name).await else {
        return;
    };
    let Some(spec) = lease.spec.as_mut() else {
        return;
    };
    if spec.holder_identity.as_deref() != Some(config.identity.as_str()) {
        return;
    }
    spec.holder_identity = None;
    if let Err(error) = api
        .replace(&config.name, &PostParams::default(), &lease)
        .await
    {
        tracing::warn!(lease = %config.name, %error, "releasing the Lease failed; it expires on its own");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lease(holder: &str, renewed_at: i64) -> Lease {
        Lease {
            metadata: ObjectMeta::default(),
            spec: Some(LeaseSpec {
                holder_identity: Some(holder.to_owned()),
                lease_duration_seconds: Some(15),
                renew_time: Some(MicroTime(
                    jiff::Timestamp::from_second(renewed_at).unwrap_or(jiff::Timestamp::UNIX_EPOCH),
                )),
                ..LeaseSpec::default()
            }),
        }
    }

    fn at(second: i64) -> jiff::Timestamp {
        jiff::Timestamp::from_second(second).unwrap_or(jiff::Timestamp::UNIX_EPOCH)
    }

    /// A live Lease of another replica is respected; an expired or own or free one is taken.
    #[test]
    fn lease_decision_table() {
        assert_eq!(lease_state(None, "me", at(100)), LeaseState::Absent);
        assert_eq!(
            lease_state(Some(&lease("other", 100)), "me", at(110)),
            LeaseState::HeldBy("other".to_owned())
        );
        assert_eq!(
            lease_state(Some(&lease("other", 100)), "me", at(116)),
            LeaseState::Takeable
        );
        assert_eq!(
            lease_state(Some(&lease("me", 100)), "me", at(101)),
            LeaseState::Takeable
        );
        assert_eq!(
            lease_state(Some(&lease("", 100)), "me", at(101)),
            LeaseState::Takeable
        );
    }
}
