//! Pure client-lease verdict (`spec.clientLease`): from the spec, the Lease
//! `<cluster>-client` as read (its holder and last renewal, or none), the cluster's
//! creation time and now, whether the client that created the cluster still holds it.
//!
//! The cluster is deleted once `renewTime + durationSeconds` has passed (the duration is
//! the cluster's, not the Lease's). Every lease counts from the cluster's creation at the
//! earliest: a Lease that does not exist yet, was never renewed, or was last renewed
//! before the cluster was created (one left by an earlier cluster of the same name, not
//! yet collected) has `durationSeconds` from the creation. A renewal from the future (the
//! client's clock ahead) holds until it is `durationSeconds` in the past. No client, no
//! clock: time is an argument.

use super::events::Note;
use crate::crd::{ClientLease, ClientLeaseStatus};
use jiff::{SignedDuration, Timestamp};
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use std::time::Duration;

/// How long after the expiry instant the operator looks again: the verdict is `Expired`
/// only once the instant has passed.
pub const AFTER_EXPIRY: Duration = Duration::from_secs(1);

/// What the Lease says.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Seen {
    /// `spec.holderIdentity`.
    pub holder: Option<String>,
    /// `spec.renewTime`, else `spec.acquireTime`; `None`: never renewed.
    pub renewed: Option<Timestamp>,
}

/// What a read Lease says.
pub fn seen(lease: &Lease) -> Seen {
    let spec = lease.spec.as_ref();
    Seen {
        holder: spec.and_then(|s| s.holder_identity.clone()),
        renewed: spec
            .and_then(|s| s.renew_time.as_ref().or(s.acquire_time.as_ref()))
            .map(|t| t.0),
    }
}

/// Whether the cluster's client still holds its lease.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// No `spec.clientLease`: the cluster lives without a client.
    NoLease,
    /// Held (or within the grace after the cluster's creation) until `expires_at`.
    Held {
        holder: Option<String>,
        renewed: Option<Timestamp>,
        expires_at: Timestamp,
    },
    /// Not renewed in time: delete the cluster.
    Expired(Expiry),
}

/// An expired lease, for the Event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Expiry {
    /// The Lease's holder, when it exists and names one.
    pub holder: Option<String>,
    /// The last renewal seen; `None`: the Lease does not exist or was never renewed.
    pub last_renewal: Option<Timestamp>,
    pub duration_seconds: i64,
    pub expired_at: Timestamp,
    /// The Lease does not exist at all.
    pub missing: bool,
}

/// The verdict for `spec` given the Lease (`None`: it does not exist), the cluster's
/// `creationTimestamp` and `now`. Expired strictly after `start + duration`.
pub fn judge(
    spec: Option<&ClientLease>,
    lease: Option<&Seen>,
    created: Option<Timestamp>,
    now: Timestamp,
) -> Verdict {
    let Some(spec) = spec else {
        return Verdict::NoLease;
    };
    let renewed = lease.and_then(|l| l.renewed);
    let holder = lease.and_then(|l| l.holder.clone());
    let start = match (renewed, created) {
        (Some(renewed), Some(created)) => renewed.max(created),
        (Some(renewed), None) => renewed,
        (None, Some(created)) => created,
        // Nothing to count from (a cluster not read from the API server): never expire.
        (None, None) => now,
    };
    let expires_at = start
        .checked_add(SignedDuration::from_secs(spec.duration_seconds))
        .unwrap_or(Timestamp::MAX);
    if now > expires_at {
        Verdict::Expired(Expiry {
            holder,
            last_renewal: renewed,
            duration_seconds: spec.duration_seconds,
            expired_at: expires_at,
            missing: lease.is_none(),
        })
    } else {
        Verdict::Held {
            holder,
            renewed,
            expires_at,
        }
    }
}

/// How long until the operator must look again so an expiry is acted on promptly:
/// `AFTER_EXPIRY` past the expiry instant. `None` unless held.
pub fn wait(verdict: &Verdict, now: Timestamp) -> Option<Duration> {
    let Verdict::Held { expires_at, .. } = verdict else {
        return None;
    };
    let left = Duration::try_from(expires_at.duration_since(now)).unwrap_or(Duration::ZERO);
    Some(left + AFTER_EXPIRY)
}

/// `status.clientLease`: what was seen and when it expires (`None` without a lease).
pub fn status(verdict: &Verdict) -> Option<ClientLeaseStatus> {
    match verdict {
        Verdict::NoLease => None,
        Verdict::Held {
            holder,
            renewed,
            expires_at,
        } => Some(ClientLeaseStatus {
            holder: holder.clone(),
            renew_time: renewed.map(Time),
            expires_at: Some(Time(*expires_at)),
        }),
        Verdict::Expired(expiry) => Some(ClientLeaseStatus {
            holder: expiry.holder.clone(),
            renew_time: expiry.last_renewal.map(Time),
            expires_at: Some(Time(expiry.expired_at)),
        }),
    }
}

