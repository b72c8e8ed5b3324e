//! Pure: what one `ShoalJob` needs next, from the resolved job, its previous status, what
//! exists now (its cluster, its runner pods, the last log lines of a runner when the plan
//! asked for them) and the time. The answer is data — actions, the new status, Events and
//! when to look again — carried out by `super::reconcile`. No client, no clock.
//!
//! The life of a job: create the cluster → once it is Running, create runner attempt 1 →
//! the runner succeeds (`Complete`), or fails and is retried after a backoff until
//! `backoffLimit` is spent (`Failed`, `BackoffLimitExceeded`); past
//! `activeDeadlineSeconds` a running runner is deleted (`Failed`, `DeadlineExceeded`); a
//! cluster that cannot be made fails the job (`ClusterFailed`, `ClusterNameTaken`). Once
//! finished the cluster is deleted, and after `ttlSecondsAfterFinished` the job.

use super::build::ResolvedJob;
use crate::crd::{JobPhase, Phase, ShoalJobStatus};
use crate::names;
use crate::reconcile::status::set_condition;
use jiff::Timestamp;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use std::time::Duration;

/// Log lines a failure Event and the status quote at most.
pub const LOG_LINES: usize = 20;
/// Bytes of log the status quotes at most (the Event: what fits in its 1 kB note).
pub const LOG_BYTES: usize = 4096;
/// Longest note the API server takes (events.k8s.io/v1 `note`: 1 kB).
const MAX_NOTE: usize = 1024;
/// First retry delay; it doubles per failure up to `MAX_BACKOFF_SECONDS`.
const BACKOFF_SECONDS: i64 = 10;
const MAX_BACKOFF_SECONDS: i64 = 360;
/// An unfinished job is looked at at least this often (owned objects' changes come sooner).
const POLL: Duration = Duration::from_secs(60);

/// The job's cluster as it exists now.
#[derive(Debug, Clone, PartialEq)]
pub struct ClusterSeen {
    /// Its uid (deletions carry it as a precondition).
    pub uid: Option<String>,
    /// Controlled by this job; otherwise a stranger holds the name.
    pub ours: bool,
    pub deleting: bool,
    pub phase: Option<Phase>,
    /// What its conditions say (why it is not Running, or why it failed).
    pub message: Option<String>,
}

/// How a runner attempt ended badly.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    /// The container's exit code; unset when it never ran or the pod was removed.
    pub exit_code: Option<i32>,
    /// The kubelet's reason (`Error`, `OOMKilled`, `Evicted`, ...).
    pub reason: String,
    pub message: Option<String>,
    pub finished_at: Option<Timestamp>,
}

/// What a runner pod is doing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RunnerState {
    /// Not running yet; `why` is the container's waiting reason (e.g. `ErrImagePull: ...`).
    Pending {
        why: Option<String>,
    },
    Running,
    Succeeded {
        finished_at: Option<Timestamp>,
    },
    Failed(Failure),
    /// Being deleted (by someone, or by this job at its deadline).
    Terminating,
}

/// One runner pod of the job.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunnerSeen {
    pub name: String,
    pub uid: Option<String>,
    /// 1, 2, ... (from its name's label).
    pub attempt: i32,
    pub state: RunnerState,
}

/// The last lines of a runner's log, or why they could not be read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Logs {
    pub pod: String,
    pub tail: Result<String, String>,
}

/// Everything the plan looks at.
#[derive(Debug, Clone, PartialEq)]
pub struct Observed {
    pub cluster: Option<ClusterSeen>,
    pub runners: Vec<RunnerSeen>,
    /// The log tail of the pod a previous pass asked for (`Plan::wants_logs`).
    pub logs: Option<Logs>,
    pub now: Timestamp,
}

/// One change to make.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    CreateCluster,
    CreateRunner {
        attempt: i32,
    },
    DeleteRunner {
        name: String,
        uid: Option<String>,
    },
    DeleteCluster {
        uid: Option<String>,
    },
    /// `ttlSecondsAfterFinished` passed.
    DeleteJob,
}

impl Action {
    /// Creations go before the status that counts them, deletions after the status that
    /// explains them: a failed step then never loses what was decided.
    pub fn creates(&self) -> bool {
        matches!(self, Action::CreateCluster | Action::CreateRunner { .. })
    }
}

/// One Event on the job (the cluster reconcile's type; `distinct` keeps every failed
/// attempt its own Event, as Event series keep only the first note).
pub use crate::reconcile::events::Note;

/// What to do, and what the job's status becomes.
#[derive(Debug, Clone, PartialEq)]
pub struct Plan {
    pub actions: Vec<Action>,
    pub status: ShoalJobStatus,
    pub notes: Vec<Note>,
    /// When to look again; `None`: only when something changes.
    pub requeue: Option<Duration>,
    /// A runner whose log tail this plan quotes and was not given: read it and plan again.
    pub wants_logs: Option<String>,
    /// The reason of the condition this plan finishes the job with (for metrics).
    pub finished: Option<&'static str>,
}

/// The job ended: `Complete` or `Failed` is True.
pub fn is_finished(status: &ShoalJobStatus) -> bool {
    status
        .conditions
        .iter()
        .any(|c| (c.type_ == "Complete" || c.type_ == "Failed") && c.status == "True")
}

fn at(seconds: i64) -> Timestamp {
    Timestamp::from_second(seconds).unwrap_or(Timestamp::MAX)
}

