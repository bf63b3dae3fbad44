"""Host names are resolved within one total time budget: a dead DNS never stalls a listing."""

from __future__ import annotations

import time
from ipaddress import IPv4Address, ip_address

from sockscope.model.endpoint import IPAddress
from sockscope.sources.resolver import resolve_hosts, service_name


def test_a_stalled_resolver_costs_at_most_the_budget() -> None:
    def stalled(addr: IPAddress) -> str | None:
        if addr == IPv4Address("10.9.9.9"):
            time.sleep(5)  # a resolver that never answers in time
        return f"host-{addr}"

    addrs = [ip_address("10.9.9.9"), ip_address("127.0.0.1"), ip_address("::1")]
    start = time.monotonic()
    names = resolve_hosts(addrs, budget_s=0.3, lookup=stalled)
    assert time.monotonic() - start < 1.5
    assert names == {ip_address("127.0.0.1"): "host-127.0.0.1", ip_address("::1"): "host-::1"}


def test_real_loopback_and_services() -> None:
    names = resolve_hosts([ip_address("127.0.0.1")])
    assert names.get(ip_address("127.0.0.1")) in ("localhost", "localhost.localdomain")
    assert service_name(23, "tcp") == "telnet"
    assert service_name(1, "udp") in (None, "tcpmux")
    assert service_name(65000, "tcp") is None


def test_a_stalled_lookup_does_not_hold_the_process_at_exit() -> None:
    import subprocess  # noqa: PLC0415
    import sys  # noqa: PLC0415

    code = (
        "import time; from ipaddress import ip_address; "
        "from sockscope.sources.resolver import resolve_hosts; "
        "print(resolve_hosts([ip_address('10.9.9.9')], 0.2, lambda a: time.sleep(30)))"
    )
    start = time.monotonic()
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=20, check=True
    ).stdout
    assert out.strip() == "{}"
    assert time.monotonic() - start < 5
