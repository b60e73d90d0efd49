"""Rows padded to a multiple of 16, so that an agent's numbers do not depend on how many share its batch.

MKL's sgemm gives a row the same bits whatever the batch only from about 12 rows on (below, it switches
kernels), and whole SIMD vectors keep elementwise kernels off their scalar tail loops, whose exp / tanh differ
from the vector ones in the last bit. The dream and the real agent compute on padded rows (dummy agents), so an
episode gives the same return alone or among 1,024 others.
"""

from __future__ import annotations

from typing import overload

import torch
from torch import Tensor

ROW_MULTIPLE = 16


def round_up(n: int) -> int:
    """The smallest multiple of ROW_MULTIPLE that holds n rows."""
    return -(-n // ROW_MULTIPLE) * ROW_MULTIPLE


@overload
def pad_rows(x: Tensor, rows: int) -> Tensor: ...


@overload
def pad_rows(x: None, rows: int) -> None: ...


def pad_rows(x: Tensor | None, rows: int) -> Tensor | None:
    """x (n, ...) with zero rows appended up to `rows` (None stays None: an input the model does not take)."""
    if x is None or x.shape[0] == rows:
        return x
    return torch.cat([x, x.new_zeros((rows - x.shape[0], *x.shape[1:]))])
