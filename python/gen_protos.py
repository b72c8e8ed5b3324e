"""Generates the Python gRPC stubs (shoal/v1/*_pb2*.py) from ../proto, the one source of
truth. `--check` regenerates into a temporary folder and fails if the committed stubs
differ (CI runs it)."""

import filecmp
import pathlib
import shutil
import sys
import tempfile

from grpc_tools import protoc

HERE = pathlib.Path(__file__).resolve().parent
PROTO = HERE.parent / "proto"


def generate(out: pathlib.Path) -> None:
    files = sorted(str(p) for p in (PROTO / "shoal" / "v1").glob("*.proto"))
    args = ["protoc", f"-I{PROTO}", f"--python_out={out}", f"--grpc_python_out={out}", f"--pyi_out={out}", *files]
    if protoc.main(args) != 0:
        sys.exit("protoc failed")


def main() -> None:
    target = HERE / "shoal" / "v1"
    if "--check" in sys.argv:
        with tempfile.TemporaryDirectory() as tmp:
            generate(pathlib.Path(tmp))
            fresh = pathlib.Path(tmp) / "shoal" / "v1"
            names = sorted(p.name for p in fresh.iterdir() if p.is_file())
            _, mismatch, errors = filecmp.cmpfiles(fresh, target, names, shallow=False)
            if mismatch or errors:
                sys.exit(f"stale Python stubs {mismatch + errors}: run `python python/gen_protos.py` and commit")
        print("Python stubs are up to date")
        return
    with tempfile.TemporaryDirectory() as tmp:
        generate(pathlib.Path(tmp))
        target.mkdir(parents=True, exist_ok=True)
        for p in (pathlib.Path(tmp) / "shoal" / "v1").iterdir():
            shutil.copy(p, target / p.name)
    (target / "__init__.py").write_text('"""Generated from proto/shoal/v1 by gen_protos.py; do not edit."""\n')


if __name__ == "__main__":
    main()
