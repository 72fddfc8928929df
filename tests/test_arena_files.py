"""Arena battle files (LMSYS clean_battle layout) and event JSONL as events. Pure: tmp files."""

from __future__ import annotations

import csv
import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import msgspec
import pytest
from arbiter.adapters.arena_files import (
    IMPORT_EPOCH,
    ArenaFileError,
    RowError,
    count_rows,
    detect_format,
    iter_import,
)
from arbiter.domain.events import BattleCompleted
from arbiter.domain.validation import decode_event

BATTLES: list[dict[str, Any]] = [
    {
        "question_id": "q1",
        "model_a": "gpt-4",
        "model_b": "claude-v1",
        "winner": "model_a",
        "judge": "arena_user_1",
        "language": "English",
        "tstamp": 1682351591.1234,
    },
    {
        "question_id": "q2",
        "model_a": "vicuna-13b",
        "model_b": "gpt-4",
        "winner": "model_b",
        "tstamp": 1682351600,
    },
    {"question_id": "q3", "model_a": "a", "model_b": "b", "winner": "tie", "tstamp": 1682351700},
    {
        "question_id": "q4",
        "model_a": "a",
        "model_b": "b",
        "winner": "tie (bothbad)",
        "tstamp": 1682351800.5,
    },
]


def write_json(path: Path, rows: list[Any]) -> Path:
    path.write_text(json.dumps(rows, indent=2))
    return path


def write_jsonl(path: Path, rows: list[Any]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def write_csv(path: Path, rows: list[dict[str, Any]], columns: list[str] | None = None) -> Path:
    columns = columns or ["question_id", "model_a", "model_b", "winner", "tstamp", "language"]
    with path.open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=columns, extrasaction="ignore")
        writer.writeheader()
        writer.writerows(rows)
    return path


def events(path: Path, **kw: Any) -> list[dict[str, Any]]:
    out = []
    for _, item in iter_import(path, **kw):
        assert not isinstance(item, RowError), str(item)
        out.append(item)
    return out


@pytest.fixture(params=["json", "jsonl", "csv"])
def battle_file(request: pytest.FixtureRequest, tmp_path: Path) -> Path:
    writer = {"json": write_json, "jsonl": write_jsonl, "csv": write_csv}[request.param]
    return writer(tmp_path / f"battles.{request.param}", BATTLES)


def test_formats_are_detected_by_content(tmp_path: Path) -> None:
    assert detect_format(write_json(tmp_path / "a.json", BATTLES)) == "arena-json"
    assert detect_format(write_jsonl(tmp_path / "a.jsonl", BATTLES)) == "arena-jsonl"
    assert detect_format(write_csv(tmp_path / "a.csv", BATTLES)) == "arena-csv"
    event = {
        "type": "competitor.registered",
        "event_id": "r1",
        "occurred_at": "2025-01-01T00:00:00Z",
        "competitor": "x",
    }
    assert detect_format(write_jsonl(tmp_path / "e.jsonl", [event])) == "jsonl-events"
    # The extension does not matter.
    assert detect_format(write_jsonl(tmp_path / "battles.csv", BATTLES)) == "arena-jsonl"


def test_every_layout_gives_valid_battle_events(battle_file: Path) -> None:
    got = events(battle_file, arena="lmsys", category="english")
    assert len(got) == count_rows(battle_file) == 4
    first = got[0]
    assert first["type"] == "battle.completed"
    assert (first["a"], first["b"], first["outcome"], first["judge"]) == (
        "gpt-4",
        "claude-v1",
        "a",
        "human",
    )
    assert first["arena"] == "lmsys" and first["category"] == "english"
    # The judge column names the person: kept in meta, never taken as the judge kind.
    person = {"judge": "arena_user_1"} if battle_file.suffix != ".csv" else {}  # CSV: no column
    assert first["meta"] == {"winner": "model_a", "question_id": "q1", **person}
    assert first["event_id"].startswith("import:") and first["battle_id"].startswith("import-")
    assert len({e["event_id"] for e in got}) == len({e["battle_id"] for e in got}) == 4
    for event in got:  # each one passes the ingest's decoding and validation as they stand
        decoded = decode_event(msgspec.json.encode(event))
        assert isinstance(decoded, BattleCompleted), decoded


