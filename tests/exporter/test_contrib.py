"""contrib/: the alert rules (promtool's own unit tests), the Grafana dashboard's
structure, the systemd unit and the Kubernetes DaemonSet."""

from __future__ import annotations

import configparser
import json
import os
import re
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from sockscope.cli.exporter_cmd import DEFAULT_PORT
from sockscope.exporter.privilege import NEEDED_CAPS
from tests.exporter.helpers import REPO, RULES, exporter, need_tool

CONTRIB = REPO / "contrib"
DASHBOARD = CONTRIB / "grafana" / "sockscope.json"
UNIT = CONTRIB / "systemd" / "sockscope-exporter.service"
DAEMONSET = CONTRIB / "kubernetes" / "daemonset.yml"

# PromQL words that are not metric names.
_PROMQL_WORDS = {
    "sum", "by", "rate", "increase", "histogram_quantile", "without", "on", "ignoring", "and", "or",
    "unless", "le", "bool", "offset", "max", "min", "avg", "count", "topk", "irate",
}  # fmt: skip


def metric_names(expr: str) -> set[str]:
    """The metric names a PromQL expression reads (label matchers and strings removed)."""
    bare = re.sub(r'"[^"]*"', "", expr)
    bare = re.sub(r"\{[^}]*\}", "", bare)
    bare = re.sub(r"\[[^\]]*\]", "", bare)
    bare = re.sub(r"\bby\s*\([^)]*\)", "", bare)
    words = set(re.findall(r"[a-zA-Z_:][a-zA-Z0-9_:]*", bare))
    return {w for w in words if w not in _PROMQL_WORDS and not re.fullmatch(r"\d.*", w)}


def dashboard_exprs() -> list[str]:
    doc = json.loads(DASHBOARD.read_text())
    return [t["expr"] for p in doc["panels"] for t in p.get("targets", [])]


def rule_exprs() -> list[str]:
    doc = yaml.safe_load(RULES.read_text())
    return [r["expr"] for g in doc["groups"] for r in g["rules"]]


def test_promtool_rule_unit_tests() -> None:
    promtool = need_tool("promtool")
    res = subprocess.run(
        [promtool, "test", "rules", "rules_test.yml"],
        cwd=RULES.parent,
        capture_output=True,
        text=True,
        check=False,
    )
    assert res.returncode == 0 and "SUCCESS" in res.stdout, res.stdout + res.stderr
    res = subprocess.run(
        [promtool, "check", "rules", str(RULES)], capture_output=True, text=True, check=False
    )
    assert res.returncode == 0 and "4 rules found" in res.stdout, res.stdout + res.stderr


def test_dashboard_structure() -> None:
    doc = json.loads(DASHBOARD.read_text())
    assert doc["uid"] and doc["title"] and doc["schemaVersion"] >= 36
    variables = {v["name"]: v for v in doc["templating"]["list"]}
    assert set(variables) == {"datasource", "instance", "netns", "lport"}
    ids = [p["id"] for p in doc["panels"]]
    assert len(ids) == len(set(ids))
    titles = [p["title"] for p in doc["panels"]]
    for wanted in ("Accept queue fill", "Half-open handshakes", "Listener drops", "Connection duration"):
        assert wanted in titles
    for panel in doc["panels"]:
        grid = panel["gridPos"]
        assert grid["x"] >= 0 and grid["x"] + grid["w"] <= 24 and grid["h"] > 0
        if panel["type"] == "row":
            continue
        assert panel["targets"], panel["title"]
        for target in panel["targets"]:
            assert target["datasource"]["uid"] == "${datasource}"
            names = metric_names(target["expr"])
            assert names and all(n.startswith("sockscope_") for n in names), target["expr"]
            # Every panel is filtered by the dashboard's variables.
            assert '$instance"' in target["expr"]
    (heatmap,) = [p for p in doc["panels"] if p["type"] == "heatmap"]
    assert heatmap["targets"][0]["format"] == "heatmap"
    assert "sockscope_port_connection_duration_seconds_bucket" in heatmap["targets"][0]["expr"]


def test_dashboard_and_rules_name_only_exported_metrics() -> None:
    """The names themselves: every one is a family the exporter defines (with the suffix
    its type gives). That each shows up in a real scrape is checked against the kernel
    in test_kernel.py, where connections make the counters appear."""
    from sockscope.exporter.families import Families  # noqa: PLC0415

    exported = {"sockscope_series_folded_total", "sockscope_build_info"}
    for fam in Families().all():
        suffixes = {"counter": ["_total"], "histogram": ["_bucket", "_sum", "_count"], "info": ["_info"]}
        for suffix in suffixes.get(fam.type, [""]):
            exported.add(fam.name + suffix)
    for expr in [*dashboard_exprs(), *rule_exprs()]:
        assert metric_names(expr) <= exported, expr


