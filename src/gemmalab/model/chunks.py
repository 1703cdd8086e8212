"""Row chunks for the hand-written elementwise kernels (norm.py, mlp.py).

A pass over a whole (tokens x width) activation streams it from memory; doing every pass of a
kernel on one chunk of rows before the next keeps the chunk in cache between passes. Measured on
a 2-core CPU: GeGLU 1.5x and RMSNorm 1.3x faster with 1 MB chunks than with whole tensors.
"""

from __future__ import annotations

import torch

CHUNK_ELEMENTS = 1 << 18  # 1 MB of float32 per tensor per chunk


def row_chunks(x: torch.Tensor) -> list[slice]:
    """Slices over the rows of a 2-D tensor, each at most CHUNK_ELEMENTS elements (at least one row)."""
    rows = max(1, CHUNK_ELEMENTS // x.shape[-1])
    return [slice(i, i + rows) for i in range(0, x.shape[0], rows)]
