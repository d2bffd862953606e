"""What /recordings/ answers, from the files alone (the daemon's doors: test_recording_control)."""

from __future__ import annotations

import http
from collections.abc import Iterator
from pathlib import Path

import pytest

from eegpi.recording import http as rec_http


@pytest.fixture
def served(tmp_path: Path) -> Iterator[Path]:
    data = tmp_path / "data"
    (data / "lab").mkdir(parents=True)
    (data / "lab" / "a.bdf").write_bytes(bytes(range(256)) * 4)
    (tmp_path / "secret.bdf").write_bytes(b"outside")
    (data / "lab" / "link.bdf").symlink_to(tmp_path / "secret.bdf")
    rec_http.serve_from(data)
    try:
        yield data
    finally:
        rec_http.serve_from(None)


def test_whole_file_and_ranges(served: Path) -> None:
    body = (served / "lab" / "a.bdf").read_bytes()
    whole = rec_http.answer("/recordings/lab/a.bdf")
    assert whole.status == http.HTTPStatus.OK and whole.body == body
    part = rec_http.answer("/recordings/lab/a.bdf", "bytes=10-19")
    assert part.status == http.HTTPStatus.PARTIAL_CONTENT and part.body == body[10:20]
    assert ("Content-Range", f"bytes 10-19/{len(body)}") in part.headers
    assert rec_http.answer("/recordings/lab/a.bdf", "bytes=-4").body == body[-4:]
    assert rec_http.answer("/recordings/lab/a.bdf", "bytes=1000-").body == body[1000:]
    bad = rec_http.answer("/recordings/lab/a.bdf", "bytes=5000-6000")
    assert bad.status == http.HTTPStatus.REQUESTED_RANGE_NOT_SATISFIABLE


def test_a_file_over_the_cap_says_to_use_ranges(
    served: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(rec_http, "MAX_BODY_BYTES", 100)
    big = rec_http.answer("/recordings/lab/a.bdf")
    assert big.status == http.HTTPStatus.REQUEST_ENTITY_TOO_LARGE
    assert b"Range: bytes=START-END" in big.body
    capped = rec_http.answer("/recordings/lab/a.bdf", "bytes=0-")
    assert capped.status == http.HTTPStatus.PARTIAL_CONTENT and len(capped.body) == 100


@pytest.mark.parametrize(
    "path",
    [
        "/recordings/../secret.bdf",
        "/recordings/lab/%2e%2e/%2e%2e/secret.bdf",
        "/recordings//etc/passwd",
        "/recordings/lab/link.bdf",
        "/recordings/lab/a.txt",
    ],
)
def test_names_outside_the_data_directory_are_refused(served: Path, path: str) -> None:
    reply = rec_http.answer(path)
    assert reply.status == http.HTTPStatus.BAD_REQUEST, reply
    assert b"outside" not in reply.body or b"leads outside" in reply.body


def test_the_index_lists_the_recordings(served: Path) -> None:
    reply = rec_http.answer("/recordings/")
    assert reply.status == http.HTTPStatus.OK
    assert b'"recordings": []' in reply.body  # the files above are not BDF headers
