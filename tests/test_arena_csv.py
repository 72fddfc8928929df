"""The CSV fast lane of the arena-file reader equals the general converter: on random files
(repeated and spaced header names, short and long rows, blank lines, empty and bad cells, the
same model twice, odd winners and timestamps, identical rows repeated) ``iter_import`` yields
the same row numbers, events (key order included) and errors as ``csv.DictReader`` records fed
one by one to the converter, as the reader did before the lane; except that a row with more or
fewer cells than the header's columns is refused (``bad_csv``), and a header with a repeated
name refuses the file (the reader before took the last cell of the name, silently). Pure: tmp
files."""

from __future__ import annotations

import csv
import io
from pathlib import Path
from typing import Any

import msgspec
import pytest
from arbiter.adapters.arena_files import (
    IMPORT_EPOCH,
    ArenaFileError,
    RowError,
    _Converter,
    iter_import,
)
from arbiter.adapters.arena_values import rfc3339
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

MODELS = ["gpt-4", "claude-v1", " gpt-4 ", "vicuna 13b", "", " ", "x" * 129, "é-model"]
WINNERS = ["model_a", "model_b", "tie", "tie (bothbad)", " Tie (BothBad) ", "TIE", "both", ""]
STAMPS = ["1682351591.1234", "1682351600", "", " ", "-5", "nan", "2024-03-01 10:00:00", "soon"]
OTHERS = ["question_id", "judge", "voter", "language", "id", "battle_id", "turn", "model_a"]


@st.composite
def files(draw: Any) -> tuple[list[str], list[list[str]]]:
    """A header with the required columns (perhaps spaced, perhaps a name twice) and rows of
    cells drawn from values the checks accept and refuse."""
    extra = draw(st.lists(st.sampled_from([*OTHERS, "tstamp"]), max_size=4))
    names = draw(st.permutations(["model_a", "model_b", "winner", *extra]))
    header = [f" {n}" if draw(st.booleans()) and n == "winner" else n for n in names]
    cell = {
        "model_a": st.sampled_from(MODELS),
        "model_b": st.sampled_from(MODELS),
        "winner": st.sampled_from(WINNERS),
        "tstamp": st.sampled_from(STAMPS),
    }
    row = st.tuples(
        *(
            cell.get(n.strip(), st.sampled_from(["", "q1", "q2", "x y", " q3 ", "7"]))
            for n in header
        )
    )
    rows = [list(r) for r in draw(st.lists(row, max_size=30))]
    for _ in range(draw(st.integers(0, 3))):  # a repeated row, a blank line, a ragged row
        if rows:
            i = draw(st.integers(0, len(rows) - 1))
            kind = draw(st.sampled_from(["repeat", "blank", "short", "long"]))
            if kind == "repeat":
                rows.insert(draw(st.integers(0, len(rows))), list(rows[i]))
            elif kind == "blank":
                rows.insert(i, [])
            elif kind == "short":
                rows[i] = rows[i][:-1]
            else:
                rows[i] = [*rows[i], "extra"]
    return header, rows


def general(path: Path, **options: Any) -> list[tuple[int, Any]]:
    """The reader before the fast lane: DictReader records through the general converter."""
    convert = _Converter(
        options.get("arena", "default"),
        options.get("category"),
        rfc3339(IMPORT_EPOCH),
        options.get("source", "arbiter-import"),
        options.get("judge", "human"),
    )
    with open(path, encoding="utf-8-sig", newline="") as f:
        reader = csv.DictReader(f)
        reader.fieldnames = [n.strip() for n in reader.fieldnames or []]
        out: list[tuple[int, Any]] = []
        for n, record in enumerate(reader, 1):
            if None in record or None in record.values():  # more or fewer cells than columns
                out.append((n, RowError(n, "bad_csv", "(cells)")))
            else:
                out.append((n, convert(n, record, events=False)))
        return out


def spelled(items: list[tuple[int, Any]]) -> list[tuple[int, bytes]]:
    """Each row as bytes, key order included (what the import encodes and sends); a row
    refused for its shape as its code (its sentence names its lines in the file)."""
    return [
        (n, b"bad_csv" if isinstance(item, RowError) and item.code == "bad_csv" else
            msgspec.json.encode(item))
        for n, item in items
    ]  # fmt: skip


@settings(
    max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(files(), st.sampled_from([None, "coding"]), st.booleans())
def test_fast_lane_equals_the_general_converter(
    tmp_path: Path, file: tuple[list[str], list[list[str]]], category: str | None, bom: bool
) -> None:
    header, rows = file
    text = io.StringIO()
    csv.writer(text).writerows([header, *rows])
    path = tmp_path / "battles.csv"
    path.write_text(("\ufeff" if bom else "") + text.getvalue(), encoding="utf-8")
    options = {"arena": "lmsys", "category": category}
    names = [name.strip() for name in header]
    if len(set(names)) < len(names):  # which cell of a repeated name is the value?
        with pytest.raises(ArenaFileError, match="more than once"):
            list(iter_import(path, fmt="arena-csv", **options))
        return
    assert spelled(list(iter_import(path, fmt="arena-csv", **options))) == spelled(
        general(path, **options)
    )


def test_a_release_shaped_file_takes_the_lane_and_keeps_its_ids(tmp_path: Path) -> None:
    """The common case, fixed: the ids of a plain release are the ones the reader gave before
    the lane (values taken from it), repeated rows get occurrences 1 and 2, and a bad row in
    between is refused with its own code."""
    path = tmp_path / "r.csv"
    path.write_text(
        "question_id,model_a,model_b,winner,tstamp\n"
        "q1,gpt-4,claude-v1,model_a,1682351591.1234\n"
        "q1,gpt-4,claude-v1,model_a,1682351591.1234\n"
        "q2,gpt-4,gpt-4,tie,1682351600\n"
        "q3,gpt-4,claude-v1,tie (bothbad),\n"
    )
    got = list(iter_import(path, arena="lmsys"))
    assert spelled(got) == spelled(general(path, arena="lmsys"))
    first, second, bad, last = (item for _, item in got)
    assert [first["event_id"], second["event_id"], last["event_id"]] == [  # as before the lane
        "import:7ba7c25f4cec74a13b73622f3e75913a",
        "import:103ddbd92dd29eaa25489ab4e3d3fcd0",
        "import:28717079e6dc8b1672cffb15f041ccde",
    ]
    assert bad.code == "same_model"
    assert last["occurred_at"] == "1970-01-01T00:00:00Z"
    assert last["meta"] == {"winner": "tie (bothbad)", "question_id": "q3"}
