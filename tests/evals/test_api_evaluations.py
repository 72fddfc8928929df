"""``/evaluations``: upload audio, get a job id at once, read its metrics or follow its events.

The app runs against the real PostgreSQL and nats-server of the test session; the evaluation
itself runs in the API's runners on audio the tests write. Where the results land and how jobs
outlive a restart: ``test_api_evaluation_jobs.py``.
"""

from __future__ import annotations

import asyncio
import io
import json
import subprocess
import sys
from collections.abc import AsyncIterator
from typing import Any

import httpx
import numpy as np
import pytest

pytest.importorskip("librosa")

import soundfile as sf
from arbiter.evals.synthetic import speechlike
from arbiter.services.api import create_app
from litestar.testing import AsyncTestClient

pytestmark = pytest.mark.evals

LIMIT = 200_000  # bytes: a 2 s 16 kHz 16-bit clip is about 64 kB


def wav_bytes(
    samples: np.ndarray, sr: int = 16_000, fmt: str = "WAV", subtype: str | None = None
) -> bytes:
    buffer = io.BytesIO()
    sf.write(buffer, samples, sr, format=fmt, subtype=subtype)
    return buffer.getvalue()


def assert_error(response: httpx.Response, status: int, code: str) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/json")
    body = response.json()
    assert body["status"] == status and body["code"] == code, body
    assert isinstance(body["message"], str) and body["message"]
    return body  # type: ignore[no-any-return]


@pytest.fixture
def eval_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ARBITER_EVAL_MAX_UPLOAD_BYTES", str(LIMIT))
    monkeypatch.setenv("ARBITER_EVAL_WORKERS", "1")
    monkeypatch.setenv("ARBITER_EVAL_QUEUE", "4")


@pytest.fixture
async def client(
    eval_env: None, database_url: str, nats_url: str
) -> AsyncIterator[AsyncTestClient[Any]]:
    async with AsyncTestClient(app=create_app(database_url, nats_url)) as c:
        yield c


_TRIALS = iter(range(1_000_000))


async def submit(
    client: AsyncTestClient[Any], audio: bytes, name: str = "clip.wav", **fields: str
) -> httpx.Response:
    """Upload ``audio`` for competitor alpha, by default as a new trial of experiment ``exp``."""
    target = {} if {"battle_id", "experiment_id"} & set(fields) else {
        "experiment_id": "exp", "trial_id": f"t{next(_TRIALS)}", "prompt_index": "0"
    }  # fmt: skip
    data = {"competitor": "alpha", **target, **fields}
    return await client.post("/evaluations", files={"audio": (name, audio, "audio/wav")}, data=data)


async def wait_done(client: AsyncTestClient[Any], job_id: str, timeout: float = 120) -> dict:
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        response = await client.get(f"/evaluations/{job_id}")
        assert response.status_code == 200, response.text
        body = response.json()
        if body["status"] in ("done", "failed"):
            return body  # type: ignore[no-any-return]
        assert asyncio.get_running_loop().time() < deadline, body
        await asyncio.sleep(0.1)


async def test_upload_is_accepted_at_once_and_gives_metrics(client):
    clip = wav_bytes(speechlike(2.0, seed=3))
    response = await submit(client, clip, latency_ms="300", arena="voice", category="support")
    assert response.status_code == 202, response.text
    accepted = response.json()
    job_id = accepted["id"]
    assert accepted["status"] == "queued"
    assert response.headers["location"] == accepted["status_url"] == f"/evaluations/{job_id}"

    body = await wait_done(client, job_id)
    assert body["status"] == "done" and body["progress"] == 1.0, body
    assert (body["competitor"], body["arena"], body["category"]) == ("alpha", "voice", "support")
    assert body["filename"] == "clip.wav" and body["size_bytes"] == len(clip)
    metrics = body["metrics"]
    assert metrics["duration_s"] == pytest.approx(2.0)
    assert metrics["latency_ms"] == 300
    assert 0 <= metrics["prosody_score"] <= 1 and 0 <= metrics["quality_score"] <= 1
    assert metrics["f0_median_hz"] == pytest.approx(140, rel=0.15)
    composite = body["composite"]
    assert composite["score"] == pytest.approx(metrics["composite"])
    assert composite["renormalised"] is False  # seed 000: unmeasured components count 0
    assert set(composite["missing"]) == {"semascore", "wer"}
    assert "error" not in body and body["transcribe"] is False


