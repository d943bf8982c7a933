"""The spill file: events kept on disk in emission order, read back from the front, kept across runs."""

from __future__ import annotations

import logging
import os
import tempfile
from pathlib import Path

import pytest
from streamll.core.events import Event
from streamll.sinks.spill import SpillFile

from tests.core.support import event, indices


def _lines(path: Path) -> list[bytes]:
    return path.read_bytes().splitlines()


def test_without_a_path_the_file_goes_to_the_temp_dir_named_after_the_sink() -> None:
    spill = SpillFile(name="mysink")
    try:
        assert spill.path.parent == Path(tempfile.gettempdir()) / "streamll-spill"
        assert spill.path.name.startswith(f"mysink-{os.getpid()}-") and spill.path.suffix == ".jsonl"
        assert spill.path.exists() and spill.pending == 0
        assert SpillFile(name="mysink").path != spill.path  # two sinks of one name keep apart
    finally:
        spill.close()
    assert not spill.path.exists()


def test_an_unnamed_file_is_named_sink_and_a_missing_temp_dir_is_created(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path / "not" / "yet"))  # TMPDIR naming a directory to create
    spill = SpillFile()
    try:
        assert spill.path.parent == tmp_path / "not" / "yet" / "streamll-spill"
        assert spill.path.name.startswith(f"sink-{os.getpid()}-")
        spill.append(event(0))
        assert indices(spill.read(1)) == [0]
    finally:
        spill.close()


def test_missing_directories_of_an_explicit_path_are_created(tmp_path: Path) -> None:
    path = tmp_path / "a" / "b" / "spill.jsonl"
    spill = SpillFile(path)
    spill.append(event(0))
    assert indices(spill.read(10)) == [0]
    spill.close()


def test_events_come_back_oldest_first_at_most_limit_at_a_time(tmp_path: Path) -> None:
    spill = SpillFile(tmp_path / "spill.jsonl")
    for index in range(5):
        spill.append(event(index))
    assert spill.pending == 5 and len(_lines(spill.path)) == 5
    assert indices(spill.read(2)) == [0, 1]
    assert spill.pending == 3
    spill.append(event(5))
    assert indices(spill.read(3)) == [2, 3, 4]
    assert indices(spill.read(10)) == [5]
    assert spill.pending == 0 and spill.read(10) == []
    assert spill.path.read_bytes() == b""  # an emptied file is truncated, not left to grow
    spill.append(event(6))
    assert indices(spill.read(10)) == [6]
    spill.close()


def test_read_with_nothing_pending_returns_nothing_even_if_lines_remain(tmp_path: Path) -> None:
    spill = SpillFile(tmp_path / "spill.jsonl")
    assert spill.read(5) == []
    spill.close()


def test_an_earlier_runs_events_are_counted_and_a_cut_line_removed(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "spill.jsonl"
    path.write_bytes(b"".join(event(i).to_json() + b"\n" for i in range(3)) + event(3).to_json()[:15])
    with caplog.at_level(logging.WARNING, logger="streamll"):
        spill = SpillFile(path)
    assert spill.pending == 3
    assert path.read_bytes().endswith(b"\n") and len(_lines(path)) == 3
    assert [record.getMessage() for record in caplog.records] == [
        f"streamll: spill file {path} holds 3 event(s) from an earlier run; they are delivered first"
    ]
    spill.append(event(4))
    assert indices(spill.read(10)) == [0, 1, 2, 4]
    spill.close()


def test_an_empty_first_line_left_by_an_earlier_run_counts_as_an_event(tmp_path: Path) -> None:
    path = tmp_path / "spill.jsonl"
    path.write_bytes(b"\n" + event(1).to_json() + b"\n")
    spill = SpillFile(path)
    assert spill.pending == 2  # the blank line is read (and skipped as unreadable), not lost from the count
    assert indices(spill.read(10)) == [1] and spill.pending == 0
    spill.close()


def test_events_with_non_ascii_text_are_read_back_one_at_a_time(tmp_path: Path) -> None:
    spill = SpillFile(tmp_path / "spill.jsonl")
    texts = ["h\u00e9llo", "\u65e5\u672c\u8a9e", "\U0001f600 ok", "plain"]
    for index, text in enumerate(texts):
        spill.append(Event(event_type="custom", execution_id="exec", data={"i": index, "text": text}))
    read_back = [item.data["text"] for _ in texts for item in spill.read(1)]  # one at a time: offsets in bytes
    assert read_back == texts and spill.pending == 0
    spill.close()


def test_a_fresh_file_logs_no_leftover_warning(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    path = tmp_path / "spill.jsonl"
    path.write_bytes(b"")
    with caplog.at_level(logging.WARNING, logger="streamll"):
        spill = SpillFile(path)
    assert spill.pending == 0 and not caplog.records
    spill.close()


def test_an_unreadable_line_is_skipped_logged_and_not_counted_again(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "spill.jsonl"
    path.write_bytes(event(0).to_json() + b"\n" + b"not json\n" + event(2).to_json() + b"\n")
    spill = SpillFile(path)
    with caplog.at_level(logging.ERROR, logger="streamll"):
        assert indices(spill.read(10)) == [0, 2]
    assert spill.pending == 0
    assert [record.getMessage() for record in caplog.records if record.levelno == logging.ERROR] == [
        f"streamll: skipped an unreadable line in spill file {path}"
    ]
    spill.close()


def test_put_back_goes_in_front_of_what_is_left(tmp_path: Path) -> None:
    spill = SpillFile(tmp_path / "spill.jsonl")
    for index in range(4):
        spill.append(event(index))
    assert indices(spill.read(2)) == [0, 1]
    spill.put_back([event(10), event(11)])
    assert spill.pending == 4
    assert not spill.path.with_name(spill.path.name + ".tmp").exists()
    assert len(_lines(spill.path)) == 4  # the read lines are gone from the file
    spill.append(event(12))
    assert indices(spill.read(2)) == [10, 11]
    assert indices(spill.read(10)) == [2, 3, 12]
    spill.close()


def test_put_back_of_nothing_changes_nothing(tmp_path: Path) -> None:
    spill = SpillFile(tmp_path / "spill.jsonl")
    spill.append(event(0))
    before = spill.path.read_bytes()
    spill.put_back([])
    assert spill.pending == 1 and spill.path.read_bytes() == before
    spill.close(remove=True)
    assert spill.path.exists()  # still holds an event


def test_put_back_survives_a_new_run(tmp_path: Path) -> None:
    path = tmp_path / "spill.jsonl"
    spill = SpillFile(path)
    spill.append(event(1))
    spill.put_back([event(0)])
    spill.close()
    again = SpillFile(path)
    assert again.pending == 2 and indices(again.read(10)) == [0, 1]
    again.close()
    assert not path.exists()


def test_close_keeps_the_file_when_asked_or_when_it_holds_events(tmp_path: Path) -> None:
    kept = SpillFile(tmp_path / "kept.jsonl")
    kept.close(remove=False)
    assert kept.path.exists()
    emptied = SpillFile(tmp_path / "emptied.jsonl")
    emptied.append(event(0))
    emptied.read(1)
    emptied.close()
    assert not emptied.path.exists()


def test_closing_a_file_someone_already_removed_is_not_an_error(tmp_path: Path) -> None:
    spill = SpillFile(tmp_path / "spill.jsonl")
    spill.path.unlink()
    spill.close()
    assert not spill.path.exists()
