//! The memory the kernel holds this worker's container to: its cgroup's limit and working
//! set (usage minus inactive page cache, what the kubelet counts and the OOM killer acts
//! on), for cgroup v1 and v2, read from a cgroup file-system root so tests can point it at
//! fixture directories. Also the resident size of single processes, the fallback measure
//! where no cgroup limit is set (a worker started by hand). Likewise the CPU time the
//! container used (v2 `cpu.stat`, v1 `cpuacct.usage`), with the processes' own CPU time
//! (`cpu.rs`) as the fallback.
//!
//! Not here: what to do about the figures (`memory.rs`), cores busy (`cpu.rs`).

use std::path::{Path, PathBuf};

/// Limits at or above this are "no limit" (v1 writes a page-rounded `i64::MAX`).
const UNLIMITED: u64 = 1 << 60;

/// A cgroup's memory files, v1 or v2.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Cgroup {
    /// Unified hierarchy: `memory.max`, `memory.current`, `memory.stat` (`inactive_file`).
    V2(PathBuf),
    /// Memory controller: `memory.limit_in_bytes`, `memory.usage_in_bytes`, `memory.stat`
    /// (`total_inactive_file`, `hierarchical_memory_limit`).
    V1(PathBuf),
}

impl Cgroup {
    /// This process's cgroup under the file-system root `root` (normally `/sys/fs/cgroup`),
    /// as `/proc/self/cgroup` (here `proc_self_cgroup`, its text) names it. In a container
    /// with its own cgroup namespace, or with its cgroup mounted at the root, the named
    /// path does not exist below `root`: then `root` itself (or its memory controller) is
    /// the container's cgroup.
    pub fn find(root: &Path, proc_self_cgroup: &str) -> Option<Cgroup> {
        let (v1_path, v2_path) = named_paths(proc_self_cgroup, "memory");
        let v1_root = root.join("memory");
        if v1_root.join("memory.limit_in_bytes").exists() {
            let dir = v1_path
                .map(|p| v1_root.join(p))
                .filter(|d| d.join("memory.limit_in_bytes").exists())
                .unwrap_or(v1_root);
            return Some(Cgroup::V1(dir));
        }
        if root.join("cgroup.controllers").exists() {
            let dir = v2_path
                .map(|p| root.join(p))
                .filter(|d| d.join("memory.current").exists())
                .unwrap_or_else(|| root.to_path_buf());
            return Some(Cgroup::V2(dir));
        }
        None
    }

    /// This process's own cgroup (`None` off Linux or without a memory controller).
    pub fn of_this_process() -> Option<Cgroup> {
        let text = std::fs::read_to_string("/proc/self/cgroup").ok()?;
        Cgroup::find(Path::new("/sys/fs/cgroup"), &text)
    }

    /// The memory limit in bytes, the lowest on the way up to the root that can be seen
    /// (`None`: unlimited).
    pub fn limit(&self) -> Option<u64> {
        let limit = match self {
            Cgroup::V2(dir) => dir
                .ancestors()
                .take_while(|d| d.join("memory.current").exists() || d == dir)
                .filter_map(|d| read_number(&d.join("memory.max")))
                .min(),
            Cgroup::V1(dir) => {
                let own = read_number(&dir.join("memory.limit_in_bytes"));
                let hierarchical = stat_field(dir, "hierarchical_memory_limit");
                own.into_iter().chain(hierarchical).min()
            }
        };
        limit.filter(|&l| l < UNLIMITED)
    }

    /// Processes the kernel's OOM killer has killed in this cgroup so far (v1
    /// `memory.oom_control`, v2 `memory.events`: `oom_kill`).
    pub fn oom_kills(&self) -> Option<u64> {
        let (dir, file) = match self {
            Cgroup::V2(dir) => (dir, "memory.events"),
            Cgroup::V1(dir) => (dir, "memory.oom_control"),
        };
        let text = std::fs::read_to_string(dir.join(file)).ok()?;
        text.lines().find_map(|line| {
            let value = line.strip_prefix("oom_kill ")?;
            value.trim().parse().ok()
        })
    }

    /// Bytes in use that the kernel cannot simply drop: usage minus inactive file cache.
    pub fn working_set(&self) -> Option<u64> {
        let (usage, inactive) = match self {
            Cgroup::V2(dir) => (
                read_number(&dir.join("memory.current"))?,
                stat_field(dir, "inactive_file"),
            ),
            Cgroup::V1(dir) => (
                read_number(&dir.join("memory.usage_in_bytes"))?,
                stat_field(dir, "total_inactive_file"),
            ),
        };
        Some(usage.saturating_sub(inactive.unwrap_or(0)))
    }
}

