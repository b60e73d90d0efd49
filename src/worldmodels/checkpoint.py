"""Atomic files and self-describing checkpoints.

Every file a stage writes goes through `atomic_write`: the bytes land under a temporary name in the
same directory, are flushed to disk, and are renamed over the target in one step. A run killed at any
moment leaves either the old file or the new one, never half of one; temporary names end in `.tmp`
and are never read as artifacts.
"""

from __future__ import annotations

import io
import os
import pickle
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any

import torch

from worldmodels.errors import UserError

FORMAT_VERSION = 1
TMP_SUFFIX = ".tmp"


def atomic_write(path: str | os.PathLike, write: Callable[[IO[bytes]], None]) -> Path:
    """Write a file atomically: `write(f)` fills a temporary file that is then renamed to `path`."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=TMP_SUFFIX, dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> Path:
    def write(f: IO[bytes]) -> None:
        f.write(data)

    return atomic_write(path, write)


def atomic_write_text(path: str | os.PathLike, text: str) -> Path:
    return atomic_write_bytes(path, text.encode())


def remove_stale_temporaries(directory: str | os.PathLike) -> int:
    """Delete temporary files left by a killed writer; returns how many were removed."""
    directory = Path(directory)
    if not directory.is_dir():
        return 0
    stale = [p for p in directory.iterdir() if p.name.startswith(".") and p.name.endswith(TMP_SUFFIX)]
    for p in stale:
        p.unlink(missing_ok=True)
    return len(stale)


def save_checkpoint(path: str | os.PathLike, kind: str, state: dict[str, Any]) -> Path:
    """Save `state` (tensors, numbers, dicts, picklable objects) as a self-describing checkpoint.

    `kind` names what it is ("vae", "mdnrnn", "es", ...) so that loading the wrong file is caught.
    """
    payload = {"format_version": FORMAT_VERSION, "kind": kind, **state}
    buffer = io.BytesIO()
    torch.save(payload, buffer)
    return atomic_write_bytes(path, buffer.getvalue())


def load_checkpoint(path: str | os.PathLike, kind: str, map_location: Any = "cpu") -> dict[str, Any]:
    """Load a checkpoint written by `save_checkpoint`; a missing, corrupt or foreign file is a UserError."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"checkpoint {path} does not exist: run the stage that writes it first")
    try:
        payload = torch.load(path, map_location=map_location, weights_only=False)
    except (pickle.UnpicklingError, EOFError, RuntimeError, ValueError, OSError, AttributeError) as e:
        raise UserError(
            f"checkpoint {path} is corrupt or truncated ({type(e).__name__}): delete it and rerun the stage"
        ) from None
    if not isinstance(payload, dict) or payload.get("kind") != kind:
        found = payload.get("kind") if isinstance(payload, dict) else type(payload).__name__
        raise UserError(f"checkpoint {path} holds {found!r}, expected {kind!r}: delete it and rerun the stage")
    if payload.get("format_version") != FORMAT_VERSION:
        raise UserError(
            f"checkpoint {path} has format version {payload.get('format_version')}, this worldmodels reads "
            f"{FORMAT_VERSION}: rerun the stage with --force"
        )
    return payload