async def test_progress_as_server_sent_events(client):
    response = await submit(client, wav_bytes(speechlike(1.5, seed=4)))
    job_id = response.json()["id"]
    events: list[tuple[str, dict]] = []
    async with client.stream("GET", f"/evaluations/{job_id}/events") as stream:
        assert stream.headers["content-type"].startswith("text/event-stream")
        kind = ""
        async for line in stream.aiter_lines():
            if line.startswith("event: "):
                kind = line.removeprefix("event: ")
            elif line.startswith("data: "):
                events.append((kind, json.loads(line.removeprefix("data: "))))
    kinds = [k for k, _ in events]
    assert kinds[-1] == "done" and set(kinds[:-1]) <= {"progress"}
    progress = [e["progress"] for _, e in events]
    assert progress == sorted(progress)
    assert events[-1][1]["metrics"]["duration_s"] == pytest.approx(1.5)
    # A finished job still streams its final state, then ends.
    async with client.stream("GET", f"/evaluations/{job_id}/events") as stream:
        text = "".join([chunk async for chunk in stream.aiter_text()])
    assert "event: done" in text


async def test_flac_is_accepted_by_content(client):
    response = await submit(client, wav_bytes(speechlike(1.0), fmt="FLAC"), name="noext")
    assert response.status_code == 202, response.text
    body = await wait_done(client, response.json()["id"])
    assert body["status"] == "done" and body["metrics"]["duration_s"] == pytest.approx(1.0)


async def test_non_audio_is_refused_by_content(client):
    body = assert_error(
        await submit(client, b"RIFF but not really a wave file " * 40, name="fake.wav"),
        415,
        "unsupported_media_type",
    )
    assert "decode" in body["message"]
    assert_error(await submit(client, b"", name="empty.wav"), 400, "empty_upload")
    not_multipart = await client.post("/evaluations", json={"competitor": "alpha"})
    assert_error(not_multipart, 415, "unsupported_media_type")


