"""Shared fixtures: fresh network namespaces so only a test's own sockets are seen."""

from __future__ import annotations

import os
import subprocess
import uuid
from collections.abc import Iterator

import pytest

IS_ROOT = os.geteuid() == 0
needs_root = pytest.mark.skipif(not IS_ROOT, reason="creating network namespaces needs root")


@pytest.fixture
def netns() -> Iterator[str]:
    """A new, empty network namespace with loopback up; removed afterwards."""
    if not IS_ROOT:
        pytest.skip("creating network namespaces needs root")
    name = f"sockscope-test-{uuid.uuid4().hex[:8]}"
    subprocess.run(["ip", "netns", "add", name], check=True)
    try:
        subprocess.run(["ip", "-n", name, "link", "set", "lo", "up"], check=True)
        yield name
    finally:
        subprocess.run(["ip", "netns", "del", name], check=False)


@pytest.fixture
def primer(netns: str) -> Iterator[str]:
    """A namespace holding the primer's states (tests/helpers/scenario.py)."""
    from tests.helpers import scenario  # noqa: PLC0415 - root-only tests need it

    sc = scenario.build(netns)
    try:
        yield netns
    finally:
        sc.close()
