"""The shoal wheel on its own: ``pip install`` into a fresh virtual environment gives a
working client, ``LocalCluster`` and ``shoal`` command with no Rust toolchain (``make
wheel-test``, part of ``make test``).

    python python/wheel_test.py dist/shoal-<version>-<tags>.whl

Creates a venv in a temporary folder, installs the wheel and ``dask[array]`` into it at
the versions pinned in requirements-test.txt (binary wheels only; the pip cache in
``~/.cache/shoal-tools/wheel-test`` keeps a warm run quick), then, from a folder outside the
checkout, with SHOAL_BIN and the Rust toolchain's variables removed and a PATH that has no
``cargo`` or ``rustc``: runs a graph (``client.map`` plus a Dask array reduction) on
``shoal.LocalCluster()`` found through the venv's scripts directory (the venv's ``bin/`` is
not on PATH for that step) and ``shoal version`` from the venv. Prints one line per check
and ``wheel-test: N passed, N failed``; exits non-zero on any failure.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
import zipfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
CACHE = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "shoal-tools" / "wheel-test"
# The toolchain's and the checkout's hints, all removed from the venv's environment.
DROPPED = re.compile(r"^(SHOAL_|CARGO|RUSTUP|RUSTC|RUSTFLAGS|VIRTUAL_ENV|PYTHONPATH|PYTHONHOME|CONDA_)")

# Runs in the venv's interpreter, from a folder outside the checkout.
PROGRAM = r"""
import os, sys, sysconfig
import dask, dask.array as da, numpy as np
import shoal
from shoal.cluster import find_binary

checkout = sys.argv[1]
assert not shoal.__file__.startswith(checkout), f"imported from the checkout: {shoal.__file__}"
from shoal import _grouping
assert _grouping.native() is not None, "shoal._native does not import from the wheel"
binary = find_binary()
expected = os.path.join(sysconfig.get_path("scripts"), "shoal")
assert binary == expected, f"find_binary() gave {binary}, not the wheel's {expected}"
with shoal.LocalCluster(n_workers=2) as cluster, cluster.get_client() as client:
    assert cluster.binary == expected, cluster.binary
    total = client.submit(sum, client.map(lambda v: v * v, range(1000))).result(timeout=60)
    assert total == sum(v * v for v in range(1000)), total
    x = da.arange(200_000, chunks=10_000).reshape(400, 500)
    (got,) = dask.compute((x * 2).sum(), scheduler=client)
    assert got == 2 * np.arange(200_000).sum(), got
print(f"graph on LocalCluster from the wheel: ok (binary {binary}, package {os.path.dirname(shoal.__file__)})")
"""


def constraints() -> str:
    """requirements-test.txt's pins as pip constraints (constraints take no extras)."""
    lines = []
    for line in (HERE / "requirements-test.txt").read_text().splitlines():
        if m := re.match(r"^([A-Za-z0-9_.-]+)(\[[^\]]*\])?(==\S+)", line.strip()):
            lines.append(m.group(1) + m.group(3))
    return "\n".join(lines) + "\n"


def clean_env(path: str) -> dict[str, str]:
    """This environment without SHOAL_*, the Rust toolchain's and virtualenv variables, on PATH."""
    env = {k: v for k, v in os.environ.items() if not DROPPED.match(k)}
    env["PATH"] = path
    return env


def run(args: list[str], env: dict[str, str], cwd: Path, timeout: float) -> subprocess.CompletedProcess[str]:
    return subprocess.run(args, env=env, cwd=cwd, capture_output=True, text=True, timeout=timeout)


def main() -> int:
    if len(sys.argv) != 2:
        print(__doc__, file=sys.stderr)
        return 2
    wheel = Path(sys.argv[1]).resolve()
    results: list[tuple[str, bool, str]] = []

    def check(name: str, ok: bool, detail: str = "") -> bool:
        results.append((name, ok, detail))
        print(f"{'ok  ' if ok else 'FAIL'} {name}{': ' + detail if detail and not ok else ''}", flush=True)
        return ok

    with zipfile.ZipFile(wheel) as zf:
        names = zf.namelist()
    version = wheel.name.split("-")[1]
    check("the wheel carries the shoal binary", f"shoal-{version}.data/scripts/shoal" in names)
    check("the wheel carries the gRPC stubs", "shoal/v1/client_pb2.py" in names)
    check("the wheel carries shoal._native", "shoal/_native.abi3.so" in names)

    base_path = "/usr/local/bin:/usr/bin:/bin"
    toolchain = [t for t in ("cargo", "rustc", "rustup") if shutil.which(t, path=base_path)]
    if not check("no Rust toolchain on the venv's PATH", not toolchain, f"found {toolchain} on {base_path}"):
        return report(results)

    CACHE.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="shoal-wheel-test-") as tmp:
        tmp_path = Path(tmp)
        venv = tmp_path / "venv"
        work = tmp_path / "work"
        work.mkdir()
        (tmp_path / "constraints.txt").write_text(constraints())
        env = clean_env(base_path)
        started = time.monotonic()
        proc = run([sys.executable, "-m", "venv", str(venv)], env, work, 120)
        if not check("python3 -m venv", proc.returncode == 0, proc.stderr[-2000:]):
            return report(results)
        py = str(venv / "bin" / "python")
        proc = run(
            [py, "-m", "pip", "install", "--quiet", "--disable-pip-version-check", "--only-binary", ":all:",
             "--cache-dir", str(CACHE / "pip"), "-c", str(tmp_path / "constraints.txt"), str(wheel), "dask[array]"],
            env, work, 900,
        )
        took = time.monotonic() - started
        if not check(f"pip install of the wheel and dask[array] into a fresh venv ({took:.1f} s)",
                     proc.returncode == 0, (proc.stdout + proc.stderr)[-3000:]):
            return report(results)

        started = time.monotonic()
        proc = run([py, "-c", PROGRAM, str(REPO)], env, work, 300)
        took = time.monotonic() - started
        check(f"a graph on shoal.LocalCluster() from the wheel, shoal found in the venv's bin/ ({took:.1f} s)",
              proc.returncode == 0, (proc.stdout + proc.stderr)[-3000:])

        venv_env = clean_env(f"{venv / 'bin'}:{base_path}")
        proc = run(["shoal", "version"], venv_env, work, 60)
        out = proc.stdout.strip()
        check(f"`shoal version` from the venv's PATH prints {version}", proc.returncode == 0 and version in out,
              f"exit {proc.returncode}: {out} {proc.stderr[-1000:]}")
        proc = run([py, "-c", "import shoal; print(shoal.__version__)"], env, work, 60)
        check("shoal.__version__ equals the wheel's version", proc.stdout.strip() == version,
              proc.stdout + proc.stderr[-1000:])
    return report(results)


def report(results: list[tuple[str, bool, str]]) -> int:
    failed = sum(1 for _, ok, _ in results if not ok)
    print(f"wheel-test: {len(results) - failed} passed, {failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
