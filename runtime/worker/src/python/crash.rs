//! What a dead executor process leaves: the error of the task it was running (a crash,
//! the kernel's OOM killer, or the worker's memory policy, each with its cause and fix),
//! and its half-written files in the shared-memory store.
//!
//! Not here: noticing the death and starting a new process (the parent module).

use std::time::Duration;

use shoal_proto::v1;

use super::{InFlight, Pool};
use crate::executor::ExecOutcome;

impl Pool {
    /// The task a dead executor was running fails: with the memory policy's error when
    /// the worker stopped it, else with the crash's cause.
    pub(super) fn fail_crashed(
        &mut self,
        running: InFlight,
        pid: u32,
        stopped: Option<v1::TaskError>,
        status: Option<std::process::ExitStatus>,
    ) {
        let ran = running.sent.elapsed();
        let error = match stopped {
            Some(mut error) => {
                error.detail = format!(
                    "executor pid {pid}, the task ran {:.1}s; the worker started a new executor",
                    ran.as_secs_f64()
                );
                error
            }
            None if self.kernel_oom_killed() => self.kernel_oom_error(&running.key, pid, ran),
            None => self.crash_error(&running.key, pid, ran, status),
        };
        let _ = running.done.send(ExecOutcome {
            task: running.task,
            result: Err(error),
            in_store: false,
            live: None,
            lost_input: None,
            duration: ran,
        });
    }

    /// Deletes what a dead executor left in the shared-memory directory: its unsealed
    /// (half-written) files, and the sealed file of the task it was running, whose reply
    /// never came. Returns whether it was writing that task's result.
    pub(super) fn remove_unsealed(&self, pid: u32, running: Option<u64>) -> bool {
        let Some(dir) = &self.config.store_dir else {
            return false;
        };
        let prefix = format!(".tmp-{pid}-");
        let mut writing = false;
        if let Ok(entries) = std::fs::read_dir(dir) {
            for entry in entries.flatten() {
                let name = entry.file_name();
                let Some(rest) = name.to_str().and_then(|n| n.strip_prefix(&prefix)) else {
                    continue;
                };
                writing |= running.is_some_and(|t| rest == crate::store::file_name(t));
                let _ = std::fs::remove_file(entry.path());
            }
        }
        if let Some(task) = running {
            let _ = std::fs::remove_file(dir.join(crate::store::file_name(task)));
        }
        writing
    }

    /// Whether the kernel's OOM killer killed a process of this worker's cgroup since the
    /// last look (then an executor that died of SIGKILL was that process).
    pub(super) fn kernel_oom_killed(&mut self) -> bool {
        let Some(now) = self
            .config
            .cgroup
            .as_ref()
            .and_then(crate::cgroup::Cgroup::oom_kills)
        else {
            return false;
        };
        let before = std::mem::replace(&mut self.oom_kills, now);
        now > before
    }

    /// The error of a task whose executor the kernel OOM-killed: the pod reached its limit
    /// faster than the worker's memory check (every 100 ms) could stop the task.
    pub(super) fn kernel_oom_error(&self, key: &str, pid: u32, ran: Duration) -> v1::TaskError {
        let limit = self.config.memory_limit;
        tracing::warn!(
            worker = self.config.worker_name,
            task = key,
            pid,
            limit_mib = limit >> 20,
            "the kernel OOM-killed a python executor; starting a new one"
        );
        v1::TaskError {
            kind: "MemoryLimit".into(),
            message: format!(
                "task {key:?} on worker {:?}: the kernel OOM-killed (OOMKilled) its executor: \
                 the pod reached its memory limit of {} MiB faster than the worker could stop \
                 the task. The worker started a new executor; other tasks go on. Give workers \
                 more memory or make the task's chunks or partitions smaller",
                self.config.worker_name,
                limit >> 20
            ),
            detail: format!("executor pid {pid}, the task ran {:.1}s", ran.as_secs_f64()),
            worker: self.config.worker_name.clone(),
            memory: Some(Box::new(v1::MemoryFigures {
                used: limit,
                limit,
                threshold: 1.0,
                task_used: 0,
            })),
            ..Default::default()
        }
    }

    /// The error of a task whose executor died under it (not stopped by the worker).
    pub(super) fn crash_error(
        &self,
        key: &str,
        pid: u32,
        ran: Duration,
        status: Option<std::process::ExitStatus>,
    ) -> v1::TaskError {
        let cause = describe_exit(status);
        let hint = crash_hint(status);
        tracing::warn!(
            worker = self.config.worker_name,
            task = key,
            pid,
            cause,
            "python executor died while running a task; starting a new one"
        );
        v1::TaskError {
            kind: "ExecutorCrashed".into(),
            message: format!(
                "task {key:?} stopped its Python executor on worker {:?}: {cause}. \
                 The worker started a new executor; other tasks go on. {hint}",
                self.config.worker_name
            ),
            detail: format!("executor pid {pid}, the task ran {:.1}s", ran.as_secs_f64()),
            worker: self.config.worker_name.clone(),
            ..Default::default()
        }
    }
}

pub(super) fn signal_name(signal: i32) -> &'static str {
    match signal {
        4 => "SIGILL",
        6 => "SIGABRT",
        7 => "SIGBUS",
        8 => "SIGFPE",
        9 => "SIGKILL",
        11 => "SIGSEGV",
        15 => "SIGTERM",
        _ => "a signal",
    }
}

pub(super) fn describe_exit(status: Option<std::process::ExitStatus>) -> String {
    use std::os::unix::process::ExitStatusExt;
    match status {
        Some(s) => match (s.code(), s.signal()) {
            (Some(code), _) => format!("the executor exited with code {code}"),
            (_, Some(sig)) => format!("the executor was killed by {} ({sig})", signal_name(sig)),
            _ => "the executor ended".to_string(),
        },
        None => "the executor ended (status unknown)".to_string(),
    }
}

pub(super) fn crash_hint(status: Option<std::process::ExitStatus>) -> &'static str {
    use std::os::unix::process::ExitStatusExt;
    match status.and_then(|s| s.signal()) {
        Some(11) | Some(7) | Some(4) => {
            "A crash like this comes from native code (a C extension, ctypes, a library bug)."
        }
        Some(9) => "SIGKILL is usually the kernel's OOM killer: the machine ran out of memory.",
        _ => {
            "Code that calls os._exit or exits the interpreter ends the executor; see the worker's log for its output."
        }
    }
}