/// From `now` until `then`, at least one second.
fn until(now: Timestamp, then: i64) -> Duration {
    Duration::from_secs(u64::try_from(then - now.as_second()).unwrap_or(0).max(1))
}

/// The wait before the attempt after `failures` failed ones: 10 s, doubling, at most 6 min.
pub fn backoff(failures: i32) -> i64 {
    let doublings = u32::try_from(failures.saturating_sub(1).clamp(0, 10)).unwrap_or(0);
    (BACKOFF_SECONDS << doublings).min(MAX_BACKOFF_SECONDS)
}

/// A duration as `kubectl get jobs` prints it: `45s`, `2m13s`, `1h5m`, `3d4h`.
pub fn human(seconds: i64) -> String {
    let s = seconds.max(0);
    match s {
        0..60 => format!("{s}s"),
        60..3600 => format!("{}m{}s", s / 60, s % 60),
        3600..86400 => format!("{}h{}m", s / 3600, (s % 3600) / 60),
        _ => format!("{}d{}h", s / 86400, (s % 86400) / 3600),
    }
}

/// The last `lines` lines of `text` within `bytes`, whole lines where they fit (a longer
/// last line keeps its end), without a trailing newline.
pub fn last_lines(text: &str, lines: usize, bytes: usize) -> &str {
    let text = text.trim_end_matches(['\n', '\r']);
    let mut start = 0;
    for (count, (index, _)) in text.rmatch_indices('\n').enumerate() {
        if count + 1 >= lines {
            start = index + 1;
            break;
        }
    }
    let mut tail = &text[start..];
    while tail.len() > bytes {
        match tail.find('\n') {
            Some(index) => tail = &tail[index + 1..],
            None => {
                let mut cut = tail.len() - bytes;
                while !tail.is_char_boundary(cut) {
                    cut += 1;
                }
                tail = &tail[cut..];
            }
        }
    }
    tail
}

/// `note` cut to what the API server takes, on a character boundary.
fn fit(mut note: String) -> String {
    if note.len() > MAX_NOTE {
        let mut cut = MAX_NOTE - '…'.len_utf8();
        while !note.is_char_boundary(cut) {
            cut -= 1;
        }
        note.truncate(cut);
        note.push('…');
    }
    note
}

/// `summary` and the log tail, within `budget` bytes (the tail loses its oldest lines).
fn with_logs(summary: &str, logs: Option<&Result<String, String>>, budget: usize) -> String {
    match logs {
        None => summary.to_owned(),
        Some(Err(why)) => format!("{summary}; its log could not be read: {why}"),
        Some(Ok(tail)) if tail.trim().is_empty() => format!("{summary}; it wrote no output"),
        Some(Ok(tail)) => {
            let head = format!("{summary}; last log lines:\n");
            let room = budget.saturating_sub(head.len());
            format!("{head}{}", last_lines(tail, LOG_LINES, room))
        }
    }
}

/// Which runner attempt is the current one.
enum Current<'a> {
    /// No runner was started yet.
    None,
    /// The latest runner's pod is gone.
    Vanished(String),
    Seen(&'a RunnerSeen),
}

struct Planner<'a> {
    job: &'a ResolvedJob,
    seen: &'a Observed,
    previous: &'a ShoalJobStatus,
    plan: Plan,
}

impl Planner<'_> {
    fn now(&self) -> Timestamp {
        self.seen.now
    }

    fn note(&mut self, warning: bool, reason: &'static str, action: &'static str, note: String) {
        self.plan.notes.push(Note {
            warning,
            reason,
            action,
            note: fit(note),
            distinct: false,
        });
    }

    /// Makes the last note its own Event (one per attempt, each readable).
    fn distinct(&mut self) {
        if let Some(last) = self.plan.notes.last_mut() {
            last.distinct = true;
        }
    }

    /// The log tail of `pod` if given; else asks for it.
    fn logs_of(&mut self, pod: &str) -> Option<Result<String, String>> {
        match &self.seen.logs {
            Some(logs) if logs.pod == pod => Some(logs.tail.clone()),
            _ => {
                self.plan.wants_logs = Some(pod.to_owned());
                None
            }
        }
    }

    fn condition(&mut self, type_: &str, reason: &str, message: &str) {
        let now = Time(self.now());
        set_condition(
            &mut self.plan.status.conditions,
            type_,
            true,
            reason,
            message.to_owned(),
            self.job.generation,
            now,
        );
    }

    /// Ends the job: phase, condition, completion time, duration; the cluster goes.
    fn finish(
        &mut self,
        phase: JobPhase,
        reason: &'static str,
        message: String,
        completed_at: Option<Timestamp>,
    ) {
        let status = &mut self.plan.status;
        let completed = completed_at.unwrap_or(self.seen.now);
        let started = status.start_time.as_ref().map_or(completed, |t| t.0);
        status.phase = Some(phase);
        status.completion_time = Some(Time(completed));
        status.duration = Some(human(completed.as_second() - started.as_second()));
        status.active = 0;
        status.message = Some(message.clone());
        let type_ = if phase == JobPhase::Succeeded {
            "Complete"
        } else {
            "Failed"
        };
        let summary = message.lines().next().unwrap_or_default().to_owned();
        self.condition(type_, reason, &summary);
        self.plan.finished = Some(reason);
        self.delete_cluster();
        self.plan.requeue = self.ttl_wait(completed);
    }

    fn delete_cluster(&mut self) {
        if let Some(cluster) = &self.seen.cluster
            && cluster.ours
            && !cluster.deleting
        {
            self.plan.actions.push(Action::DeleteCluster {
                uid: cluster.uid.clone(),
            });
        }
    }

    /// With `ttlSecondsAfterFinished`: the wait until the job goes, or its deletion now.
    fn ttl_wait(&mut self, completed: Timestamp) -> Option<Duration> {
        let ttl = self.job.spec.ttl_seconds_after_finished?;
        let expiry = completed.as_second().saturating_add(ttl);
        if self.now().as_second() >= expiry {
            self.plan.actions.push(Action::DeleteJob);
            None
        } else {
            Some(until(self.now(), expiry))
        }
    }

    fn deadline(&self) -> Option<i64> {
        let start = self.plan.status.start_time.as_ref()?.0.as_second();
        Some(start.saturating_add(self.job.spec.active_deadline_seconds?))
    }

    /// Looks again by the deadline, and at least every `POLL`.
    fn look_again(&mut self, at_most: Option<Duration>) {
        let deadline = self.deadline().map(|d| until(self.now(), d));
        self.plan.requeue = [Some(POLL), deadline, at_most].into_iter().flatten().min();
    }

    fn attempt_text(&self, attempt: i32) -> String {
        format!("attempt {attempt} of {}", self.job.max_attempts())
    }
}

