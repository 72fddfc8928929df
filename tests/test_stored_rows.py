"""The stored rows the append builds directly are the library's, byte for byte."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import uuid5

from arbiter.adapters.eventstore import (
    NAMESPACE,
    RECORDED_TOPIC,
    MsgspecTranscoder,
    Recorded,
    StoredState,
    stream_id,
)
from arbiter.adapters.stored_rows import stored_state, stream_uuid
from arbiter.domain.decisions import stream_key
from eventsourcing.persistence import Mapper
from hypothesis import given, settings
from hypothesis import strategies as st

from .test_fold_property import events


@settings(max_examples=60, deadline=None)
@given(evs=events(), seconds=st.floats(0, 2e9), micros=st.integers(0, 999_999))
def test_rows_equal_the_library_mappers(evs: list[Any], seconds: float, micros: int) -> None:
    mapper = Mapper(transcoder=MsgspecTranscoder())
    when = datetime.fromtimestamp(seconds, UTC) + timedelta(microseconds=micros)
    for e in evs:
        library = mapper.to_stored_event(
            Recorded(originator_id=stream_id(e), originator_version=1, timestamp=when, body=e)
        )
        uuid = stream_uuid(NAMESPACE.bytes, stream_key(e))
        assert uuid == library.originator_id
        assert str(uuid) == str(library.originator_id) and uuid.version == 5
        assert hash(uuid) == hash(library.originator_id)
        assert library.topic == RECORDED_TOPIC
        assert stored_state(StoredState, e, when) == library.state


@settings(max_examples=300, deadline=None)
@given(key=st.text(max_size=200))
def test_stream_uuid_is_uuid5(key: str) -> None:
    assert stream_uuid(NAMESPACE.bytes, key) == uuid5(NAMESPACE, key)
    assert stream_uuid(NAMESPACE.bytes, key).bytes == uuid5(NAMESPACE, key).bytes
