"""The PEP 517 build backend of ``python/``: one project, two well-kept backends.

- Wheels and sdists: maturin (``[tool.maturin]``, ``bindings = "bin"``) compiles the
  ``shoal`` binary of ``runtime/cli`` and packs it as the wheel's script next to the
  ``shoal`` package, so ``pip install`` of the wheel needs no Rust toolchain.
- Editable installs (``pip install -e python``, ``make python-deps``): setuptools, Python
  only. No cargo build runs and no copy of the binary is installed that would go stale
  after the next ``cargo build``; ``find_binary`` takes ``SHOAL_BIN`` or the checkout's
  ``target/release/shoal``.

Each hook imports its backend only when called, after the frontend installed what that
hook's ``get_requires_for_*`` asked for.
"""

from __future__ import annotations

from typing import Any

_MATURIN = "maturin>=1.16,<2"
_SETUPTOOLS = "setuptools>=68"


def get_requires_for_build_wheel(config_settings: dict[str, Any] | None = None) -> list[str]:
    return [_MATURIN]


def prepare_metadata_for_build_wheel(metadata_directory: str, config_settings: dict[str, Any] | None = None) -> str:
    import maturin

    return maturin.prepare_metadata_for_build_wheel(metadata_directory, config_settings)


def build_wheel(
    wheel_directory: str, config_settings: dict[str, Any] | None = None, metadata_directory: str | None = None
) -> str:
    import maturin

    return maturin.build_wheel(wheel_directory, config_settings, metadata_directory)


def get_requires_for_build_sdist(config_settings: dict[str, Any] | None = None) -> list[str]:
    return [_MATURIN]


def build_sdist(sdist_directory: str, config_settings: dict[str, Any] | None = None) -> str:
    import maturin

    return maturin.build_sdist(sdist_directory, config_settings)


def get_requires_for_build_editable(config_settings: dict[str, Any] | None = None) -> list[str]:
    return [_SETUPTOOLS]


def prepare_metadata_for_build_editable(
    metadata_directory: str, config_settings: dict[str, Any] | None = None
) -> str:
    from setuptools import build_meta

    return build_meta.prepare_metadata_for_build_editable(metadata_directory, config_settings)


def build_editable(
    wheel_directory: str, config_settings: dict[str, Any] | None = None, metadata_directory: str | None = None
) -> str:
    from setuptools import build_meta

    return build_meta.build_editable(wheel_directory, config_settings, metadata_directory)
