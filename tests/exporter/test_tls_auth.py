"""TLS, mTLS and basic auth from an exporter-toolkit web config, with real clients: curl
and Prometheus itself. A throw-away CA and certificates are made with openssl."""

from __future__ import annotations

import io
import subprocess
from pathlib import Path

import bcrypt
import pytest

from sockscope.cli.env import Env
from sockscope.cli.main import main
from tests.exporter.helpers import exporter, make_certs, need_tool, prometheus, wait_for

PASSWORD = "correct horse battery staple"


def _hash(password: str) -> str:
    return bcrypt.hashpw(password.encode(), bcrypt.gensalt(rounds=10)).decode()


def _web_config(root: Path, certs: dict[str, Path], *, mtls: bool = False) -> Path:
    lines = [
        "tls_server_config:",
        f"  cert_file: {certs['server.pem'].name}",  # relative: to the file's directory
        f"  key_file: {certs['server.key'].name}",
    ]
    if mtls:
        lines += ["  client_auth_type: RequireAndVerifyClientCert", f"  client_ca_file: {certs['ca.pem']}"]
    lines += [
        "http_server_config:",
        "  headers:",
        "    X-Content-Type-Options: nosniff",
        "basic_auth_users:",
        f"  prom: {_hash(PASSWORD)}",
    ]
    path = root / ("web-mtls.yml" if mtls else "web.yml")
    path.write_text("\n".join(lines) + "\n")
    return path


def curl(*args: str) -> tuple[int, str]:
    """curl's HTTP status (0 when no HTTP answer came) and its error text."""
    exe = need_tool("curl")
    res = subprocess.run(
        [exe, "-sS", "-o", "/dev/null", "-w", "%{http_code}", "--max-time", "10", *args],
        capture_output=True,
        text=True,
        check=False,
    )
    return int(res.stdout or 0), res.stderr


