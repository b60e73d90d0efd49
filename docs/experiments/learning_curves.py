"""Real-environment CMA-ES runs side by side: the score of the distribution mean against real env steps.

    python docs/experiments/learning_curves.py RUN_DIR [RUN_DIR ...] [--target SCORE] [--out curves.png]

Reads each run's `controller/metrics.jsonl` (a run trained with `controller.where=real`). Prints each evaluation
of the mean (generation, env steps, minutes, score), and the env steps each run took to first reach `--target`
(default: the first run's best evaluation), with the ratio to the first run's. For a run started at another
controller (`controller.init`), the steps count only its own generations: the steps behind the start (the
data, the driver's training) are not in its metrics. With `--out`, the curves as a PNG.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from worldmodels.artifacts import CONTROLLER_DIR
from worldmodels.logger import read_metrics


def evaluations(run_dir: Path) -> list[dict]:
    rows = [r for r in read_metrics(run_dir / CONTROLLER_DIR / "metrics.jsonl") if "eval/mean" in r]
    if not rows:
        raise SystemExit(f"{run_dir}: no evaluations in controller/metrics.jsonl (a real-environment C run?)")
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("run_dirs", type=Path, nargs="+")
    parser.add_argument("--target", type=float, default=None, help="score to reach (default: first run's best)")
    parser.add_argument("--out", type=Path, default=None, help="write the curves as a PNG here")
    args = parser.parse_args()
    runs = {run_dir: evaluations(run_dir) for run_dir in args.run_dirs}
    target = args.target if args.target is not None else max(r["eval/mean"] for r in runs[args.run_dirs[0]])
    reached: dict[Path, float | None] = {}
    for run_dir, rows in runs.items():
        print(f"{run_dir}:")
        for r in rows:
            print(f"  generation {r['step']:>4}  {r['charts/env_steps']:>10,} env steps  {r['charts/minutes']:6.1f} min"
                  f"  {r['eval/mean']:7.1f} ± {r['eval/std']:.1f}")
        reached[run_dir] = next((r["charts/env_steps"] for r in rows if r["eval/mean"] >= target), None)
    first = reached[args.run_dirs[0]]
    print(f"\nenv steps to first reach {target:.1f}:")
    for run_dir, steps in reached.items():
        ratio = f" ({steps / first:.2f} x {args.run_dirs[0]}'s)" if steps and first else ""
        print(f"  {run_dir}: {f'{steps:,}' if steps else 'not reached'}{ratio}")

    if args.out:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        fig, ax = plt.subplots(figsize=(6.5, 4))
        for run_dir, rows in runs.items():
            ax.errorbar([r["charts/env_steps"] for r in rows], [r["eval/mean"] for r in rows],
                        yerr=[r["eval/std"] for r in rows], marker="o", capsize=3, label=str(run_dir))
        ax.axhline(target, color="gray", lw=0.8, ls=":", label=f"target {target:.0f}")
        ax.set_xlabel("real env steps of C's training (and its evaluations)")
        ax.set_ylabel("score of the CMA-ES mean")
        ax.set_title("C in the real environment: score against env steps")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8, loc="lower right")
        fig.tight_layout()
        fig.savefig(args.out, dpi=90)
        print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