def test_winner_mapping(battle_file: Path) -> None:
    got = events(battle_file)
    assert [e["outcome"] for e in got] == ["a", "b", "tie", "tie"]
    assert [e["meta"]["winner"] for e in got] == ["model_a", "model_b", "tie", "tie (bothbad)"]


def test_tstamp_becomes_occurred_at_in_utc(battle_file: Path) -> None:
    got = events(battle_file)
    assert got[0]["occurred_at"] == "2023-04-24T15:53:11.123400Z"
    assert got[1]["occurred_at"] == "2023-04-24T15:53:20Z"
    assert got[3]["occurred_at"] == "2023-04-24T15:56:40.500000Z"
    parsed = datetime.fromisoformat(got[1]["occurred_at"])
    assert parsed == datetime.fromtimestamp(1682351600, UTC)


def test_ids_are_deterministic_across_parses_and_layouts(tmp_path: Path) -> None:
    columns = ["question_id", "model_a", "model_b", "winner", "tstamp", "language", "judge"]
    paths = [
        write_json(tmp_path / "b.json", BATTLES),
        write_jsonl(tmp_path / "b.jsonl", BATTLES),
        write_csv(tmp_path / "b.csv", BATTLES, columns),
    ]
    first = events(paths[0])
    assert events(paths[0]) == first  # the same file twice: the same events, byte for byte
    for path in paths[1:]:  # the same rows: the same ids whatever the export format
        assert [e["event_id"] for e in events(path)] == [e["event_id"] for e in first]
    # Another arena is another pool: other ids.
    other = events(paths[0], arena="elsewhere")
    assert not {e["event_id"] for e in other} & {e["event_id"] for e in first}
    # A row's identity is the whole row: dropping a column changes the ids of rows that had it.
    fewer = events(write_csv(tmp_path / "fewer.csv", BATTLES, columns[:-1]))
    assert fewer[0]["event_id"] != first[0]["event_id"]
    assert fewer[1]["event_id"] == first[1]["event_id"]  # row 2 has no judge anyway


def test_rows_differing_in_any_column_are_distinct(tmp_path: Path) -> None:
    """Several judges' votes on one question are several battles (LLMFAO has 3-5 per task);
    before, the id hashed a few columns and such votes collapsed into one."""
    vote = {"question_id": "q1", "model_a": "x", "model_b": "y", "winner": "model_a"}
    rows = [{**vote, "judge": "ann"}, {**vote, "judge": "bob"}, {**vote, "turn": 2}]
    got = events(write_jsonl(tmp_path / "votes.jsonl", rows))
    assert len({e["event_id"] for e in got}) == 3
    assert len({e["battle_id"] for e in got}) == 3


def test_identical_rows_are_counted_by_occurrence(tmp_path: Path) -> None:
    rows = [{"model_a": "x", "model_b": "y", "winner": "model_a"}] * 3
    path = write_csv(tmp_path / "plain.csv", rows, ["model_a", "model_b", "winner"])
    got = events(path)
    assert len({e["event_id"] for e in got}) == 3  # identical rows, three battles
    assert [e["event_id"] for e in events(path)] == [e["event_id"] for e in got]
    # Position is not identity: a row put in front keeps the ids of the rows behind it.
    other = {"model_a": "y", "model_b": "z", "winner": "tie"}
    moved = events(
        write_csv(tmp_path / "moved.csv", [other, *rows], ["model_a", "model_b", "winner"])
    )
    assert [e["event_id"] for e in moved[1:]] == [e["event_id"] for e in got]
    assert {e["occurred_at"] for e in got} == {"1970-01-01T00:00:00Z"}
    assert datetime(1970, 1, 1, tzinfo=UTC) == IMPORT_EPOCH
    when = datetime(2024, 5, 1, 12, tzinfo=UTC)
    later = events(path, default_time=when)
    assert {e["occurred_at"] for e in later} == {"2024-05-01T12:00:00Z"}
    assert [e["event_id"] for e in later] == [e["event_id"] for e in got]
    with pytest.raises(ValueError, match="timezone"):
        list(iter_import(path, default_time=datetime(2024, 5, 1)))


