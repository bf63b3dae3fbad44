"""Pure: which container a process runs in, told by its cgroup path.

Container runtimes name the cgroup they create after the container's ID (64 hex digits),
in one of a few shapes, depending on the runtime and on the cgroup driver (systemd or
cgroupfs):

| runtime | systemd driver | cgroupfs driver |
| --- | --- | --- |
| Docker | ``.../docker-<id>.scope`` | ``/docker/<id>`` |
| containerd (CRI, Kubernetes) | ``.../cri-containerd-<id>.scope`` | ``/kubepods/<qos>/pod<uid>/<id>`` |
| containerd (nerdctl) | ``.../nerdctl-<id>.scope`` | ``/<namespace>/<id>`` |
| CRI-O | ``.../crio-<id>.scope`` | ``/kubepods/.../crio-<id>`` |
| Podman | ``.../libpod-<id>.scope`` | ``/libpod_parent/libpod-<id>`` |

The monitor processes beside a container (``crio-conmon-<id>``, ``libpod-conmon-<id>``)
are not the container and are skipped. The label value is ``runtime://id``, the form
Kubernetes uses in a pod's ``containerID`` status, so series join with kube-state-metrics.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import NamedTuple

_ID = r"(?P<id>[0-9a-f]{64})"
# Ordered: the first matching shape wins, most specific first.
_SHAPES: tuple[tuple[str, re.Pattern[str]], ...] = (
    ("containerd", re.compile(rf"cri-containerd-{_ID}\.scope$")),
    ("cri-o", re.compile(rf"(?<!conmon-)crio-{_ID}(\.scope)?$")),
    ("podman", re.compile(rf"(?<!conmon-)libpod-{_ID}(\.scope)?$")),
    ("docker", re.compile(rf"docker-{_ID}\.scope$")),
    ("docker", re.compile(rf"/docker/{_ID}$")),
    ("containerd", re.compile(rf"nerdctl-{_ID}\.scope$")),
    # The cgroupfs driver of the kubelet names neither runtime nor prefix: the pod's
    # directory holds the bare ID. containerd is what nearly every cluster runs now.
    ("containerd", re.compile(rf"/kubepods/(?:[a-z]+/)?pod[0-9a-f_-]+/{_ID}$")),
    # containerd without Kubernetes: /<containerd namespace>/<id>.
    ("containerd", re.compile(rf"^/[a-z0-9][a-z0-9._-]*/{_ID}$")),
)
_POD = re.compile(r"pod(?P<uid>[0-9a-f]{8}[-_][0-9a-f]{4}[-_][0-9a-f]{4}[-_][0-9a-f]{4}[-_][0-9a-f]{12})")


class Container(NamedTuple):
    """A container a process runs in, as far as its cgroup tells."""

    runtime: str  # docker, containerd, cri-o, podman
    id: str  # 64 hex digits
    pod_uid: str | None = None  # Kubernetes pod UID, when the path holds one

    @property
    def label(self) -> str:
        """``runtime://id``, as a Kubernetes pod status names its containers."""
        return f"{self.runtime}://{self.id}"


def container_from_cgroup_paths(paths: Iterable[str]) -> Container | None:
    """The container named by any of a process's cgroup paths (None on a plain host).

    Paths are tried in order: give the v2 path (hierarchy 0) first where there is one.
    """
    for path in paths:
        trimmed = path.rstrip("/")
        for runtime, shape in _SHAPES:
            m = shape.search(trimmed)
            if m is not None:
                pod = _POD.search(trimmed)
                uid = pod.group("uid").replace("_", "-") if pod is not None else None
                return Container(runtime, m.group("id"), uid)
    return None