/// How a failed or vanished runner ended, in words.
fn failure_text(name: &str, failure: Option<&Failure>) -> String {
    match failure {
        None => format!("runner pod {name} disappeared before it finished (deleted?)"),
        Some(f) => {
            let mut text = match f.exit_code {
                Some(code) => format!("runner pod {name} exited with code {code} ({})", f.reason),
                None => format!("runner pod {name} failed ({})", f.reason),
            };
            if let Some(message) = f.message.as_deref().filter(|m| !m.is_empty()) {
                text.push_str(&format!(": {message}"));
            }
            text
        }
    }
}

/// Plans one reconcile of `job`.
pub fn plan(job: &ResolvedJob, previous: Option<&ShoalJobStatus>, seen: &Observed) -> Plan {
    let previous = previous.cloned().unwrap_or_default();
    let mut status = previous.clone();
    status.cluster_name = Some(job.cluster.clone());
    status.observed_generation = job.generation;
    status.start_time = status.start_time.or(Some(Time(seen.now)));
    let attempts = seen
        .runners
        .iter()
        .map(|r| r.attempt)
        .fold(previous.attempts, i32::max);
    status.attempts = attempts;
    status.runner_pod = (attempts > 0).then(|| names::job_runner_pod(&job.name, attempts));
    let mut p = Planner {
        job,
        seen,
        previous: &previous,
        plan: Plan {
            actions: Vec::new(),
            status,
            notes: Vec::new(),
            requeue: None,
            wants_logs: None,
            finished: None,
        },
    };
    if is_finished(&previous) {
        finished(&mut p);
        return p.plan;
    }
    let current = match seen.runners.iter().find(|r| r.attempt == attempts) {
        Some(runner) => Current::Seen(runner),
        None if attempts > 0 => Current::Vanished(names::job_runner_pod(&job.name, attempts)),
        None => Current::None,
    };
    running(&mut p, &current);
    p.plan
}

/// A finished job: its cluster and any runner left running go (a step that failed
/// before is done again), and the job itself once its TTL passed.
fn finished(p: &mut Planner<'_>) {
    for runner in &p.seen.runners {
        if matches!(
            runner.state,
            RunnerState::Pending { .. } | RunnerState::Running
        ) {
            p.plan.actions.push(Action::DeleteRunner {
                name: runner.name.clone(),
                uid: runner.uid.clone(),
            });
        }
    }
    p.delete_cluster();
    p.plan.status.active = 0;
    let completed = p.previous.completion_time.as_ref().map_or(p.now(), |t| t.0);
    p.plan.requeue = p.ttl_wait(completed);
}

