"""ShoalJob on the full test node: examples/job.yaml runs a script that computes a Dask
graph on a fresh cluster and succeeds, and the cluster is gone afterwards; a failing
script is retried `backoffLimit` times and then fails the job with its exit code and last
log lines in an Event; a runner past `activeDeadlineSeconds` is deleted and the job fails
with `DeadlineExceeded`; `ttlSecondsAfterFinished` deletes the finished job."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from bed import events

pytestmark = pytest.mark.node

REPO = Path(__file__).resolve().parents[2]

SMALL = "{requests: {cpu: 50m, memory: 64Mi}, limits: {cpu: '1', memory: 512Mi}}"


def job_manifest(name: str, script: str, extra: str = "", workers: int = 0) -> str:
    """A ShoalJob whose runner runs the Python `script` (one line per list item)."""
    lines = "\n".join(f"        {line}" for line in script.strip().splitlines())
    return f"""
apiVersion: shoal.dev/v1alpha1
kind: ShoalJob
metadata:
  name: {name}
spec:
  cluster:
    scheduler: {{resources: {{requests: {{cpu: 50m, memory: 64Mi}}}}}}
    workers: {{replicas: {workers}, minReplicas: 0, resources: {SMALL}}}
  runner:
    command: [python3, -c]
    args:
      - |
{lines}
    resources: {SMALL}
{extra}
"""


def job_status(kubectl, name: str) -> dict:
    return kubectl.get("shoaljob", name).get("status", {})


def condition(status: dict, type_: str) -> dict | None:
    return next((c for c in status.get("conditions", []) if c["type"] == type_ and c["status"] == "True"), None)


def finished(kubectl, name: str, type_: str, timeout: float) -> dict:
    """Waits for the job's `Complete` or `Failed` condition; fails at once on the other."""
    other = "Failed" if type_ == "Complete" else "Complete"

    def check():
        status = job_status(kubectl, name)
        if condition(status, other):
            raise AssertionError(f"job {name} ended {other}, not {type_}: {status}")
        return condition(status, type_) and status

    return kubectl.wait_until(f"job {name} to be {type_}", check, timeout=timeout)


def cluster_gone(kubectl, cluster: str) -> None:
    kubectl.wait_until(
        f"cluster {cluster} and its pods to be gone",
        lambda: not kubectl.exists("shoalcluster", cluster)
        and kubectl.run("get", "pods", "-l", f"shoal.dev/cluster={cluster}", "-o", "name").stdout.strip() == "",
        timeout=120,
    )


def runner_pods(kubectl, job: str) -> dict[str, dict]:
    pods = json.loads(kubectl.run("get", "pods", "-l", f"shoal.dev/job={job}", "-o", "json").stdout)["items"]
    return {p["metadata"]["name"]: p for p in pods}


def test_example_job_computes_a_dask_graph_and_cleans_up(kubectl, operator):
    """examples/job.yaml succeeds (Complete, exit code 0, a Normal Event), its runner's log
    shows the Dask result, and its cluster with every pod is gone afterwards."""
    kubectl.apply((REPO / "examples" / "job.yaml").read_text())
    status = finished(kubectl, "dask-demo", "Complete", timeout=420)
    assert status["phase"] == "Succeeded", status
    assert (status["succeeded"], status["failed"], status["attempts"], status["exitCode"]) == (1, 0, 1, 0), status
    assert status["completions"] == "1/1" and status["duration"] and status["clusterName"] == "dask-demo-cluster", status
    log = kubectl.run("logs", "dask-demo-runner-1").stdout
    assert "connected to dask-demo-cluster" in log and "equal to the threaded scheduler" in log, log
    cluster_gone(kubectl, "dask-demo-cluster")
    notes = events(kubectl, "dask-demo")
    assert any(r == "Completed" and "dask-demo-runner-1 succeeded" in n for r, n in notes), notes
    assert [r for r, _ in notes if r == "ClusterCreated"] == ["ClusterCreated"], notes
    listed = kubectl.run("get", "shj", "dask-demo").stdout
    assert "Succeeded" in listed and "1/1" in listed, listed