/// The paths `/proc/self/cgroup` (its text) names for this process: in the v1 hierarchy
/// holding `controller`, and in the unified (v2) hierarchy; without the leading '/'.
fn named_paths(proc_self_cgroup: &str, controller: &str) -> (Option<String>, Option<String>) {
    let mut v1_path = None;
    let mut v2_path = None;
    for line in proc_self_cgroup.lines() {
        let mut parts = line.splitn(3, ':');
        let (Some(_), Some(controllers), Some(path)) = (parts.next(), parts.next(), parts.next())
        else {
            continue;
        };
        let path = path.trim_start_matches('/');
        if controllers.is_empty() {
            v2_path = Some(path.to_owned());
        } else if controllers.split(',').any(|c| c == controller) {
            v1_path = Some(path.to_owned());
        }
    }
    (v1_path, v2_path)
}

/// Where v1 mounts the cpuacct controller, alone or with the cpu controller.
const CPUACCT_MOUNTS: [&str; 3] = ["cpuacct", "cpu,cpuacct", "cpuacct,cpu"];

/// A cgroup's CPU accounting files, v1 or v2: the CPU time all its processes used.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CpuCgroup {
    /// Unified hierarchy: `cpu.stat` (`usage_usec`), `cpu.max` (the limit).
    V2(PathBuf),
    /// cpuacct controller: `cpuacct.usage` (nanoseconds), and `cpu.cfs_quota_us` (the
    /// limit) where the cpu controller is mounted with it.
    V1(PathBuf),
}

impl CpuCgroup {
    /// This process's CPU accounting cgroup under `root`, found as [`Cgroup::find`] finds
    /// the memory one: the path `/proc/self/cgroup` names, or the mount itself when that
    /// path does not exist below it (a container with its own cgroup namespace).
    pub fn find(root: &Path, proc_self_cgroup: &str) -> Option<CpuCgroup> {
        let (v1_path, v2_path) = named_paths(proc_self_cgroup, "cpuacct");
        let v1_root = CPUACCT_MOUNTS
            .iter()
            .map(|m| root.join(m))
            .find(|d| d.join("cpuacct.usage").exists());
        if let Some(v1_root) = v1_root {
            let dir = v1_path
                .map(|p| v1_root.join(p))
                .filter(|d| d.join("cpuacct.usage").exists())
                .unwrap_or(v1_root);
            return Some(CpuCgroup::V1(dir));
        }
        if root.join("cgroup.controllers").exists() {
            let dir = v2_path
                .map(|p| root.join(p))
                .filter(|d| d.join("cpu.stat").exists())
                .unwrap_or_else(|| root.to_path_buf());
            return Some(CpuCgroup::V2(dir));
        }
        None
    }

    /// This process's own CPU accounting cgroup (`None` off Linux or without one).
    pub fn of_this_process() -> Option<CpuCgroup> {
        let text = std::fs::read_to_string("/proc/self/cgroup").ok()?;
        CpuCgroup::find(Path::new("/sys/fs/cgroup"), &text)
    }

    /// CPU time used by the cgroup's processes so far, in microseconds.
    pub fn usage_us(&self) -> Option<u64> {
        match self {
            CpuCgroup::V2(dir) => {
                let text = std::fs::read_to_string(dir.join("cpu.stat")).ok()?;
                parse_cpu_stat_usage_us(&text)
            }
            CpuCgroup::V1(dir) => read_number(&dir.join("cpuacct.usage")).map(|ns| ns / 1000),
        }
    }

    /// Whether the cgroup's own CPU use is limited (v2 `cpu.max` other than `max`, v1 a
    /// positive `cpu.cfs_quota_us`).
    pub fn limited(&self) -> bool {
        match self {
            CpuCgroup::V2(dir) => std::fs::read_to_string(dir.join("cpu.max"))
                .is_ok_and(|t| t.split_whitespace().next().is_some_and(|q| q != "max")),
            CpuCgroup::V1(dir) => std::fs::read_to_string(dir.join("cpu.cfs_quota_us"))
                .ok()
                .and_then(|t| t.trim().parse::<i64>().ok())
                .is_some_and(|q| q > 0),
        }
    }
}

/// `usage_usec` from the text of a v2 `cpu.stat`.
fn parse_cpu_stat_usage_us(text: &str) -> Option<u64> {
    text.lines().find_map(|line| {
        let value = line.strip_prefix("usage_usec ")?;
        value.trim().parse().ok()
    })
}

