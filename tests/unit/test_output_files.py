"""Output files made new, never through a link, private when the data was privileged."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from sockscope.sources.files import OutputFileError, create_new_file, write_new_file


@pytest.mark.parametrize("kind", ["file", "link", "dangling-link", "fifo", "directory"])
def test_an_existing_name_of_any_kind_is_refused(tmp_path: Path, kind: str) -> None:
    target, path = tmp_path / "target", tmp_path / "out"
    target.write_text("keep")
    if kind == "file":
        path.write_text("keep")
    elif kind == "link":
        path.symlink_to(target)
    elif kind == "dangling-link":
        path.symlink_to(tmp_path / "made-by-the-link")
    elif kind == "fifo":
        os.mkfifo(path)
    else:
        path.mkdir()
    with pytest.raises(OutputFileError, match="already exists"):
        write_new_file(str(path), "new", private=True)
    assert target.read_text() == "keep" and not (tmp_path / "made-by-the-link").exists()


def test_modes_follow_the_privilege_of_the_data(tmp_path: Path) -> None:
    old = os.umask(0o022)
    try:
        write_new_file(str(tmp_path / "a"), "x", private=True)
        write_new_file(str(tmp_path / "b"), "x", private=False)
    finally:
        os.umask(old)
    assert (tmp_path / "a").stat().st_mode & 0o777 == 0o600
    assert (tmp_path / "b").stat().st_mode & 0o777 == 0o644


def test_a_directory_that_refuses_is_one_message(tmp_path: Path) -> None:
    with pytest.raises(OutputFileError, match=r"could not create .*: No such file or directory"):
        create_new_file(str(tmp_path / "missing" / "out"), private=True)