/// The Warning Event of an expired lease: which Lease, its holder, its last renewal, the
/// duration, what probably happened and how to keep a cluster without a client.
pub fn note(lease_name: &str, expiry: &Expiry) -> Note {
    let d = expiry.duration_seconds;
    let what = match (&expiry.holder, expiry.last_renewal, expiry.missing) {
        (_, _, true) => format!(
            "the client lease (Lease {lease_name}) does not exist {d} s after the cluster was \
             created"
        ),
        (holder, Some(renewed), false) => format!(
            "the client lease (Lease {lease_name}, held by {}) was last renewed at {renewed:.0}",
            holder.as_deref().unwrap_or("no one")
        ),
        (holder, None, false) => format!(
            "the client lease (Lease {lease_name}, held by {}) was never renewed",
            holder.as_deref().unwrap_or("no one")
        ),
    };
    Note {
        warning: true,
        reason: "LeaseExpired",
        action: "DeleteCluster",
        note: format!(
            "deleting the cluster: {what}; it expired at {:.0} (spec.clientLease.durationSeconds \
             is {d} s). The client that created the cluster stopped renewing its lease (process \
             exited?); set spec.clientLease to null to keep a cluster without a client",
            expiry.expired_at
        ),
        distinct: false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::coordination::v1::LeaseSpec;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::MicroTime;

    const D: i64 = 20;

    fn at(seconds: i64) -> Timestamp {
        Timestamp::from_second(1_700_000_000 + seconds).unwrap_or(Timestamp::UNIX_EPOCH)
    }

    fn spec() -> ClientLease {
        ClientLease {
            duration_seconds: D,
        }
    }

    fn renewed_at(seconds: i64) -> Seen {
        Seen {
            holder: Some("laptop/42".to_owned()),
            renewed: Some(at(seconds)),
        }
    }

    fn expiry(verdict: Verdict) -> Expiry {
        match verdict {
            Verdict::Expired(expiry) => expiry,
            other => unreachable!("not expired: {other:?}"),
        }
    }

    /// Without spec.clientLease nothing is judged, whatever the Lease says.
    #[test]
    fn no_spec_is_no_lease() {
        assert_eq!(
            judge(None, Some(&renewed_at(0)), Some(at(0)), at(10_000)),
            Verdict::NoLease
        );
        assert_eq!(judge(None, None, Some(at(0)), at(10_000)), Verdict::NoLease);
        assert_eq!(wait(&Verdict::NoLease, at(0)), None);
        assert_eq!(status(&Verdict::NoLease), None);
    }

    /// A renewed lease holds until renewTime + duration, inclusive; one second later it
    /// has expired, naming the holder, the renewal and the instant.
    #[test]
    fn renewed_lease_holds_until_renewal_plus_duration() {
        let lease = renewed_at(100);
        let held = judge(Some(&spec()), Some(&lease), Some(at(0)), at(100 + D));
        assert_eq!(
            held,
            Verdict::Held {
                holder: Some("laptop/42".to_owned()),
                renewed: Some(at(100)),
                expires_at: at(100 + D),
            }
        );
        assert_eq!(wait(&held, at(100 + D)), Some(AFTER_EXPIRY));
        assert_eq!(
            wait(&held, at(105)),
            Some(Duration::from_secs(15) + AFTER_EXPIRY)
        );
        let gone = expiry(judge(Some(&spec()), Some(&lease), Some(at(0)), at(101 + D)));
        assert_eq!(gone.holder.as_deref(), Some("laptop/42"));
        assert_eq!(gone.last_renewal, Some(at(100)));
        assert_eq!(gone.expired_at, at(100 + D));
        assert!(!gone.missing);
    }

    /// A Lease that does not exist gets the duration from the cluster's creation: held
    /// within it (the client creates it right after the cluster), expired after.
    #[test]
    fn missing_lease_has_a_grace_from_creation() {
        let held = judge(Some(&spec()), None, Some(at(0)), at(D));
        assert!(
            matches!(held, Verdict::Held { expires_at, renewed: None, .. } if expires_at == at(D)),
            "{held:?}"
        );
        let gone = expiry(judge(Some(&spec()), None, Some(at(0)), at(D + 1)));
        assert!(gone.missing);
        assert_eq!((gone.holder, gone.last_renewal), (None, None));
    }

    /// A Lease that exists but was never renewed counts from the creation too.
    #[test]
    fn never_renewed_lease_counts_from_creation() {
        let lease = Seen {
            holder: Some("pod/1".to_owned()),
            renewed: None,
        };
        assert!(matches!(
            judge(Some(&spec()), Some(&lease), Some(at(50)), at(50 + D)),
            Verdict::Held { .. }
        ));
        let gone = expiry(judge(Some(&spec()), Some(&lease), Some(at(50)), at(51 + D)));
        assert!(!gone.missing);
        assert_eq!(gone.last_renewal, None);
    }

    /// A renewal older than the cluster (a Lease left by an earlier cluster of the same
    /// name) does not cut the new cluster's grace short.
    #[test]
    fn stale_renewal_before_creation_counts_from_creation() {
        let lease = renewed_at(0);
        let verdict = judge(Some(&spec()), Some(&lease), Some(at(1_000)), at(1_000 + D));
        assert!(
            matches!(verdict, Verdict::Held { expires_at, .. } if expires_at == at(1_000 + D)),
            "{verdict:?}"
        );
    }

    /// Clock edges: a renewal from the future (the client's clock ahead) holds until it
    /// is the duration in the past; without any time to count from nothing expires.
    #[test]
    fn clock_edges() {
        let ahead = renewed_at(500);
        let verdict = judge(Some(&spec()), Some(&ahead), Some(at(0)), at(100));
        assert!(matches!(verdict, Verdict::Held { .. }), "{verdict:?}");
        assert_eq!(
            wait(&verdict, at(100)),
            Some(Duration::from_secs(400 + D as u64) + AFTER_EXPIRY)
        );
        assert!(matches!(
            judge(Some(&spec()), Some(&ahead), Some(at(0)), at(501 + D)),
            Verdict::Expired(_)
        ));
        let unknown = judge(Some(&spec()), None, None, at(1_000_000));
        assert!(matches!(unknown, Verdict::Held { .. }), "{unknown:?}");
        // A verdict computed a moment ago never asks for a wait below the margin.
        let held = judge(Some(&spec()), Some(&renewed_at(0)), Some(at(0)), at(D));
        assert_eq!(wait(&held, at(D + 1)), Some(AFTER_EXPIRY));
    }

    /// The spec's duration decides, not the Lease's leaseDurationSeconds; renewTime is
    /// preferred to acquireTime.
    #[test]
    fn seen_reads_holder_and_renewal() {
        let lease = Lease {
            spec: Some(LeaseSpec {
                holder_identity: Some("nb/7".to_owned()),
                lease_duration_seconds: Some(3_600),
                acquire_time: Some(MicroTime(at(0))),
                renew_time: Some(MicroTime(at(10))),
                ..LeaseSpec::default()
            }),
            ..Lease::default()
        };
        let seen = seen(&lease);
        assert_eq!(seen, renewed_at(10).with_holder("nb/7"));
        assert!(matches!(
            judge(Some(&spec()), Some(&seen), Some(at(0)), at(11 + D)),
            Verdict::Expired(_)
        ));
        let acquired_only = Lease {
            spec: Some(LeaseSpec {
                acquire_time: Some(MicroTime(at(3))),
                ..LeaseSpec::default()
            }),
            ..Lease::default()
        };
        assert_eq!(super::seen(&acquired_only).renewed, Some(at(3)));
        assert_eq!(super::seen(&Lease::default()), Seen::default());
    }

    impl Seen {
        fn with_holder(mut self, holder: &str) -> Self {
            self.holder = Some(holder.to_owned());
            self
        }
    }

    /// status.clientLease shows the holder, the renewal seen and the expiry.
    #[test]
    fn status_shows_holder_renewal_and_expiry() {
        let held = judge(Some(&spec()), Some(&renewed_at(5)), Some(at(0)), at(6));
        assert_eq!(
            status(&held),
            Some(ClientLeaseStatus {
                holder: Some("laptop/42".to_owned()),
                renew_time: Some(Time(at(5))),
                expires_at: Some(Time(at(5 + D))),
            })
        );
    }

    /// The Event names the Lease, its holder, the last renewal, the duration, the likely
    /// cause and the fix; a missing Lease says so.
    #[test]
    fn note_names_holder_renewal_duration_and_fix() {
        let gone = expiry(judge(
            Some(&spec()),
            Some(&renewed_at(0)),
            Some(at(0)),
            at(60),
        ));
        let note = note("demo-client", &gone);
        assert!(note.warning);
        assert_eq!(
            (note.reason, note.action),
            ("LeaseExpired", "DeleteCluster")
        );
        for needle in [
            "Lease demo-client, held by laptop/42",
            "last renewed at 2023-11-14T22:13:20Z",
            "expired at 2023-11-14T22:13:40Z",
            "durationSeconds is 20 s",
            "stopped renewing its lease (process exited?)",
            "set spec.clientLease to null to keep a cluster without a client",
        ] {
            assert!(
                note.note.contains(needle),
                "{needle:?} not in {}",
                note.note
            );
        }
        let missing = expiry(judge(Some(&spec()), None, Some(at(0)), at(60)));
        let text = super::note("demo-client", &missing).note;
        assert!(
            text.contains("(Lease demo-client) does not exist 20 s after the cluster was created"),
            "{text}"
        );
    }
}
