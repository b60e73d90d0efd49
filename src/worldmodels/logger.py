"""Progress bars, a machine-readable metrics log, and loss-curve pictures.

Metrics go to `<stage>/metrics.jsonl`, one JSON object per line with namespaced keys
(`losses/total`, `charts/frames_per_s`, ...) and a `step`; `plot_metrics` draws them to a PNG.
The file is appended line by line (a killed run loses at most the line being written) and truncated
back to the restored step on resume, so curves never show a step twice.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from tqdm import tqdm

from worldmodels.checkpoint import atomic_write_bytes


class ProgressBar(tqdm):
    """tqdm with `advance_to(n)`: executors report how many tasks finished in this call."""

    def __init__(self, total: int, desc: str, unit: str = "it", initial: int = 0, quiet: bool = False) -> None:
        super().__init__(total=total, desc=desc, unit=unit, initial=initial, disable=quiet, file=sys.stderr,
                         dynamic_ncols=True, mininterval=0.5)
        self.start_count = initial

    def wrap(self, items: Iterable[Any]) -> Iterator[Any]:
        """Iterate `items`, advancing the bar by one per item and closing it at the end."""
        with self:
            for item in items:
                yield item
                self.update()

    def advance_to(self, done_in_call: int) -> None:
        self.update(self.start_count + done_in_call - self.n)


def progress_bar(total: int, desc: str, unit: str = "it", initial: int = 0, quiet: bool = False) -> ProgressBar:
    return ProgressBar(total, desc, unit, initial, quiet)


class MetricsLog:
    """Append-only JSON-lines metrics of one stage."""

    def __init__(self, path: Path, resume_step: int | None = None) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        if resume_step is None:
            self.path.write_text("")
        else:
            self._truncate(resume_step)

    def _truncate(self, step: int) -> None:
        kept = [r for r in read_metrics(self.path) if r.get("step", 0) <= step]
        self.path.write_text("".join(json.dumps(r) + "\n" for r in kept))

    def log(self, step: int, **values: Any) -> None:
        with self.path.open("a") as f:
            f.write(json.dumps({"step": step, **values}) + "\n")


def read_metrics(path: Path) -> list[dict[str, Any]]:
    path = Path(path)
    if not path.is_file():
        return []
    rows = []
    for line in path.read_text().splitlines():
        try:
            rows.append(json.loads(line))
        except json.JSONDecodeError:
            continue  # the line a killed run was writing
    return rows


def plot_metrics(path: Path, out: Path, keys: Iterable[str], title: str, x: str = "step") -> None:
    """Draw the named metrics against `x` into a PNG (written atomically)."""
    import io

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = read_metrics(path)
    keys = list(keys)
    fig, axes = plt.subplots(1, len(keys), figsize=(4 * len(keys), 3.2), squeeze=False)
    for ax, key in zip(axes[0], keys):
        points = [(r[x], r[key]) for r in rows if key in r and x in r]
        if points:
            xs, ys = zip(*points)
            ax.plot(xs, ys)
        ax.set_title(key)
        ax.set_xlabel(x)
        ax.grid(alpha=0.3)
    fig.suptitle(title)
    fig.tight_layout()
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=90)
    plt.close(fig)
    atomic_write_bytes(out, buffer.getvalue())