def test_event_jsonl_passes_through_unchanged(tmp_path: Path) -> None:
    registered = {
        "type": "competitor.registered",
        "event_id": "r1",
        "competitor": "gpt-4",
        "occurred_at": "2025-01-01T00:00:00Z",
        "meta": {"slug": "openai/gpt-4"},
    }
    battle = {
        "type": "battle.completed",
        "event_id": "e1",
        "occurred_at": "2025-01-01T00:00:01Z",
        "battle_id": "b1",
        "a": "x",
        "b": "y",
        "outcome": None,
    }
    mixed = [registered, BATTLES[0], battle]
    path = write_jsonl(tmp_path / "events.jsonl", mixed)
    assert detect_format(path) == "jsonl-events"
    got = list(iter_import(path, arena="lmsys"))
    assert [n for n, _ in got] == [1, 2, 3]
    assert got[0][1] == registered and got[2][1] == battle  # untouched, not even the arena
    # An arena row among events is refused: events keep their order, arena rows are sorted by
    # tstamp, and one file cannot be both (it was converted and sent in the events' order).
    refused = got[1][1]
    assert isinstance(refused, RowError) and refused.code == "mixed_file", refused
    # The other way round: an event among arena rows is refused too (it was passed through).
    rows = write_jsonl(tmp_path / "rows.jsonl", [BATTLES[0], registered, BATTLES[1]])
    assert detect_format(rows) == "arena-jsonl"
    kinds = [item.code if isinstance(item, RowError) else "row" for _, item in iter_import(rows)]
    assert kinds == ["row", "mixed_file", "row"]
    # A JSON array of events is a file of events (it was sorted by occurred_at as arena rows).
    array = tmp_path / "events.json"
    array.write_text(json.dumps([registered, battle]))
    assert detect_format(array) == "json-events"
    assert [item for _, item in iter_import(array)] == [registered, battle]


def test_row_errors_carry_row_numbers_and_do_not_stop_the_import(tmp_path: Path) -> None:
    lines = [
        json.dumps(BATTLES[0]),
        json.dumps({"model_a": "x", "model_b": "y", "winner": "model_c"}),
        json.dumps({"model_a": "x", "winner": "model_a"}),
        "",
        json.dumps({"model_a": "x", "model_b": "x", "winner": "tie"}),
        "{not json",
        json.dumps({"model_a": "x", "model_b": "y", "winner": "tie", "tstamp": "yesterday"}),
        json.dumps([1, 2]),
        json.dumps({"model_a": 7, "model_b": "y", "winner": "tie"}),
        json.dumps({"model_a": "x", "model_b": "y", "winner": "tie", "tstamp": -5}),
        json.dumps(BATTLES[1]),
    ]
    path = tmp_path / "mixed.jsonl"
    path.write_text("\n".join(lines) + "\n")
    got = list(iter_import(path))
    errors = {n: item for n, item in got if isinstance(item, RowError)}
    assert {n: e.code for n, e in errors.items()} == {
        2: "bad_winner",
        3: "missing_column",
        5: "same_model",
        6: "bad_json",
        7: "bad_tstamp",
        8: "not_an_object",
        9: "bad_value",
        10: "bad_tstamp",
    }
    assert "model_c" in errors[2].message and "tie (bothbad)" in errors[2].message
    assert "model_b" in errors[3].message
    assert str(errors[5]).startswith("row 5: ")
    good = [(n, item) for n, item in got if not isinstance(item, RowError)]
    assert [n for n, _ in good] == [1, 11]  # the rows after the bad ones still arrive