/// How the worker measures the memory it uses: its container's cgroup when that has a
/// limit (the whole pod: worker, executors, page cache it cannot drop), else the
/// resident sizes of the worker process and its executors. Likewise the CPU time it
/// used: its container's CPU accounting when it has a cgroup of its own (a memory or a
/// CPU limit), else the CPU time of the worker process and its executors.
pub struct Probe {
    cgroup: Option<Cgroup>,
    cpu: Option<CpuCgroup>,
}

impl Probe {
    pub fn new() -> Self {
        let cgroup = Cgroup::of_this_process().filter(|c| c.limit().is_some());
        let cpu = CpuCgroup::of_this_process()
            .filter(|c| (cgroup.is_some() || c.limited()) && c.usage_us().is_some());
        Probe { cgroup, cpu }
    }

    /// Bytes in use now; `executor_pids` are the executor processes' ids, `shared` the
    /// bytes of the store's shared-memory files. Without a cgroup: each process's private
    /// resident memory, and the shared files once (a file several processes map is in the
    /// resident size of each).
    pub fn used(&self, executor_pids: impl Iterator<Item = u32>, shared: u64) -> u64 {
        if let Some(used) = self.cgroup.as_ref().and_then(Cgroup::working_set) {
            return used;
        }
        private_bytes(std::process::id()) + executor_pids.map(private_bytes).sum::<u64>() + shared
    }

    /// CPU time used so far in microseconds; `executor_pids` are the executor processes'
    /// ids. Only differences between two readings mean anything.
    pub fn cpu_us(&self, executor_pids: impl Iterator<Item = u32>) -> u64 {
        if let Some(used) = self.cpu.as_ref().and_then(CpuCgroup::usage_us) {
            return used;
        }
        let own = crate::cpu::process_cpu_us(std::process::id());
        own + executor_pids.map(crate::cpu::process_cpu_us).sum::<u64>()
    }

    /// The cgroup whose limit the worker is held to (`None`: no cgroup limit).
    pub fn cgroup(&self) -> Option<&Cgroup> {
        self.cgroup.as_ref()
    }

    /// What is measured, for the log.
    pub fn source(&self) -> String {
        match &self.cgroup {
            Some(Cgroup::V1(dir) | Cgroup::V2(dir)) => format!("cgroup {}", dir.display()),
            None => "the worker's and its executors' private resident memory, and the \
                 shared-memory store"
                .into(),
        }
    }

    /// Whose CPU time is measured, for the log.
    pub fn cpu_source(&self) -> String {
        match &self.cpu {
            Some(CpuCgroup::V1(dir) | CpuCgroup::V2(dir)) => format!("cgroup {}", dir.display()),
            None => "the worker's and its executors' CPU time".into(),
        }
    }
}

impl Default for Probe {
    fn default() -> Self {
        Self::new()
    }
}

/// A file holding one number (`max` reads as unlimited, i.e. `None`).
fn read_number(path: &Path) -> Option<u64> {
    std::fs::read_to_string(path).ok()?.trim().parse().ok()
}

/// One `name value` line of the cgroup's `memory.stat`.
fn stat_field(dir: &Path, name: &str) -> Option<u64> {
    let text = std::fs::read_to_string(dir.join("memory.stat")).ok()?;
    text.lines().find_map(|line| {
        let (key, value) = line.split_once(' ')?;
        (key == name).then(|| value.trim().parse().ok()).flatten()
    })
}

/// Resident memory of a process in bytes that is its own: the resident set less the
/// pages it shares with files and shared memory (0 when it is gone).
pub fn private_bytes(pid: u32) -> u64 {
    let Ok(statm) = std::fs::read_to_string(format!("/proc/{pid}/statm")) else {
        return 0;
    };
    let mut fields = statm
        .split_whitespace()
        .skip(1)
        .map(|f| f.parse::<u64>().unwrap_or(0));
    let (resident, shared) = (fields.next().unwrap_or(0), fields.next().unwrap_or(0));
    resident.saturating_sub(shared) * 4096
}

