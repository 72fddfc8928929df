"""Whisper speech recognition, loaded once per process, from local weights only.

Which model: the environment variable ``ARBITER_WHISPER_MODEL`` holds either

- a model name ("tiny", "base.en", "small", "large-v3", "turbo", ...), looked up as
  ``<cache>/<name>.pt`` (the file name openai-whisper itself uses), where <cache> is
  ``ARBITER_WHISPER_CACHE`` if set, else whisper's own cache ``$XDG_CACHE_HOME/whisper``
  (``~/.cache/whisper``); or
- the path of a checkpoint file (a torch pickle of ``{"dims": ..., "model_state_dict": ...}``).

Unset means "base". Nothing is ever downloaded: evaluation machines are often offline, and a
silent multi-hundred-megabyte download inside a worker pool is worse than a clear error. Missing
weights raise :class:`WhisperWeightsMissing` naming the file to provide and the variables to set.

Decoding is greedy (temperature 0, no sampling fallback) so a rerun on the same machine gives
the same transcript, and therefore the same event content under the same event id.
"""

from __future__ import annotations

import os
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

__all__ = [
    "CACHE_ENV",
    "DEFAULT_MODEL",
    "LANGUAGE_ENV",
    "MODEL_ENV",
    "ModelSpec",
    "WhisperWeightsMissing",
    "cache_dir",
    "clear_cache",
    "default_device",
    "get_model",
    "resolve_model",
    "transcribe",
]


if TYPE_CHECKING:
    import whisper

MODEL_ENV = "ARBITER_WHISPER_MODEL"
CACHE_ENV = "ARBITER_WHISPER_CACHE"
LANGUAGE_ENV = "ARBITER_WHISPER_LANGUAGE"
DEFAULT_MODEL = "base"

_lock = threading.Lock()
_loaded: dict[tuple[str, str], Any] = {}


class WhisperWeightsMissing(RuntimeError):
    """The configured Whisper weights are not on this machine (and will not be downloaded)."""


@dataclass(frozen=True, slots=True)
class ModelSpec:
    """A resolved model choice: a label for reports and the checkpoint file to load."""

    label: str
    checkpoint: Path
    name: str | None  # official model name, when chosen by name (enables alignment heads)


def cache_dir() -> Path:
    """Folder where named models are looked up (see module docstring)."""
    if os.environ.get(CACHE_ENV):
        return Path(os.environ[CACHE_ENV]).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(xdg) / "whisper"


def _official_files() -> dict[str, str]:
    """Model name -> checkpoint file name, as openai-whisper names them."""
    import whisper

    return {name: url.rsplit("/", 1)[-1] for name, url in whisper._MODELS.items()}


def resolve_model(spec: str | None = None) -> ModelSpec:
    """Turn a name or path (default: ``$ARBITER_WHISPER_MODEL``, else "base") into a local file.

    Raises WhisperWeightsMissing when the file is not there, with what to do about it.
    """
    value = (spec if spec is not None else os.environ.get(MODEL_ENV, "")).strip() or DEFAULT_MODEL
    path = Path(value).expanduser()
    looks_like_path = path.suffix in {".pt", ".pth", ".bin"} or os.sep in value
    files = _official_files()
    if value in files and not looks_like_path:
        checkpoint = cache_dir() / files[value]
        if not checkpoint.is_file():
            raise WhisperWeightsMissing(
                f"Whisper model {value!r} is not on this machine: expected the file "
                f"{checkpoint}. Arbiter never downloads weights. Copy {files[value]} into "
                f"{checkpoint.parent} (or set {CACHE_ENV} to the folder that holds it), or set "
                f"{MODEL_ENV} to the path of a Whisper checkpoint file (.pt)."
            )
        return ModelSpec(label=value, checkpoint=checkpoint, name=value)
    if path.is_file():
        return ModelSpec(label=path.name, checkpoint=path, name=None)
    if looks_like_path:
        raise WhisperWeightsMissing(
            f"{MODEL_ENV}={value!r} names a checkpoint file that does not exist. Set {MODEL_ENV} "
            "to the path of an existing Whisper checkpoint (.pt), or to a model name whose "
            f"<name>.pt file is in {cache_dir()} (folder set by {CACHE_ENV})."
        )
    raise WhisperWeightsMissing(
        f"{MODEL_ENV}={value!r} is neither a Whisper model name nor an existing file. Use one "
        f"of {', '.join(sorted(files))} (its .pt file in {cache_dir()}), or a checkpoint path."
    )


def default_device() -> str:
    """ "cuda" when torch sees a GPU, else "cpu"."""
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


def get_model(spec: str | None = None, device: str | None = None) -> whisper.Whisper:
    """The Whisper model for ``spec`` on ``device``, loaded on first use and cached for the
    life of the process (worker processes each load it once)."""
    resolved = resolve_model(spec)
    dev = device or default_device()
    key = (str(resolved.checkpoint.resolve()), dev)
    with _lock:
        model = _loaded.get(key)
        if model is None:
            import whisper

            # A path, never a name: whisper.load_model(name) would try to download.
            model = whisper.load_model(str(resolved.checkpoint), device=dev)
            if resolved.name is not None:
                model.set_alignment_heads(whisper._ALIGNMENT_HEADS[resolved.name])
            model.eval()
            _loaded[key] = model
    return model


def transcribe(
    audio: np.ndarray,
    *,
    spec: str | None = None,
    language: str | None = None,
    device: str | None = None,
) -> str:
    """Transcribe 16 kHz mono float32 samples to text with greedy decoding.

    ``language`` defaults to ``$ARBITER_WHISPER_LANGUAGE``; unset means Whisper detects it
    (English-only ".en" models always use English). Returns the stripped text, "" for no speech.
    """
    import whisper

    model = get_model(spec, device)
    lang = language or os.environ.get(LANGUAGE_ENV) or None
    if not model.is_multilingual:
        lang = "en"
    samples = np.ascontiguousarray(audio, dtype=np.float32)
    result = whisper.transcribe(
        model,
        samples,
        verbose=None,
        temperature=0.0,
        condition_on_previous_text=False,
        language=lang,
        fp16=model.device.type == "cuda",
    )
    return str(result.get("text", "")).strip()


def clear_cache() -> None:
    """Forget loaded models (tests switch checkpoints within one process)."""
    with _lock:
        _loaded.clear()
