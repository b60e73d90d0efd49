"""Pictures and videos of what V sees and what M dreams (PNG and GIF, written atomically)."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from worldmodels.checkpoint import atomic_write_bytes


def frame_grid(rows: list[np.ndarray], scale: int = 2, gap: int = 2) -> np.ndarray:
    """Rows of (N, 64, 64, 3) uint8 frames -> one (H, W, 3) uint8 image, `gap` white pixels between tiles."""
    n = max(len(r) for r in rows)
    h, w = rows[0].shape[1:3]
    grid = np.full(((h + gap) * len(rows) - gap, (w + gap) * n - gap, 3), 255, np.uint8)
    for i, row in enumerate(rows):
        for j, frame in enumerate(row):
            grid[i * (h + gap) : i * (h + gap) + h, j * (w + gap) : j * (w + gap) + w] = frame
    if scale != 1:
        size = (grid.shape[1] * scale, grid.shape[0] * scale)
        grid = np.asarray(Image.fromarray(grid).resize(size, Image.Resampling.NEAREST))
    return grid


def save_png(path: Path, image: np.ndarray) -> Path:
    buffer = io.BytesIO()
    Image.fromarray(image).save(buffer, format="PNG")
    return atomic_write_bytes(path, buffer.getvalue())


def save_gif(path: Path, frames: list[np.ndarray] | np.ndarray, fps: int = 25, scale: int = 3) -> Path:
    """A looping GIF of (H, W, 3) uint8 frames, enlarged `scale` times."""
    images = [Image.fromarray(f).resize((f.shape[1] * scale, f.shape[0] * scale), Image.Resampling.NEAREST)
              for f in frames]
    buffer = io.BytesIO()
    images[0].save(buffer, format="GIF", save_all=True, append_images=images[1:], duration=int(1000 / fps), loop=0)
    return atomic_write_bytes(path, buffer.getvalue())


def caption(frame: np.ndarray, lines: list[str], height: int = 12) -> np.ndarray:
    """(H, W, 3) uint8 -> the same with a white strip above holding `lines` of text (PIL's default font)."""
    strip = Image.new("RGB", (frame.shape[1], height * len(lines)), (255, 255, 255))
    draw = ImageDraw.Draw(strip)
    for i, line in enumerate(lines):
        draw.text((2, i * height), line, fill=(0, 0, 0))
    return np.concatenate([np.asarray(strip), frame], axis=0)