/// Physical memory of the machine in bytes (0 when unknown).
pub fn physical_bytes() -> u64 {
    std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|s| {
            let line = s.lines().find(|l| l.starts_with("MemTotal:"))?;
            line.split_whitespace().nth(1)?.parse::<u64>().ok()
        })
        .map_or(0, |kib| kib * 1024)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(dir: &Path, files: &[(&str, &str)]) {
        for (name, text) in files {
            let path = dir.join(name);
            std::fs::create_dir_all(path.parent().expect("parent")).expect("mkdir");
            std::fs::write(path, text).expect("write");
        }
    }

    /// v2 in a cgroup namespace: the root is the container; working set drops inactive
    /// file cache; `max` is no limit.
    #[test]
    fn v2_namespaced_container() {
        let root = tempfile::tempdir().expect("tempdir");
        write(
            root.path(),
            &[
                ("cgroup.controllers", "cpu memory pids\n"),
                ("memory.max", "268435456\n"),
                ("memory.current", "200000000\n"),
                (
                    "memory.stat",
                    "anon 150000000\nfile 50000000\ninactive_file 30000000\n",
                ),
            ],
        );
        let cg = Cgroup::find(root.path(), "0::/\n").expect("found");
        assert_eq!(cg, Cgroup::V2(root.path().to_path_buf()));
        assert_eq!(cg.limit(), Some(268_435_456));
        assert_eq!(cg.working_set(), Some(170_000_000));
        assert_eq!(cg.oom_kills(), None);
        write(
            root.path(),
            &[("memory.events", "low 0\nhigh 0\nmax 4\noom 2\noom_kill 1\n")],
        );
        assert_eq!(cg.oom_kills(), Some(1));
        write(root.path(), &[("memory.max", "max\n")]);
        assert_eq!(cg.limit(), None);
    }

    /// v2 on a host: the process's own cgroup is found by its path, and a parent's lower
    /// limit applies.
    #[test]
    fn v2_nested_path_takes_the_lowest_limit() {
        let root = tempfile::tempdir().expect("tempdir");
        write(
            root.path(),
            &[
                ("cgroup.controllers", "memory\n"),
                ("kubepods/memory.current", "1\n"),
                ("kubepods/memory.max", "100000\n"),
                ("kubepods/pod1/memory.current", "5000\n"),
                ("kubepods/pod1/memory.max", "max\n"),
                ("kubepods/pod1/memory.stat", "inactive_file 1000\n"),
            ],
        );
        let cg = Cgroup::find(root.path(), "0::/kubepods/pod1\n").expect("found");
        assert_eq!(cg, Cgroup::V2(root.path().join("kubepods/pod1")));
        assert_eq!(cg.limit(), Some(100_000));
        assert_eq!(cg.working_set(), Some(4000));
    }

    /// v1: the memory controller's line names the path; a hierarchical limit lower than
    /// the group's own applies; the unlimited value reads as none.
    #[test]
    fn v1_host_path_and_hierarchical_limit() {
        let root = tempfile::tempdir().expect("tempdir");
        write(
            root.path(),
            &[
                ("memory/memory.limit_in_bytes", "9223372036854771712\n"),
                ("memory/memory.usage_in_bytes", "1\n"),
                ("memory/job/memory.limit_in_bytes", "9223372036854771712\n"),
                ("memory/job/memory.usage_in_bytes", "80000\n"),
                (
                    "memory/job/memory.stat",
                    "rss 50000\ninactive_file 99\ntotal_inactive_file 20000\nhierarchical_memory_limit 500000\n",
                ),
            ],
        );
        let text = "9:name=systemd:/\n4:memory:/job\n0::/\n";
        let cg = Cgroup::find(root.path(), text).expect("found");
        assert_eq!(cg, Cgroup::V1(root.path().join("memory/job")));
        assert_eq!(cg.limit(), Some(500_000));
        assert_eq!(cg.working_set(), Some(60_000));
        let top = Cgroup::V1(root.path().join("memory"));
        assert_eq!(top.limit(), None);
    }

    /// v1 in a container: /proc/self/cgroup names a host path that is not mounted; the
    /// mounted controller root is the container's cgroup.
    #[test]
    fn v1_container_falls_back_to_the_mount() {
        let root = tempfile::tempdir().expect("tempdir");
        write(
            root.path(),
            &[
                ("memory/memory.limit_in_bytes", "536870912\n"),
                ("memory/memory.usage_in_bytes", "300000000\n"),
                ("memory/memory.stat", "total_inactive_file 0\n"),
            ],
        );
        let text = "4:memory:/kubepods/burstable/podabc/0123\n";
        let cg = Cgroup::find(root.path(), text).expect("found");
        assert_eq!(cg, Cgroup::V1(root.path().join("memory")));
        assert_eq!(cg.limit(), Some(536_870_912));
        assert_eq!(cg.working_set(), Some(300_000_000));
        write(
            root.path(),
            &[(
                "memory/memory.oom_control",
                "oom_kill_disable 0\nunder_oom 0\noom_kill 3\n",
            )],
        );
        assert_eq!(cg.oom_kills(), Some(3));
    }

    /// No memory controller at all: nothing is found (the worker measures processes).
    #[test]
    fn none_without_a_controller() {
        let root = tempfile::tempdir().expect("tempdir");
        assert_eq!(Cgroup::find(root.path(), "0::/\n"), None);
        assert_eq!(CpuCgroup::find(root.path(), "0::/\n"), None);
    }

    /// v2 in a cgroup namespace: the root is the container; CPU time is `usage_usec`;
    /// `cpu.max` says whether it is limited.
    #[test]
    fn v2_cpu_namespaced_container() {
        let root = tempfile::tempdir().expect("tempdir");
        write(
            root.path(),
            &[
                ("cgroup.controllers", "cpu memory pids\n"),
                (
                    "cpu.stat",
                    "usage_usec 123456789\nuser_usec 100000000\nsystem_usec 23456789\n\
                     nr_periods 0\nnr_throttled 0\nthrottled_usec 0\n",
                ),
                ("cpu.max", "max 100000\n"),
            ],
        );
        let cg = CpuCgroup::find(root.path(), "0::/\n").expect("found");
        assert_eq!(cg, CpuCgroup::V2(root.path().to_path_buf()));
        assert_eq!(cg.usage_us(), Some(123_456_789));
        assert!(!cg.limited());
        write(root.path(), &[("cpu.max", "200000 100000\n")]);
        assert!(cg.limited());
    }

    /// v2 on a host: the process's own cgroup is found by its path; a `cpu.stat` without
    /// `usage_usec` reads as nothing.
    #[test]
    fn v2_cpu_nested_path() {
        let root = tempfile::tempdir().expect("tempdir");
        write(
            root.path(),
            &[
                ("cgroup.controllers", "cpu\n"),
                ("cpu.stat", "usage_usec 999\n"),
                ("kubepods/pod1/cpu.stat", "usage_usec 42\n"),
                ("kubepods/pod2/cpu.stat", "nr_periods 0\n"),
            ],
        );
        let cg = CpuCgroup::find(root.path(), "0::/kubepods/pod1\n").expect("found");
        assert_eq!(cg, CpuCgroup::V2(root.path().join("kubepods/pod1")));
        assert_eq!(cg.usage_us(), Some(42));
        let other = CpuCgroup::find(root.path(), "0::/kubepods/pod2\n").expect("found");
        assert_eq!(other.usage_us(), None);
    }

    /// v1: the cpuacct controller's line names the path (under a `cpu,cpuacct` mount);
    /// `cpuacct.usage` nanoseconds read as microseconds; a quota of -1 is no limit.
    #[test]
    fn v1_cpu_host_path() {
        let root = tempfile::tempdir().expect("tempdir");
        write(
            root.path(),
            &[
                ("cpu,cpuacct/cpuacct.usage", "1\n"),
                ("cpu,cpuacct/job/cpuacct.usage", "5000123456\n"),
                ("cpu,cpuacct/job/cpu.cfs_quota_us", "-1\n"),
                ("memory/memory.limit_in_bytes", "1\n"),
            ],
        );
        let text = "9:name=systemd:/\n5:cpu,cpuacct:/job\n4:memory:/job\n0::/\n";
        let cg = CpuCgroup::find(root.path(), text).expect("found");
        assert_eq!(cg, CpuCgroup::V1(root.path().join("cpu,cpuacct/job")));
        assert_eq!(cg.usage_us(), Some(5_000_123));
        assert!(!cg.limited());
        write(
            root.path(),
            &[("cpu,cpuacct/job/cpu.cfs_quota_us", "50000\n")],
        );
        assert!(cg.limited());
    }

    /// v1 in a container: /proc/self/cgroup names a host path that is not mounted; the
    /// mounted cpuacct root (mounted alone here) is the container's cgroup.
    #[test]
    fn v1_cpu_container_falls_back_to_the_mount() {
        let root = tempfile::tempdir().expect("tempdir");
        write(
            root.path(),
            &[("cpuacct/cpuacct.usage", "15078326352419\n")],
        );
        let text =
            "2:cpuacct:/kubepods/burstable/podabc/0123\n1:cpu:/kubepods/burstable/podabc/0123\n";
        let cg = CpuCgroup::find(root.path(), text).expect("found");
        assert_eq!(cg, CpuCgroup::V1(root.path().join("cpuacct")));
        assert_eq!(cg.usage_us(), Some(15_078_326_352));
        assert!(!cg.limited(), "no cpu controller files: not limited");
    }
}