def test_csv_row_errors_and_header_check(tmp_path: Path) -> None:
    rows = [
        {"model_a": "x", "model_b": "y", "winner": "model_b"},
        {"model_a": "x", "model_b": "", "winner": "model_b"},
        {"model_a": "x", "model_b": "y", "winner": "both"},
        {"model_a": "x", "model_b": "y", "winner": " Tie (BothBad) "},
    ]
    path = write_csv(tmp_path / "b.csv", rows, ["model_a", "model_b", "winner"])
    got = list(iter_import(path))
    assert [n for n, _ in got] == [1, 2, 3, 4]
    assert isinstance(got[1][1], RowError) and got[1][1].code == "missing_column"
    assert isinstance(got[2][1], RowError) and got[2][1].code == "bad_winner"
    last = got[3][1]
    assert isinstance(last, dict) and last["outcome"] == "tie"
    assert last["meta"]["winner"] == "Tie (BothBad)"

    typed = write_csv(tmp_path / "typed.csv", rows[:1], ["type", "model_a", "model_b", "winner"])
    converted = next(iter_import(typed))[1]  # a CSV row is never an event, whatever its columns
    assert isinstance(converted, dict) and converted["type"] == "battle.completed"

    no_winner = write_csv(tmp_path / "bad.csv", rows, ["model_a", "model_b"])
    with pytest.raises(ArenaFileError, match="winner"):
        list(iter_import(no_winner))


def test_iso_timestamps_and_bom(tmp_path: Path) -> None:
    rows = [
        {
            "model_a": "x",
            "model_b": "y",
            "winner": "model_a",
            "tstamp": "2024-03-01T10:00:00+02:00",
        },
        {"model_a": "x", "model_b": "y", "winner": "model_a", "tstamp": "2024-03-01 10:00:00"},
    ]
    path = tmp_path / "bom.csv"
    path.write_text(
        "\ufeffmodel_a,model_b,winner,tstamp\n"
        + "".join(f"{r['model_a']},{r['model_b']},{r['winner']},{r['tstamp']}\n" for r in rows)
    )
    got = events(path)
    assert [e["occurred_at"] for e in got] == ["2024-03-01T08:00:00Z", "2024-03-01T10:00:00Z"]


def test_count_rows(tmp_path: Path) -> None:
    assert count_rows(write_json(tmp_path / "a.json", BATTLES * 5)) == 20
    assert count_rows(write_jsonl(tmp_path / "a.jsonl", BATTLES * 5)) == 20
    assert count_rows(write_csv(tmp_path / "a.csv", BATTLES * 5)) == 20
    no_newline = tmp_path / "n.jsonl"
    no_newline.write_text(json.dumps(BATTLES[0]) + "\n" + json.dumps(BATTLES[1]))
    assert count_rows(no_newline) == 2
    empty = tmp_path / "empty.jsonl"
    empty.write_text("")
    assert count_rows(empty) == 0 and list(iter_import(empty)) == []


def test_broken_files_raise(tmp_path: Path) -> None:
    broken = tmp_path / "broken.json"
    broken.write_text('[{"model_a": "x",')
    with pytest.raises(ArenaFileError):
        list(iter_import(broken))
    pretty = tmp_path / "pretty.json"
    pretty.write_text('{\n  "model_a": "x"\n}\n')
    with pytest.raises(ArenaFileError, match="one complete object per line"):
        detect_format(pretty)


