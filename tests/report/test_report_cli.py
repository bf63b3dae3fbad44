"""``sockscope report`` at the command line: outputs, modes, and every bad input in one line."""

from __future__ import annotations

import io
import os
import sqlite3
import stat
import sys
from pathlib import Path

import pytest

from sockscope.cli.env import Env
from sockscope.cli.main import main
from tests.report.helpers import make_recording


def run(*argv: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    code = main(["report", *argv], Env(stdout=out, stderr=err))
    return code, out.getvalue(), err.getvalue()


def one_line(err: str) -> bool:
    return err.count("\n") == 1 and err.startswith("sockscope: ") and "Traceback" not in err


@pytest.fixture
def recording(tmp_path: Path) -> Path:
    return make_recording(tmp_path / "run.db")


def test_html_and_csv(recording: Path, tmp_path: Path) -> None:
    html, tables = tmp_path / "r.html", tmp_path / "tables"
    code, _, err = run(str(recording), "-o", str(html), "--csv", str(tables))
    assert code == 0, err
    page = html.read_text()
    assert page.startswith("<!DOCTYPE html>") and "<script" not in page
    # Nothing to load: no source, link or stylesheet from elsewhere (xmlns names are names).
    for reach in ("src=", 'href="http', "url(http", "@import", "<link", "<img"):
        assert reach not in page, reach
    for name in ("io", "queue-1", "durations", "rtt", "ports", "processes", "transitions"):
        assert f'id="plot-{name}"' in page, name
    assert sorted(p.name for p in tables.iterdir()) == [
        "conversations.csv",
        "durations.csv",
        "events_by_kind.csv",
        "io.csv",
        "listeners.csv",
        "ports.csv",
        "processes.csv",
        "transitions.csv",
    ]


def test_outputs_are_owner_only_when_the_recording_is(recording: Path, tmp_path: Path) -> None:
    old = os.umask(0o022)
    try:
        recording.chmod(0o600)
        assert run(str(recording), "-o", str(tmp_path / "a.html"), "--csv", str(tmp_path / "a"))[0] == 0
        recording.chmod(0o644)
        assert run(str(recording), "-o", str(tmp_path / "b.html"), "--csv", str(tmp_path / "b"))[0] == 0
    finally:
        os.umask(old)

    def mode(p: Path) -> int:
        return stat.S_IMODE(p.stat().st_mode)

    assert mode(tmp_path / "a.html") == 0o600 and mode(tmp_path / "a") == 0o700
    assert {mode(p) for p in (tmp_path / "a").iterdir()} == {0o600}
    assert mode(tmp_path / "b.html") == 0o644 and mode(tmp_path / "b") == 0o755


def test_an_existing_output_is_kept_unless_overwrite(recording: Path, tmp_path: Path) -> None:
    html = tmp_path / "r.html"
    html.write_text("mine")
    code, _, err = run(str(recording), "-o", str(html))
    assert code == 2 and one_line(err) and "--overwrite" in err and html.read_text() == "mine"
    assert run(str(recording), "-o", str(html), "--overwrite")[0] == 0
    assert html.read_text().startswith("<!DOCTYPE html>")


def test_a_symbolic_link_is_not_followed(recording: Path, tmp_path: Path) -> None:
    target = tmp_path / "precious"
    target.write_text("keep")
    link = tmp_path / "r.html"
    link.symlink_to(target)
    for extra in ([], ["--overwrite"]):
        code, _, err = run(str(recording), "-o", str(link), *extra)
        assert code == 1 and one_line(err) and "symbolic link" in err
    assert target.read_text() == "keep"


@pytest.mark.parametrize(
    ("where", "code", "needle"),
    [
        ("MISSING/r.html", 1, "no directory"),
        ("DIR", 2, "exists"),
        ("/proc/version", 2, "exists"),
    ],
)
def test_unwritable_outputs(recording: Path, tmp_path: Path, where: str, code: int, needle: str) -> None:
    path = {"MISSING/r.html": str(tmp_path / "no" / "r.html"), "DIR": str(tmp_path)}.get(where, where)
    got, out, err = run(str(recording), "-o", path)
    assert (got, out) == (code, "") and one_line(err) and needle in err, err
    got, _, err = run(str(recording), "-o", path, "--overwrite")
    assert got == 1 and one_line(err), err


@pytest.mark.skipif(os.geteuid() != 0, reason="root writes anywhere but a read-only place")
def test_an_unwritable_directory_for_another_user(recording: Path, tmp_path: Path) -> None:
    code, _, err = run(str(recording), "--csv", "/proc/sockscope-report")
    assert code == 1 and one_line(err) and "cannot make" in err


def test_damaged_and_foreign_recordings(recording: Path, tmp_path: Path) -> None:
    garbage = tmp_path / "garbage.db"
    garbage.write_bytes(b"not a database at all " * 200)
    foreign = tmp_path / "foreign.db"
    sqlite3.connect(foreign).execute("CREATE TABLE t (x)").connection.commit()
    cut = tmp_path / "cut.db"
    cut.write_bytes(recording.read_bytes()[: recording.stat().st_size // 2])
    for bad, needle in (
        (garbage, "not a sockscope recording"),
        (foreign, "foreign SQLite database"),
        (cut, "damaged recording"),
        (tmp_path / "missing.db", "no such recording"),
    ):
        code, out, err = run(str(bad), "-o", str(tmp_path / "r.html"))
        assert (code, out) == (2, "") and one_line(err) and needle in err, (bad.name, err)
    assert not (tmp_path / "r.html").exists()


def test_bad_arguments(recording: Path, tmp_path: Path) -> None:
    for argv, needle in (
        ([str(recording)], "say where the report goes"),
        ([str(recording), "--pcap", str(recording), "--csv", str(tmp_path / "c")], "not a capture"),
        ([str(recording), "--pcap", str(tmp_path / "none"), "--csv", str(tmp_path / "c")], "No such file"),
    ):
        code, _, err = run(*argv)
        assert code == 2 and one_line(err) and needle in err, (argv, err)


def test_a_bad_filter_is_shown_with_its_caret(recording: Path, tmp_path: Path) -> None:
    code, _, err = run(str(recording), "lprot == 1", "--csv", str(tmp_path / "c"))
    assert code == 2 and err.startswith("sockscope: bad filter at column 1") and "did you mean 'lport'" in err
    assert err.splitlines()[-1].strip() == "^" and not (tmp_path / "c").exists()


def test_the_missing_extra_is_named(recording: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # As if matplotlib were not installed: importing it fails.
    for name in [m for m in sys.modules if m == "matplotlib" or m.startswith("matplotlib.")]:
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    code, _, err = run(str(recording), "-o", str(tmp_path / "r.html"))
    assert code == 1 and one_line(err) and "extra 'report'" in err and "sockscope[report]" in err
    assert not (tmp_path / "r.html").exists()
    # The tables need no plotting library.
    assert run(str(recording), "--csv", str(tmp_path / "tables"))[0] == 0


def test_pdf_without_chromium(recording: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from sockscope.report import pdf  # noqa: PLC0415

    monkeypatch.setattr(pdf, "CANDIDATES", ("/nonexistent/chromium",))
    code, _, err = run(str(recording), "--pdf", str(tmp_path / "r.pdf"))
    assert code == 1 and one_line(err) and "chromium-headless-shell" in err
    assert not (tmp_path / "r.pdf").exists()