# One stream only: the kubelet's log interleaves stdout and stderr written at once in any order.
FAILING = """
import sys
for i in range(40):
    print(f"progress line {i}", file=sys.stderr)
print("ValueError: the input table is empty", file=sys.stderr)
sys.exit(3)
"""


def test_failing_script_is_retried_then_fails_with_exit_code_and_log_lines(kubectl, operator):
    """backoffLimit 1: two attempts, the first reported with a retry; then Failed
    (BackoffLimitExceeded) with exit code 3 and the script's last lines in a Warning Event
    and the status; the cluster is deleted, the failed runner pods stay for `kubectl logs`."""
    kubectl.apply(job_manifest("failing", FAILING, "  backoffLimit: 1"))
    status = finished(kubectl, "failing", "Failed", timeout=300)
    assert condition(status, "Failed")["reason"] == "BackoffLimitExceeded", status
    assert (status["phase"], status["exitCode"], status["attempts"], status["failed"]) == ("Failed", 3, 2, 2), status
    assert "ValueError: the input table is empty" in status["message"], status
    assert "progress line 39" in status["message"] and "progress line 5\n" not in status["message"], status
    assert set(runner_pods(kubectl, "failing")) == {"failing-runner-1", "failing-runner-2"}
    notes = events(kubectl, "failing")
    retried = [n for r, n in notes if r == "RunnerFailed"]
    assert len(retried) == 1 and "exited with code 3" in retried[0] and "attempt 1 of 2" in retried[0], notes
    created = sorted(n.split()[3] for r, n in notes if r == "SuccessfulCreate")
    assert created == ["failing-runner-1", "failing-runner-2"], notes
    final = [n for r, n in notes if r == "BackoffLimitExceeded"]
    assert len(final) == 1, notes
    assert "failing-runner-2 exited with code 3" in final[0] and "attempt 2 of 2" in final[0], final
    assert final[0].rstrip().endswith("ValueError: the input table is empty") and "progress line 39" in final[0], final
    cluster_gone(kubectl, "failing-cluster")


def test_deadline_deletes_the_running_runner_and_fails_the_job(kubectl, operator):
    """A runner still running at activeDeadlineSeconds is deleted and the job fails with
    DeadlineExceeded (quoting the runner's last lines); the cluster goes."""
    script = 'import time\nprint("working", flush=True)\ntime.sleep(3600)'
    kubectl.apply(job_manifest("slow", script, "  activeDeadlineSeconds: 60"))
    kubectl.wait_until("the runner to run", lambda: job_status(kubectl, "slow").get("phase") == "Running", timeout=60)
    status = finished(kubectl, "slow", "Failed", timeout=90)
    assert condition(status, "Failed")["reason"] == "DeadlineExceeded", status
    notes = [n for r, n in events(kubectl, "slow") if r == "DeadlineExceeded"]
    assert notes and "activeDeadlineSeconds (60s)" in notes[0] and "deleting runner pod slow-runner-1" in notes[0], notes
    assert notes[0].rstrip().endswith("working"), notes
    kubectl.wait_until(
        "the runner pod to be deleted",
        lambda: not any(
            not p["metadata"].get("deletionTimestamp") and p["status"].get("phase") in ("Pending", "Running")
            for p in runner_pods(kubectl, "slow").values()
        ),
        timeout=60,
    )
    cluster_gone(kubectl, "slow-cluster")


def test_ttl_deletes_the_finished_job_and_its_pods(kubectl, operator):
    """ttlSecondsAfterFinished: the finished job, and with it its runner pod, is deleted."""
    kubectl.apply(job_manifest("brief", 'print("done")', "  ttlSecondsAfterFinished: 5"))
    kubectl.wait_until(
        "the job to finish and be deleted",
        lambda: not kubectl.exists("shoaljob", "brief"),
        timeout=240,
    )
    notes = events(kubectl, "brief")
    assert any(r == "Completed" for r, _ in notes), notes
    kubectl.wait_until("its runner pod to be gone", lambda: not runner_pods(kubectl, "brief"), timeout=120)
    cluster_gone(kubectl, "brief-cluster")