def test_jsonl_is_streamed(tmp_path: Path) -> None:
    path = write_jsonl(tmp_path / "big.jsonl", BATTLES * 2500)
    stream = iter_import(path)
    number, first = next(stream)  # the first row arrives before the rest is read
    assert number == 1 and isinstance(first, dict)
    assert sum(1 for _ in stream) == 9999


def _outcomes(path: Path) -> list[tuple[int, str]]:
    """Each row as (number, ``ok`` or the refusal's code)."""
    return [(n, item.code if isinstance(item, RowError) else "ok") for n, item in iter_import(path)]


def test_a_quote_left_open_is_refused_where_it_opened_not_read_into_one_cell(
    tmp_path: Path,
) -> None:
    """The tolerant reader read the rest of the file into the open cell: 1 row imported, the
    five after it gone without a word. The strict reader refuses that row, naming its lines."""
    path = tmp_path / "open.csv"
    path.write_text(
        'model_a,model_b,winner,judge\nx,y,model_a,ok\na,b,model_a,"ann\n'
        + "".join(f"c{i},d,model_b,z\n" for i in range(5))
    )
    got = list(iter_import(path))
    assert [(n, getattr(item, "code", "ok")) for n, item in got] == [(1, "ok"), (2, "bad_csv")]
    assert "lines 3-8" in got[1][1].message, got[1][1]


def test_csv_rows_of_the_wrong_width_or_not_utf8_are_refused_the_rest_goes_in(
    tmp_path: Path,
) -> None:
    """A long row's extra cell was ignored and a short row's missing tstamp became the epoch
    (rated first); a byte that is not UTF-8 stopped the whole import with a traceback."""
    path = tmp_path / "rows.csv"
    path.write_bytes(
        b"model_a,model_b,winner,tstamp\n"
        b"a,b,model_a,1700000000\n"
        b"a,b,model_a,1700000001,EXTRA\n"
        b"c,d,model_b\n"
        b"x\xff,y,model_a,1700000002\n"
        b"e,f,tie,1700000003\n"
    )
    assert _outcomes(path) == [(1, "ok"), (2, "bad_csv"), (3, "bad_csv"), (4, "bad_csv"), (5, "ok")]
    messages = [item.message for _, item in iter_import(path) if isinstance(item, RowError)]
    assert messages == [
        "line 3: 5 cells, but the header has 4 columns",
        "line 4: 3 cells, but the header has 4 columns",
        "line 5: bytes that are not UTF-8",
    ]


def test_a_repeated_csv_column_refuses_the_file(tmp_path: Path) -> None:
    """Which cell is the winner? The reader took the last one silently."""
    path = tmp_path / "twice.csv"
    path.write_text("model_a,model_b,winner,winner\na,b,model_a,model_b\n")
    with pytest.raises(ArenaFileError, match="'winner' more than once"):
        list(iter_import(path))


def test_json_rows_that_broke_the_reader_are_refused(tmp_path: Path) -> None:
    """An integer beyond any float as tstamp (OverflowError) and a row nested past msgspec's
    depth (RecursionError) stopped the import with a traceback; each is a refused row now. A
    JSON array behind a byte order mark is read, as CSV and JSONL are."""
    deep = '{"model_a":"a","model_b":"b","winner":"model_a","x":' + "[" * 3000 + "]" * 3000 + "}"
    huge = '{"model_a":"a","model_b":"b","winner":"model_a","tstamp":1' + "0" * 400 + "}"
    path = tmp_path / "rows.jsonl"
    path.write_text("\n".join([json.dumps(BATTLES[0]), huge, deep, json.dumps(BATTLES[1])]))
    assert _outcomes(path) == [(1, "ok"), (2, "bad_tstamp"), (3, "bad_json"), (4, "ok")]
    array = tmp_path / "bom.json"
    array.write_bytes(b"\xef\xbb\xbf" + json.dumps(BATTLES[:2]).encode())
    assert detect_format(array) == "arena-json"
    assert _outcomes(array) == [(1, "ok"), (2, "ok")]