def _unit() -> configparser.RawConfigParser:
    parser = configparser.RawConfigParser(strict=False, comment_prefixes=("#",))
    parser.optionxform = str  # type: ignore[assignment,method-assign]
    parser.read(UNIT)
    return parser


def test_systemd_unit_is_hardened_and_grants_what_the_exporter_needs() -> None:
    service = _unit()["Service"]
    assert service["ExecStart"].split()[1:3] == ["exporter", "--listen"]
    assert f":{DEFAULT_PORT}" in service["ExecStart"]
    assert set(service["AmbientCapabilities"].split()) == set(NEEDED_CAPS)
    assert set(service["CapabilityBoundingSet"].split()) == set(NEEDED_CAPS)
    for key, expected in {
        "DynamicUser": "yes",
        "NoNewPrivileges": "yes",
        "ProtectSystem": "strict",
        "ProtectHome": "yes",
        "PrivateTmp": "yes",
        "RestrictNamespaces": "net",
    }.items():
        assert service[key] == expected, key
    assert "AF_NETLINK" in service["RestrictAddressFamilies"]


def test_systemd_analyze_verify(tmp_path: Path) -> None:
    analyze = shutil.which("systemd-analyze")
    if analyze is None:
        pytest.skip("systemd-analyze is not installed")
    unit = tmp_path / UNIT.name
    exe = Path(sys.executable).with_name("sockscope")
    unit.write_text(UNIT.read_text().replace("/usr/local/bin/sockscope", str(exe)))
    res = subprocess.run([analyze, "verify", str(unit)], capture_output=True, text=True, check=False)
    assert res.returncode == 0 and res.stderr.strip() == "", res.stderr


@pytest.mark.skipif(os.geteuid() != 0, reason="setpriv to another user needs root")
def test_the_units_capabilities_suffice(netns: str) -> None:
    """As an unprivileged user holding only the unit's ambient capabilities: another
    namespace is read, root's listener there is named, and the watch engine runs its
    eBPF source (CAP_SYS_ADMIN allows it)."""
    from tests.exporter.test_kernel import samples, value, wait_for  # noqa: PLC0415
    from tests.helpers.netns import socket_in  # noqa: PLC0415

    caps = ",".join(
        "+" + c.removeprefix("CAP_").lower() for c in _unit()["Service"]["AmbientCapabilities"].split()
    )
    setpriv = need_tool("setpriv")
    drop = [setpriv, "--reuid=65534", "--regid=65534", "--clear-groups", f"--inh-caps=-all,{caps}",
            f"--ambient-caps=-all,{caps}", f"--bounding-set=-all,{caps}"]  # fmt: skip
    srv = socket_in(netns)
    srv.bind(("127.0.0.1", 2323))
    srv.listen(4)
    try:
        with exporter("--netns", netns, preexec=drop) as exp:
            rows = samples(exp.url)
            assert value(rows, "sockscope_up", netns=netns) == 1.0
            comm = Path("/proc/self/comm").read_text().strip()
            assert value(rows, "sockscope_listener_backlog", lport="2323", process=comm) == 4
            assert wait_for(lambda: "bpf" in _sources_in(samples(exp.url)))
    finally:
        srv.close()


def _sources_in(rows: list[tuple[str, dict[str, str], float]]) -> set[str]:
    return {lab["source"] for name, lab, _ in rows if name == "sockscope_watch_source_info"}


def test_daemonset() -> None:
    docs = list(yaml.safe_load_all(DAEMONSET.read_text()))
    (ds,) = [d for d in docs if d["kind"] == "DaemonSet"]
    spec = ds["spec"]["template"]["spec"]
    assert spec["hostNetwork"] is True and spec["hostPID"] is True
    assert (
        ds["spec"]["selector"]["matchLabels"].items() <= ds["spec"]["template"]["metadata"]["labels"].items()
    )
    (container,) = spec["containers"]
    assert container["args"][0] == "exporter" and "--all-netns" in container["args"]
    assert f"--listen=:{DEFAULT_PORT}" in container["args"]
    assert container["ports"][0]["containerPort"] == DEFAULT_PORT
    sc = container["securityContext"]
    assert sc["capabilities"]["drop"] == ["ALL"] and sc["readOnlyRootFilesystem"] is True
    assert {f"CAP_{c}" for c in sc["capabilities"]["add"]} == set(NEEDED_CAPS)
    mounts = {m["name"]: m for m in container["volumeMounts"]}
    volumes = {v["name"]: v for v in spec["volumes"]}
    assert set(mounts) == set(volumes)
    assert (
        mounts["netns"]["mountPath"] == "/run/netns" and volumes["netns"]["hostPath"]["path"] == "/run/netns"
    )


def test_default_port_is_free_here() -> None:
    """The default port is not one this machine's services file names (nor the kubelet's)."""
    with pytest.raises(OSError):
        socket.getservbyport(DEFAULT_PORT, "tcp")
    assert not 10248 <= DEFAULT_PORT <= 10260