async def test_oversized_upload_is_413(client):
    # Just over the audio limit (the form still fits Litestar's body limit): our check.
    just_over = wav_bytes(np.zeros(LIMIT // 2 + 100, dtype=np.float32))
    assert len(just_over) > LIMIT
    body = assert_error(await submit(client, just_over), 413, "too_large")
    assert str(LIMIT) in body["message"] and "ARBITER_EVAL_MAX_UPLOAD_BYTES" in body["message"]
    # Far over: Litestar's body limit stops it before it is read; same answer.
    far_over = wav_bytes(np.zeros(LIMIT * 4, dtype=np.float32))
    body = assert_error(await submit(client, far_over), 413, "too_large")
    assert str(LIMIT) in body["message"]


async def test_bad_fields_are_400(client):
    clip = wav_bytes(speechlike(0.5))
    missing = await client.post(
        "/evaluations",
        files={"audio": ("a.wav", clip, "audio/wav")},
        data={"experiment_id": "e", "trial_id": "t", "prompt_index": "0"},
    )
    assert assert_error(missing, 400, "bad_parameter")["field"] == "competitor"
    no_file = await client.post(
        "/evaluations", files={"competitor": (None, "alpha"), "trial_id": (None, "t")}
    )
    assert assert_error(no_file, 400, "bad_parameter")["field"] == "audio"
    body = assert_error(await submit(client, clip, latency_ms="soon"), 400, "bad_parameter")
    assert body["field"] == "latency_ms"
    body = assert_error(await submit(client, clip, semascore="1.5"), 400, "bad_parameter")
    assert body["field"] == "semascore"
    body = assert_error(await submit(client, clip, latncy_ms="3"), 400, "bad_parameter")
    assert "latncy_ms" in body["message"]


async def test_unknown_job_is_404(client):
    assert_error(await client.get("/evaluations/nope"), 404, "not_found")
    assert_error(await client.get("/evaluations/nope/events"), 404, "not_found")


async def test_full_queue_is_503(client, monkeypatch):
    """Jobs queued or running in the table count, whichever API process runs them: with this
    process's runners stopped (as if busy elsewhere) one queued job fills a queue of one."""
    evaluations = client.app.state.evaluations
    monkeypatch.setattr(evaluations, "config", type(evaluations.config)(LIMIT, 1, 1))
    in_app = client.blocking_portal.call  # the app's own event loop (the runners' home)
    await asyncio.to_thread(in_app, evaluations.close)
    clip = wav_bytes(speechlike(0.5))
    first = await submit(client, clip)
    assert first.status_code == 202, first.text
    body = assert_error(await submit(client, clip), 503, "busy")
    assert "ARBITER_EVAL_QUEUE" in body["message"]
    await asyncio.to_thread(in_app, evaluations.start, client.app.state.reads, client.app.state.bus)
    assert (await wait_done(client, first.json()["id"]))["status"] == "done"


async def test_unmeasurable_audio_fails_the_job_not_the_api(client):
    """A float WAV of NaN samples passes the sniff (it is audio) but cannot be measured: the
    job fails with a code and a message naming the upload, and the API carries on."""
    nan = wav_bytes(np.full(8000, np.nan, dtype=np.float32), subtype="FLOAT")
    response = await submit(client, nan)
    assert response.status_code == 202, response.text
    body = await wait_done(client, response.json()["id"])
    assert body["status"] == "failed"
    assert body["error"]["code"] == "undecodable_audio"
    assert body["event_id"].startswith("evals-trial-")  # the failed trial is the result
    assert "NaN" in body["error"]["message"] and "clip.wav" in body["error"]["message"]
    assert "metrics" not in body
    assert (await client.get("/evaluations/nope")).status_code == 404


async def test_without_the_extra_post_is_503(client, monkeypatch):
    monkeypatch.setitem(sys.modules, "librosa", None)  # as if not installed
    body = assert_error(await submit(client, wav_bytes(speechlike(0.5))), 503, "evals_unavailable")
    assert "pip install -e '.[evals]'" in body["message"] and "librosa" in body["message"]


async def test_reference_without_whisper_weights_is_503(client, monkeypatch, tmp_path):
    monkeypatch.setenv("ARBITER_WHISPER_MODEL", str(tmp_path / "absent.pt"))
    response = await submit(client, wav_bytes(speechlike(0.5)), reference="hello world")
    body = assert_error(response, 503, "whisper_unavailable")
    assert "ARBITER_WHISPER_MODEL" in body["message"]
    # Without transcription the same upload is fine.
    response = await submit(
        client, wav_bytes(speechlike(0.5)), reference="hello world", transcribe="false"
    )
    assert response.status_code == 202, response.text


async def test_transcription_with_whisper(client, whisper_env):
    """WER and CER through the real whisper.load_model(path) on random weights."""
    response = await submit(client, wav_bytes(speechlike(1.0)), reference="one two three")
    assert response.status_code == 202, response.text
    body = await wait_done(client, response.json()["id"])
    assert body["status"] == "done", body
    assert body["transcribe"] is True and isinstance(body["transcript"], str)
    assert body["metrics"]["wer"] >= 0 and body["metrics"]["cer"] >= 0


async def test_schema_documents_the_upload(client):
    spec = (await client.get("/schema/openapi.json")).json()
    post = spec["paths"]["/evaluations"]["post"]
    schema = post["requestBody"]["content"]["multipart/form-data"]["schema"]
    assert schema["required"] == ["audio", "competitor"]
    assert {"experiment_id", "battle_id", "side"} <= set(schema["properties"])
    assert "/evaluations/{job_id}/events" in spec["paths"]


def test_api_starts_without_the_extra(database_url):
    """The API process imports and serves without librosa, soundfile, torch or whisper."""
    code = f"""
import sys
for name in ("librosa", "soundfile", "torch", "whisper"):
    sys.modules[name] = None
from litestar.testing import TestClient
from arbiter.services.api import create_app
with TestClient(app=create_app({database_url!r}, None)) as client:
    assert client.get("/health").status_code == 200
    response = client.post("/evaluations", files={{"audio": ("a.wav", b"RIFF", "audio/wav")}},
                           data={{"competitor": "x", "experiment_id": "e", "trial_id": "t",
                                 "prompt_index": "0"}})
    assert response.status_code == 503, response.text
    assert response.json()["code"] == "evals_unavailable", response.text
print("ok")
"""
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=120)  # fmt: skip
    assert done.returncode == 0 and "ok" in done.stdout, done.stdout + done.stderr