fn running(p: &mut Planner<'_>, current: &Current<'_>) {
    let job = p.job;
    let attempts = p.plan.status.attempts;
    // Every attempt before the current one failed (the next starts only after a failure).
    let (name, failure) = match current {
        Current::None => (None, None),
        Current::Vanished(name) => (Some(name.clone()), Some(None)),
        Current::Seen(runner) => match &runner.state {
            RunnerState::Failed(f) => (Some(runner.name.clone()), Some(Some(f.clone()))),
            _ => (Some(runner.name.clone()), None),
        },
    };
    let failed = if failure.is_some() {
        attempts
    } else {
        (attempts - 1).max(0)
    };
    let status = &mut p.plan.status;
    status.failed = failed;
    status.succeeded = 0;
    status.active = 0;
    status.completions = Some("0/1".to_owned());

    // 1. The runner succeeded.
    if let Current::Seen(runner) = current
        && let RunnerState::Succeeded { finished_at } = runner.state
    {
        let status = &mut p.plan.status;
        status.succeeded = 1;
        status.completions = Some("1/1".to_owned());
        status.exit_code = Some(0);
        let message = format!(
            "runner pod {} succeeded ({}); deleting cluster {}",
            runner.name,
            p.attempt_text(runner.attempt),
            job.cluster
        );
        p.finish(
            JobPhase::Succeeded,
            "CompletionsReached",
            message,
            finished_at,
        );
        let duration = p.plan.status.duration.clone().unwrap_or_default();
        let note = format!(
            "runner pod {} succeeded after {duration} ({}); deleting cluster {}",
            runner.name,
            p.attempt_text(runner.attempt),
            job.cluster
        );
        p.note(false, "Completed", "Complete", note);
        return;
    }

    // 2. The runner failed, and no attempt is left.
    if let (Some(name), Some(failure)) = (&name, &failure) {
        p.plan.status.exit_code = failure.as_ref().and_then(|f| f.exit_code);
        let what = failure_text(name, failure.as_ref());
        let logs = match failure {
            Some(_) => p.logs_of(name),
            None => None,
        };
        if failed > job.spec.backoff_limit {
            let summary = format!(
                "{what} on {}; backoffLimit {} reached, the job failed; deleting cluster {}",
                p.attempt_text(attempts),
                job.spec.backoff_limit,
                job.cluster
            );
            let message = with_logs(&summary, logs.as_ref(), LOG_BYTES + summary.len() + 20);
            let finished_at = failure.as_ref().and_then(|f| f.finished_at);
            p.finish(
                JobPhase::Failed,
                "BackoffLimitExceeded",
                message,
                finished_at,
            );
            let note = with_logs(&summary, logs.as_ref(), MAX_NOTE);
            p.note(true, "BackoffLimitExceeded", "Fail", note);
            return;
        }
        if failed > p.previous.failed {
            let retry = backoff(failed);
            let summary = format!(
                "{what} on {}; retrying in {}",
                p.attempt_text(attempts),
                human(retry)
            );
            let note = with_logs(&summary, logs.as_ref(), MAX_NOTE);
            p.note(true, "RunnerFailed", "Retry", note);
            p.distinct();
        }
    }

    // 3. Past the deadline: a running runner is deleted, the job fails.
    if let Some(deadline) = p.deadline()
        && p.now().as_second() >= deadline
    {
        let seconds = job.spec.active_deadline_seconds.unwrap_or_default();
        let mut summary = format!("the job ran longer than activeDeadlineSeconds ({seconds}s)");
        let mut logs = None;
        if let Current::Seen(runner) = current {
            if matches!(
                runner.state,
                RunnerState::Pending { .. } | RunnerState::Running
            ) {
                p.plan.actions.push(Action::DeleteRunner {
                    name: runner.name.clone(),
                    uid: runner.uid.clone(),
                });
                summary.push_str(&format!("; deleting runner pod {}", runner.name));
            }
            if matches!(runner.state, RunnerState::Running | RunnerState::Failed(_)) {
                logs = p.logs_of(&runner.name);
            }
        }
        summary.push_str(&format!(" and cluster {}", job.cluster));
        let message = with_logs(&summary, logs.as_ref(), LOG_BYTES + summary.len() + 20);
        p.finish(JobPhase::Failed, "DeadlineExceeded", message, None);
        let note = with_logs(&summary, logs.as_ref(), MAX_NOTE);
        p.note(true, "DeadlineExceeded", "Fail", note);
        return;
    }

    // 4. A runner is on its way: wait for it.
    if let Current::Seen(runner) = current {
        let attempt = p.attempt_text(runner.attempt);
        let waiting = match &runner.state {
            RunnerState::Running => Some((
                JobPhase::Running,
                format!("runner pod {} runs ({attempt})", runner.name),
            )),
            RunnerState::Pending { why } => Some((
                JobPhase::Pending,
                match why {
                    Some(why) => {
                        format!("runner pod {} is Pending ({attempt}): {why}", runner.name)
                    }
                    None => format!("runner pod {} is starting ({attempt})", runner.name),
                },
            )),
            RunnerState::Terminating => Some((
                JobPhase::Pending,
                format!("runner pod {} is being deleted ({attempt})", runner.name),
            )),
            RunnerState::Succeeded { .. } | RunnerState::Failed(_) => None,
        };
        if let Some((phase, message)) = waiting {
            let status = &mut p.plan.status;
            status.active = i32::from(runner.state != RunnerState::Terminating);
            status.phase = Some(phase);
            status.message = Some(message);
            status.exit_code = None;
            p.look_again(None);
            return;
        }
    }

    // 5. No runner is active: the cluster must be Running for the next attempt.
    let status = &mut p.plan.status;
    status.phase = Some(JobPhase::Pending);
    match &p.seen.cluster {
        None => {
            p.plan.actions.push(Action::CreateCluster);
            p.plan.status.message = Some(format!("creating cluster {}", job.cluster));
            let note = format!(
                "created cluster {} (version {}); the runner starts once it is Running",
                job.cluster, job.version
            );
            p.note(false, "ClusterCreated", "Create", note);
            p.look_again(None);
        }
        Some(cluster) if !cluster.ours => {
            let message = format!(
                "a ShoalCluster named {} exists and does not belong to this job; delete it \
                 or give the job another name",
                job.cluster
            );
            p.finish(JobPhase::Failed, "ClusterNameTaken", message.clone(), None);
            p.note(true, "ClusterNameTaken", "Fail", message);
        }
        Some(cluster) if cluster.deleting => {
            p.plan.status.message = Some(format!(
                "waiting for the old cluster {} to be deleted",
                job.cluster
            ));
            p.look_again(None);
        }
        Some(cluster) if cluster.phase == Some(Phase::Failed) => {
            let why = cluster.message.as_deref().unwrap_or("no reason given");
            let message = format!("cluster {} cannot start: {why}", job.cluster);
            p.finish(JobPhase::Failed, "ClusterFailed", message.clone(), None);
            p.note(true, "ClusterFailed", "Fail", message);
        }
        Some(cluster) if cluster.phase != Some(Phase::Running) => {
            let phase = cluster
                .phase
                .map_or_else(|| "not started".to_owned(), |ph| ph.to_string());
            let why = cluster
                .message
                .as_deref()
                .map(|m| format!(": {m}"))
                .unwrap_or_default();
            p.plan.status.message = Some(format!(
                "waiting for cluster {} to be Running (it is {phase}{why})",
                job.cluster
            ));
            p.look_again(None);
        }
        Some(_) => start_next(p, current),
    }
}