def test_tls_and_basic_auth_with_curl(tmp_path: Path) -> None:
    certs = make_certs(tmp_path)
    web = _web_config(tmp_path, certs)
    with exporter("--web-config", str(web), "--no-events") as exp:
        assert exp.scheme == "https"
        url = f"https://127.0.0.1:{exp.port}/metrics"
        ca = ("--cacert", str(certs["ca.pem"]))
        assert curl(*ca, "-u", f"prom:{PASSWORD}", url)[0] == 200
        assert curl(*ca, "-u", "prom:wrong", url)[0] == 401
        assert curl(*ca, "-u", f"nobody:{PASSWORD}", url)[0] == 401
        assert curl(*ca, url)[0] == 401
        # The landing page sits behind the same door.
        assert curl(*ca, f"https://127.0.0.1:{exp.port}/")[0] == 401
        # Plain HTTP to the TLS port is refused with a 400 that says why.
        code, _ = curl(f"http://127.0.0.1:{exp.port}/metrics")
        assert code == 400
        # A client that does not trust the CA fails the handshake.
        code, err = curl(url)
        assert code == 0 and "certificate" in err.lower()
        # The configured header is on every answer.
        out = subprocess.run(
            ["curl", "-sS", "-D", "-", "-o", "/dev/null", *ca, "-u", f"prom:{PASSWORD}", url],
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        assert "x-content-type-options: nosniff" in out.lower()
        assert exp.stop() == 0


def test_mutual_tls(tmp_path: Path) -> None:
    certs = make_certs(tmp_path)
    web = _web_config(tmp_path, certs, mtls=True)
    with exporter("--web-config", str(web), "--no-events") as exp:
        url = f"https://127.0.0.1:{exp.port}/metrics"
        ca = ("--cacert", str(certs["ca.pem"]))
        client = ("--cert", str(certs["client.pem"]), "--key", str(certs["client.key"]))
        assert curl(*ca, *client, "-u", f"prom:{PASSWORD}", url)[0] == 200
        assert curl(*ca, "-u", f"prom:{PASSWORD}", url)[0] == 0  # no client certificate: no TLS


def test_prometheus_scrapes_through_tls_and_basic_auth(tmp_path: Path) -> None:
    certs = make_certs(tmp_path)
    web = _web_config(tmp_path, certs, mtls=True)
    with exporter("--web-config", str(web), "--no-events") as exp:
        tls = {
            "ca_file": str(certs["ca.pem"]),
            "cert_file": str(certs["client.pem"]),
            "key_file": str(certs["client.key"]),
        }
        target = {"targets": [f"127.0.0.1:{exp.port}"]}
        jobs = [
            {
                "job_name": "good",
                "scheme": "https",
                "tls_config": tls,
                "basic_auth": {"username": "prom", "password": PASSWORD},
                "static_configs": [target],
            },
            {
                "job_name": "wrong-password",
                "scheme": "https",
                "tls_config": tls,
                "basic_auth": {"username": "prom", "password": "guess"},
                "static_configs": [target],
            },
        ]
        with prometheus(jobs) as prom:
            assert wait_for(lambda: [v for _, v in prom.query('up{job="good"}')] == [1.0])
            assert wait_for(lambda: [v for _, v in prom.query('up{job="wrong-password"}')] == [0.0])
            assert prom.query('sockscope_up{job="good"}')[0][1] == 1.0
            bad = next(t for t in prom.targets() if t["labels"]["job"] == "wrong-password")  # type: ignore[index]
            assert "401" in str(bad["lastError"])


def run_cli(*argv: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    code = main(list(argv), Env(stdout=out, stderr=err))
    return code, out.getvalue(), err.getvalue()


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("tls_server_config: [", "not valid YAML"),
        ("nonsense: 1\n", "unknown field 'nonsense'"),
        ("basic_auth_users:\n  prom: plaintext\n", "not a bcrypt hash"),
        ("tls_server_config:\n  cert_file: /nonexistent.pem\n  key_file: /nonexistent.key\n", "cannot load"),
        ("tls_server_config:\n  key_file: x.key\n", "missing one of cert or cert_file"),
        (
            "tls_server_config:\n  cert_file: a\n  key_file: b\n  client_auth_type: Sometimes\n",
            "not supported",
        ),
        ("http_server_config:\n  headers:\n    Server: me\n", "can not be configured"),
        ("rate_limit:\n  interval: soon\n", "not a duration"),
    ],
)
def test_bad_web_config_is_one_line_and_exit_2(tmp_path: Path, content: str, message: str) -> None:
    path = tmp_path / "web.yml"
    path.write_text(content)
    code, out, err = run_cli("exporter", "--web-config", str(path))
    assert code == 2 and out == ""
    assert err.count("\n") == 1 and err.startswith("sockscope: ") and message in err, err


def test_missing_web_config_is_exit_2(tmp_path: Path) -> None:
    code, _, err = run_cli("exporter", "--web-config", str(tmp_path / "absent.yml"))
    assert code == 2 and "cannot read web config" in err and err.count("\n") == 1


def test_successful_checks_are_remembered_and_failures_are_not() -> None:
    import base64  # noqa: PLC0415

    from sockscope.exporter.web import BasicAuth  # noqa: PLC0415

    auth = BasicAuth({"prom": _hash(PASSWORD).encode()})

    def header(user: str, password: str) -> str:
        return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()

    assert auth.allows(header("prom", PASSWORD)) and auth.checks == 1
    for _ in range(5):
        assert auth.allows(header("prom", PASSWORD))
    assert auth.checks == 1  # bcrypt ran once for six requests
    for _ in range(2):
        assert not auth.allows(header("prom", "wrong"))
    assert auth.checks == 3  # each failure pays bcrypt again
    assert not auth.allows(header("ghost", PASSWORD)) and auth.checks == 4  # unknown users too
    assert not auth.allows("Bearer abc") and not auth.allows("Basic !!!") and auth.checks == 4
