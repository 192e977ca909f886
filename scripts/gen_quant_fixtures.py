#!/usr/bin/env python3
"""Generate the dequantisation fixtures in tests/fixtures/quant/.

The oracle is the PyPI `gguf` package (`gguf.quants`), an implementation of
ggml's formats independent of rustorch's. For every type rustorch reads this
writes, named by ggml's type name (e.g. Q4_K, IQ4_NL, BF16):

  <TYPE>.blocks          a few blocks of random bytes, with every f16 field
                         (scales, mins) replaced by a finite random f16
  <TYPE>.f32             gguf.quants.dequantize of those bytes, little-endian f32

and, for the types whose quantiser `gguf.quants` implements (Q8_0, Q4_0):

  <TYPE>.quant_in.f32    random little-endian f32 input
  <TYPE>.quant_out.blocks  gguf.quants.quantize of that input

The seed is fixed, so running it again reproduces the committed files (for a
given numpy). Run from anywhere, with `gguf` and `numpy` installed:

    pip install gguf numpy
    python3 scripts/gen_quant_fixtures.py

tests/dequant_fixtures.rs and the tests in src/gguf/quantize.rs read the output.
"""

from pathlib import Path

import numpy as np
from gguf.constants import GGML_QUANT_SIZES, GGMLQuantizationType
from gguf.quants import dequantize, quantize

SEED = 0x5EED_0001
OUT_DIR = Path(__file__).resolve().parent.parent / "tests" / "fixtures" / "quant"

# Byte offsets of the f16 fields inside one block of each block-quantised type
# (ggml's block_* structs). Random bytes there could be inf/NaN or absurdly
# large, so they are overwritten with sane finite values.
F16_FIELDS = {
    "Q4_0": [0],
    "Q4_1": [0, 2],
    "Q5_0": [0],
    "Q5_1": [0, 2],
    "Q8_0": [0],
    "Q2_K": [80, 82],
    "Q3_K": [108],
    "Q4_K": [0, 2],
    "Q5_K": [0, 2],
    "Q6_K": [208],
    "IQ4_NL": [0],
    "IQ4_XS": [0],
}
FLOAT_TYPES = ["F32", "F16", "BF16"]
FLOAT_ELEMENTS = 64
BLOCKS_32 = 8  # blocks for the 32-weight types
BLOCKS_256 = 4  # blocks for the 256-weight super-block types
QUANTISED_BLOCKS = 8  # blocks of quantiser input per type


def random_scales(rng: np.random.Generator, n: int) -> np.ndarray:
    """n f16 values with random sign and magnitude uniform in [1e-3, 2]."""
    mag = rng.uniform(1e-3, 2.0, n)
    sign = rng.choice([-1.0, 1.0], n)
    return (sign * mag).astype(np.float16)


def random_finite_bits(rng: np.random.Generator, n: int, dtype, exp_mask: int) -> np.ndarray:
    """n random bit patterns of an IEEE type, redrawn until none is inf/NaN.

    Zeros, subnormals and both signs all occur, which is what bit-exact
    conversion needs to cover."""
    bits = rng.integers(0, np.iinfo(dtype).max, n, dtype=dtype, endpoint=True)
    bad = (bits & exp_mask) == exp_mask
    while bad.any():
        bits[bad] = rng.integers(0, np.iinfo(dtype).max, bad.sum(), dtype=dtype, endpoint=True)
        bad = (bits & exp_mask) == exp_mask
    return bits


def float_type_bytes(rng: np.random.Generator, name: str) -> bytes:
    if name == "F32":
        return random_finite_bits(rng, FLOAT_ELEMENTS, np.uint32, 0x7F80_0000).astype("<u4").tobytes()
    if name == "F16":
        return random_finite_bits(rng, FLOAT_ELEMENTS, np.uint16, 0x7C00).astype("<u2").tobytes()
    if name == "BF16":
        return random_finite_bits(rng, FLOAT_ELEMENTS, np.uint16, 0x7F80).astype("<u2").tobytes()
    raise ValueError(name)


def quantised_type_bytes(rng: np.random.Generator, name: str) -> bytes:
    block_size, type_size = GGML_QUANT_SIZES[GGMLQuantizationType[name]]
    n_blocks = BLOCKS_32 if block_size == 32 else BLOCKS_256
    blocks = rng.integers(0, 256, (n_blocks, type_size), dtype=np.uint8)
    for offset in F16_FIELDS[name]:
        blocks[:, offset : offset + 2] = random_scales(rng, n_blocks).astype("<f2").view(np.uint8).reshape(n_blocks, 2)
    return blocks.tobytes()


def quantiser_input(rng: np.random.Generator) -> np.ndarray:
    """Blocks of 32 values: one all zero, one of small integers, the rest
    normal noise at per-block scales spanning a few decades."""
    blocks = rng.standard_normal((QUANTISED_BLOCKS, 32)).astype(np.float32)
    blocks *= rng.uniform(1e-3, 10.0, (QUANTISED_BLOCKS, 1)).astype(np.float32)
    blocks[0] = 0.0
    blocks[1] = rng.integers(-8, 8, 32).astype(np.float32)
    return blocks.reshape(-1)


def write(name: str, data: bytes) -> None:
    (OUT_DIR / name).write_bytes(data)


def main() -> None:
    OUT_DIR.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(SEED)
    for name in FLOAT_TYPES + list(F16_FIELDS):
        qtype = GGMLQuantizationType[name]
        raw = float_type_bytes(rng, name) if name in FLOAT_TYPES else quantised_type_bytes(rng, name)
        values = dequantize(np.frombuffer(raw, dtype=np.uint8), qtype)
        assert values.dtype == np.float32 and np.isfinite(values).all(), name
        write(f"{name}.blocks", raw)
        write(f"{name}.f32", values.astype("<f4").tobytes())

    for name in ["Q8_0", "Q4_0"]:
        x = quantiser_input(rng)
        q = quantize(x, GGMLQuantizationType[name])
        write(f"{name}.quant_in.f32", x.astype("<f4").tobytes())
        write(f"{name}.quant_out.blocks", np.ascontiguousarray(q, dtype=np.uint8).tobytes())

    total = sum(p.stat().st_size for p in OUT_DIR.iterdir())
    print(f"wrote {len(list(OUT_DIR.iterdir()))} files, {total} bytes, to {OUT_DIR}")


if __name__ == "__main__":
    main()