/// The cluster runs: starts the next attempt, after the backoff of a failed one.
fn start_next(p: &mut Planner<'_>, current: &Current<'_>) {
    let job = p.job;
    let attempts = p.plan.status.attempts;
    if attempts > 0 {
        let finished_at = match current {
            Current::Seen(RunnerSeen {
                state: RunnerState::Failed(f),
                ..
            }) => f.finished_at,
            _ => None,
        };
        if let Some(finished_at) = finished_at {
            let retry_at = finished_at
                .as_second()
                .saturating_add(backoff(p.plan.status.failed));
            if p.now().as_second() < retry_at {
                p.plan.status.message = Some(format!(
                    "runner attempt {attempts} failed; attempt {} starts at {}",
                    attempts + 1,
                    at(retry_at)
                ));
                p.look_again(Some(until(p.now(), retry_at)));
                return;
            }
        }
    }
    let attempt = attempts + 1;
    let name = names::job_runner_pod(&job.name, attempt);
    p.plan.actions.push(Action::CreateRunner { attempt });
    let status = &mut p.plan.status;
    status.attempts = attempt;
    status.active = 1;
    status.exit_code = None;
    status.runner_pod = Some(name.clone());
    status.message = Some(format!("runner pod {name} created"));
    let note = format!(
        "created runner pod {name} ({}) against cluster {}",
        p.attempt_text(attempt),
        job.cluster
    );
    p.note(false, "SuccessfulCreate", "Create", note);
    p.distinct();
    p.look_again(None);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::job::fixtures::{resolved, t};

    fn seen(cluster: Option<ClusterSeen>, runners: Vec<RunnerSeen>, now: i64) -> Observed {
        Observed {
            cluster,
            runners,
            logs: None,
            now: t(now),
        }
    }

    fn cluster(phase: Option<Phase>) -> Option<ClusterSeen> {
        Some(ClusterSeen {
            uid: Some("uid-c".to_owned()),
            ours: true,
            deleting: false,
            phase,
            message: Some("1 of 2 worker pods ready".to_owned()),
        })
    }

    fn runner(attempt: i32, state: RunnerState) -> RunnerSeen {
        RunnerSeen {
            name: format!("nightly-runner-{attempt}"),
            uid: Some(format!("uid-r{attempt}")),
            attempt,
            state,
        }
    }

    fn failed(code: i32, at: i64) -> RunnerState {
        RunnerState::Failed(Failure {
            exit_code: Some(code),
            reason: "Error".to_owned(),
            message: None,
            finished_at: Some(t(at)),
        })
    }

    /// Status as of a started job with `attempts` runners.
    fn started(attempts: i32, failed: i32) -> ShoalJobStatus {
        ShoalJobStatus {
            start_time: Some(Time(t(100))),
            attempts,
            failed,
            phase: Some(JobPhase::Running),
            ..ShoalJobStatus::default()
        }
    }

    fn condition(plan: &Plan, type_: &str) -> Option<(String, String)> {
        plan.status
            .conditions
            .iter()
            .find(|c| c.type_ == type_)
            .map(|c| (c.status.clone(), c.reason.clone()))
    }

    fn reasons(plan: &Plan) -> Vec<&'static str> {
        plan.notes.iter().map(|n| n.reason).collect()
    }

    /// A new job creates its cluster, and starts nothing else until it is Running.
    #[test]
    fn a_new_job_creates_its_cluster_and_waits() {
        let job = resolved(|_| {});
        let plan = plan(&job, None, &seen(None, vec![], 100));
        assert_eq!(plan.actions, vec![Action::CreateCluster]);
        assert_eq!(plan.status.phase, Some(JobPhase::Pending));
        assert_eq!(plan.status.start_time, Some(Time(t(100))));
        assert_eq!(plan.status.cluster_name.as_deref(), Some("nightly-cluster"));
        assert_eq!(reasons(&plan), ["ClusterCreated"]);

        let status = plan.status;
        let plan = super::plan(
            &job,
            Some(&status),
            &seen(cluster(Some(Phase::Pending)), vec![], 110),
        );
        assert!(plan.actions.is_empty(), "{:?}", plan.actions);
        assert!(plan.notes.is_empty());
        let message = plan.status.message.unwrap_or_default();
        assert!(
            message.contains(
                "waiting for cluster nightly-cluster to be Running (it is Pending: 1 of 2"
            ),
            "{message}"
        );
        assert_eq!(plan.requeue, Some(POLL));
    }

    /// Once the cluster runs, runner attempt 1 is created, once.
    #[test]
    fn a_running_cluster_gets_runner_attempt_one() {
        let job = resolved(|_| {});
        let status = started(0, 0);
        let plan = plan(
            &job,
            Some(&status),
            &seen(cluster(Some(Phase::Running)), vec![], 110),
        );
        assert_eq!(plan.actions, vec![Action::CreateRunner { attempt: 1 }]);
        assert_eq!((plan.status.attempts, plan.status.active), (1, 1));
        assert_eq!(plan.status.runner_pod.as_deref(), Some("nightly-runner-1"));
        assert_eq!(reasons(&plan), ["SuccessfulCreate"]);
        assert!(
            plan.notes[0].note.contains("attempt 1 of 2"),
            "{:?}",
            plan.notes
        );

        let status = plan.status;
        let pending = RunnerState::Pending {
            why: Some("ErrImagePull: not found".to_owned()),
        };
        let plan = super::plan(
            &job,
            Some(&status),
            &seen(cluster(Some(Phase::Running)), vec![runner(1, pending)], 111),
        );
        assert!(plan.actions.is_empty() && plan.notes.is_empty(), "{plan:?}");
        assert_eq!(plan.status.phase, Some(JobPhase::Pending));
        assert_eq!(plan.status.active, 1);
        assert!(
            plan.status
                .message
                .unwrap_or_default()
                .contains("ErrImagePull: not found")
        );
    }

    /// A running runner makes the job Running, and nothing else happens.
    #[test]
    fn a_running_runner_is_waited_for() {
        let job = resolved(|_| {});
        let plan = plan(
            &job,
            Some(&started(1, 0)),
            &seen(
                cluster(Some(Phase::Running)),
                vec![runner(1, RunnerState::Running)],
                120,
            ),
        );
        assert!(plan.actions.is_empty() && plan.notes.is_empty(), "{plan:?}");
        assert_eq!(plan.status.phase, Some(JobPhase::Running));
        assert_eq!((plan.status.active, plan.status.failed), (1, 0));
        assert_eq!(plan.status.completions.as_deref(), Some("0/1"));
    }

    /// A runner that exits 0 completes the job (like a Job: `Complete`), deletes the
    /// cluster and says so once.
    #[test]
    fn success_completes_the_job_and_deletes_the_cluster() {
        let job = resolved(|_| {});
        let done = RunnerState::Succeeded {
            finished_at: Some(t(230)),
        };
        let plan = plan(
            &job,
            Some(&started(1, 0)),
            &seen(
                cluster(Some(Phase::Running)),
                vec![runner(1, done.clone())],
                231,
            ),
        );
        assert_eq!(
            plan.actions,
            vec![Action::DeleteCluster {
                uid: Some("uid-c".to_owned())
            }]
        );
        assert_eq!(plan.status.phase, Some(JobPhase::Succeeded));
        assert_eq!(
            condition(&plan, "Complete"),
            Some(("True".to_owned(), "CompletionsReached".to_owned()))
        );
        assert_eq!(plan.status.completion_time, Some(Time(t(230))));
        assert_eq!(plan.status.duration.as_deref(), Some("2m10s"));
        assert_eq!(plan.status.completions.as_deref(), Some("1/1"));
        assert_eq!((plan.status.succeeded, plan.status.exit_code), (1, Some(0)));
        assert_eq!(reasons(&plan), ["Completed"]);
        assert_eq!(plan.finished, Some("CompletionsReached"));
        assert!(plan.wants_logs.is_none());

        // Seen again (the cluster is going): nothing more is said or done.
        let status = plan.status;
        let mut going = cluster(Some(Phase::Running));
        if let Some(c) = going.as_mut() {
            c.deleting = true;
        }
        let again = super::plan(
            &job,
            Some(&status),
            &seen(going, vec![runner(1, done)], 240),
        );
        assert!(
            again.actions.is_empty() && again.notes.is_empty(),
            "{again:?}"
        );
        assert_eq!(again.status, status);
        assert_eq!(again.requeue, None);
    }

    /// A failure with attempts left is reported with its exit code and log tail, and
    /// the next attempt starts after the backoff, against the same cluster.
    #[test]
    fn failure_with_retries_left_retries_after_the_backoff() {
        let job = resolved(|_| {});
        let runners = vec![runner(1, failed(3, 200))];
        let first = plan(
            &job,
            Some(&started(1, 0)),
            &seen(cluster(Some(Phase::Running)), runners.clone(), 201),
        );
        assert_eq!(first.wants_logs.as_deref(), Some("nightly-runner-1"));
        let mut observed = seen(cluster(Some(Phase::Running)), runners.clone(), 201);
        observed.logs = Some(Logs {
            pod: "nightly-runner-1".to_owned(),
            tail: Ok("step 1\nValueError: boom\n".to_owned()),
        });
        let plan = super::plan(&job, Some(&started(1, 0)), &observed);
        assert!(plan.wants_logs.is_none());
        assert!(plan.actions.is_empty(), "{:?}", plan.actions);
        assert_eq!(reasons(&plan), ["RunnerFailed"]);
        let note = &plan.notes[0];
        assert!(note.warning && note.distinct);
        assert!(
            note.note
                .contains("exited with code 3 (Error) on attempt 1 of 2; retrying in 10s")
                && note.note.ends_with("step 1\nValueError: boom"),
            "{}",
            note.note
        );
        assert_eq!((plan.status.failed, plan.status.exit_code), (1, Some(3)));
        assert_eq!(plan.status.phase, Some(JobPhase::Pending));
        assert_eq!(plan.requeue, Some(Duration::from_secs(9)));

        // After the backoff: attempt 2, and the failure is not reported again.
        let status = plan.status;
        let plan = super::plan(
            &job,
            Some(&status),
            &seen(cluster(Some(Phase::Running)), runners, 210),
        );
        assert_eq!(plan.actions, vec![Action::CreateRunner { attempt: 2 }]);
        assert_eq!(reasons(&plan), ["SuccessfulCreate"]);
        assert_eq!((plan.status.attempts, plan.status.failed), (2, 1));
    }

    /// The last allowed failure fails the job (`BackoffLimitExceeded`) with the exit
    /// code and the log tail in the Event and the status; the cluster goes.
    #[test]
    fn backoff_exhausted_fails_the_job_with_exit_code_and_logs() {
        let job = resolved(|_| {});
        let runners = vec![runner(1, failed(3, 200)), runner(2, failed(4, 300))];
        let mut observed = seen(cluster(Some(Phase::Running)), runners, 301);
        let log: String = (1..=30).map(|i| format!("line {i}\n")).collect();
        observed.logs = Some(Logs {
            pod: "nightly-runner-2".to_owned(),
            tail: Ok(log),
        });
        let plan = plan(&job, Some(&started(2, 1)), &observed);
        assert_eq!(
            plan.actions,
            vec![Action::DeleteCluster {
                uid: Some("uid-c".to_owned())
            }]
        );
        assert_eq!(plan.status.phase, Some(JobPhase::Failed));
        assert_eq!(
            condition(&plan, "Failed"),
            Some(("True".to_owned(), "BackoffLimitExceeded".to_owned()))
        );
        assert_eq!((plan.status.failed, plan.status.exit_code), (2, Some(4)));
        assert_eq!(reasons(&plan), ["BackoffLimitExceeded"]);
        let note = &plan.notes[0].note;
        assert!(note.len() <= MAX_NOTE);
        assert!(
            note.starts_with("runner pod nightly-runner-2 exited with code 4 (Error) on attempt 2 of 2; backoffLimit 1 reached")
                && note.ends_with("line 30")
                && !note.contains("line 10\n"),
            "{note}"
        );
        let message = plan.status.message.clone().unwrap_or_default();
        assert!(
            message.ends_with("line 30") && message.contains("line 11\n"),
            "{message}"
        );
        let (_, reason) = condition(&plan, "Failed").unwrap_or_default();
        assert_eq!(reason, "BackoffLimitExceeded");
        assert_eq!(plan.finished, Some("BackoffLimitExceeded"));
    }

    /// With backoffLimit 0 (the default) the first failure fails the job.
    #[test]
    fn backoff_limit_zero_fails_on_the_first_failure() {
        let job = resolved(|spec| spec.backoff_limit = 0);
        let mut observed = seen(
            cluster(Some(Phase::Running)),
            vec![runner(1, failed(1, 200))],
            201,
        );
        observed.logs = Some(Logs {
            pod: "nightly-runner-1".to_owned(),
            tail: Err("pods/log is forbidden".to_owned()),
        });
        let plan = plan(&job, Some(&started(1, 0)), &observed);
        assert_eq!(plan.status.phase, Some(JobPhase::Failed));
        assert!(
            plan.notes[0].note.contains("attempt 1 of 1")
                && plan.notes[0]
                    .note
                    .contains("its log could not be read: pods/log is forbidden"),
            "{:?}",
            plan.notes
        );
    }

    /// Past the deadline a running runner is deleted and the job fails
    /// (`DeadlineExceeded`), quoting the runner's last lines.
    #[test]
    fn deadline_exceeded_while_running_deletes_the_runner() {
        let job = resolved(|spec| spec.active_deadline_seconds = Some(60));
        let runners = vec![runner(1, RunnerState::Running)];
        let before = plan(
            &job,
            Some(&started(1, 0)),
            &seen(cluster(Some(Phase::Running)), runners.clone(), 130),
        );
        assert!(before.actions.is_empty());
        assert_eq!(
            before.requeue,
            Some(Duration::from_secs(30)),
            "looks again at the deadline"
        );

        let mut observed = seen(cluster(Some(Phase::Running)), runners, 160);
        observed.logs = Some(Logs {
            pod: "nightly-runner-1".to_owned(),
            tail: Ok("still working\n".to_owned()),
        });
        let plan = plan(&job, Some(&started(1, 0)), &observed);
        assert_eq!(
            plan.actions,
            vec![
                Action::DeleteRunner {
                    name: "nightly-runner-1".to_owned(),
                    uid: Some("uid-r1".to_owned())
                },
                Action::DeleteCluster {
                    uid: Some("uid-c".to_owned())
                },
            ]
        );
        assert_eq!(
            condition(&plan, "Failed"),
            Some(("True".to_owned(), "DeadlineExceeded".to_owned()))
        );
        assert_eq!(plan.status.duration.as_deref(), Some("1m0s"));
        assert!(
            plan.notes[0].note.contains("activeDeadlineSeconds (60s)")
                && plan.notes[0].note.ends_with("still working"),
            "{:?}",
            plan.notes
        );
    }

    /// The deadline also bounds a cluster that never starts.
    #[test]
    fn deadline_exceeded_while_the_cluster_starts() {
        let job = resolved(|spec| spec.active_deadline_seconds = Some(60));
        let plan = plan(
            &job,
            Some(&started(0, 0)),
            &seen(cluster(Some(Phase::Pending)), vec![], 170),
        );
        assert_eq!(
            plan.actions,
            vec![Action::DeleteCluster {
                uid: Some("uid-c".to_owned())
            }]
        );
        assert_eq!(plan.status.phase, Some(JobPhase::Failed));
        assert!(plan.wants_logs.is_none());
    }

    /// A finished job is deleted when its TTL has passed, and looked at again then.
    #[test]
    fn ttl_expiry_deletes_the_finished_job() {
        let job = resolved(|spec| spec.ttl_seconds_after_finished = Some(30));
        let done = RunnerState::Succeeded {
            finished_at: Some(t(200)),
        };
        let finishing = plan(
            &job,
            Some(&started(1, 0)),
            &seen(
                cluster(Some(Phase::Running)),
                vec![runner(1, done.clone())],
                205,
            ),
        );
        assert_eq!(finishing.requeue, Some(Duration::from_secs(25)));
        let status = finishing.status;
        let waiting = plan(
            &job,
            Some(&status),
            &seen(None, vec![runner(1, done.clone())], 220),
        );
        assert!(waiting.actions.is_empty());
        assert_eq!(waiting.requeue, Some(Duration::from_secs(10)));
        let expired = plan(&job, Some(&status), &seen(None, vec![runner(1, done)], 230));
        assert_eq!(expired.actions, vec![Action::DeleteJob]);
        assert!(expired.notes.is_empty());
    }

    /// A cluster that cannot start (its spec is refused) fails the job with its reason.
    #[test]
    fn cluster_failed_to_start_fails_the_job() {
        let job = resolved(|_| {});
        let mut failed_cluster = cluster(Some(Phase::Failed));
        if let Some(c) = failed_cluster.as_mut() {
            c.message = Some("worker pod name would be 70 characters".to_owned());
        }
        let plan = plan(
            &job,
            Some(&started(0, 0)),
            &seen(failed_cluster, vec![], 120),
        );
        assert_eq!(
            condition(&plan, "Failed"),
            Some(("True".to_owned(), "ClusterFailed".to_owned()))
        );
        assert!(
            plan.notes[0]
                .note
                .contains("cluster nightly-cluster cannot start: worker pod name would be 70"),
            "{:?}",
            plan.notes
        );
        assert_eq!(
            plan.actions.len(),
            1,
            "its cluster is deleted: {:?}",
            plan.actions
        );
    }

    /// A cluster of the same name that is not the job's is never touched.
    #[test]
    fn a_strangers_cluster_fails_the_job_and_stays() {
        let job = resolved(|_| {});
        let mut stranger = cluster(Some(Phase::Running));
        if let Some(c) = stranger.as_mut() {
            c.ours = false;
        }
        let plan = plan(&job, Some(&started(0, 0)), &seen(stranger, vec![], 120));
        assert!(plan.actions.is_empty(), "{:?}", plan.actions);
        assert_eq!(
            condition(&plan, "Failed").map(|c| c.1).as_deref(),
            Some("ClusterNameTaken")
        );
    }

    /// A runner pod deleted by someone counts as a failed attempt (no exit code).
    #[test]
    fn a_vanished_runner_counts_as_a_failure() {
        let job = resolved(|_| {});
        let plan = plan(
            &job,
            Some(&started(1, 0)),
            &seen(cluster(Some(Phase::Running)), vec![], 150),
        );
        assert_eq!(plan.actions, vec![Action::CreateRunner { attempt: 2 }]);
        assert_eq!(reasons(&plan), ["RunnerFailed", "SuccessfulCreate"]);
        assert!(
            plan.notes[0].note.contains("disappeared"),
            "{:?}",
            plan.notes
        );
        assert!(plan.wants_logs.is_none());
    }

    /// A finished job whose cleanup failed half way does it again.
    #[test]
    fn a_finished_job_deletes_what_is_left() {
        let job = resolved(|_| {});
        let mut status = started(1, 0);
        set_condition(
            &mut status.conditions,
            "Failed",
            true,
            "DeadlineExceeded",
            String::new(),
            Some(1),
            Time(t(160)),
        );
        let plan = plan(
            &job,
            Some(&status),
            &seen(
                cluster(Some(Phase::Running)),
                vec![runner(1, RunnerState::Running)],
                170,
            ),
        );
        assert_eq!(plan.actions.len(), 2, "{:?}", plan.actions);
        assert!(plan.notes.is_empty());
    }

    /// Log tails keep the last lines within the bytes allowed.
    #[test]
    fn last_lines_keeps_the_end() {
        assert_eq!(last_lines("a\nb\nc\n", 2, 100), "b\nc");
        assert_eq!(last_lines("a\nb\nc", 5, 100), "a\nb\nc");
        assert_eq!(last_lines("aaaa\nbbbb\ncccc", 5, 9), "bbbb\ncccc");
        assert_eq!(last_lines("xxxxxxxxxx", 5, 4), "xxxx");
        assert_eq!(last_lines("ééééé", 5, 3), "é");
        assert_eq!(backoff(1), 10);
        assert_eq!(backoff(3), 40);
        assert_eq!(backoff(9), 360);
        assert_eq!(human(3725), "1h2m");
    }
}
