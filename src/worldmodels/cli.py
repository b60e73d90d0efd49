"""`worldmodels`: one entry point, one subcommand per stage.

Every stage reads and writes a run directory (default `runs/<preset>`). Running the same command again
continues where a killed run stopped; a finished stage is skipped.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import NoReturn

from worldmodels import pipeline
from worldmodels.bench import main as bench_main
from worldmodels.config import (
    CONFIG_FILE,
    DEFAULT_PRESET,
    PRESETS,
    apply_overrides,
    describe_fields,
    load_run_config,
    resolve,
    save_run_config,
)
from worldmodels.envs import require_envpool
from worldmodels.errors import UserError
from worldmodels.runtime import DEVICES, EXECUTORS, Runtime
from worldmodels.stages import evaluate
from worldmodels.tools.diagnose import diagnose, format_table
from worldmodels.tools.dream import write_dream_video
from worldmodels.tools.inspect import format_report, inspect_run
from worldmodels.tools.temperatures import markdown, run_table

STAGES = {stage.name: stage for stage in pipeline.STAGES}
RUN_HELP = "every stage in order, each skipped when its artifact is complete"


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:  # one line, exit code 2, no usage dump
        raise UserError(f"{self.prog}: {message} (see --help)")


def _add_common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--preset", help=f"preset name (default {DEFAULT_PRESET}, or the run directory's config)")
    p.add_argument("--run-dir", type=Path, help="run directory (default runs/<preset>)")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="override a config field, e.g. --set vae.epochs=2 (repeatable)")
    p.add_argument("--seed", type=int, help="base seed of the run (config field `seed`)")
    p.add_argument("--workers", type=int, default=1, help="worker processes for environment rollouts")
    p.add_argument("--envs", type=int, default=Runtime.envs,
                   help="real environments per worker, stepped together (the agent's V and M batched)")
    p.add_argument("--device", default="auto", choices=DEVICES, help="torch device for models and the dream")
    p.add_argument("--executor", default="process", choices=EXECUTORS, help="where rollouts run")
    p.add_argument("--ray-address", help="Ray cluster address for --executor ray ('auto' = a running cluster)")
    p.add_argument("--force", action="store_true", help="continue a run directory with a changed config")
    p.add_argument("--quiet", action="store_true", help="no progress bars")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="worldmodels", description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)

    def command(name: str, text: str) -> argparse.ArgumentParser:  # its line in `--help` heads its own --help
        return sub.add_parser(name, help=text, description=text)

    stage_parsers = {}
    for name, text in [*((stage.name, stage.help) for stage in pipeline.STAGES), ("run", RUN_HELP)]:
        stage_parsers[name] = command(name, text)
        _add_common(stage_parsers[name])
    for name in ("evaluate", "run"):
        stage_parsers[name].add_argument("--episodes", type=int, help="real episodes to score (evaluate.episodes)")
    stage_parsers["evaluate"].add_argument(
        "--video", action="store_true", help="also write eval.gif: the first episode beside V's reconstruction")
    stage_parsers["evaluate"].add_argument(
        "--out", type=Path, help="write the result here instead of RUN_DIR/eval.json, and leave the run's "
        "config.yaml as it is (a side measurement, e.g. a second set of seeds with --set evaluate.seed=20000)")
    temperatures = command("temperatures",
                           "the paper's temperature table: C trained in the dream at each tau, scored in both")
    _add_common(temperatures)
    temperatures.add_argument("--taus", default="0.1,0.5,1.0,1.15,1.3", help="comma-separated temperatures")
    temperatures.add_argument("--episodes", type=int, default=100, help="episodes per score (dream and real)")
    temperatures.add_argument("--generations", type=int, help="CMA-ES generations per tau (default: the run's)")
    dream = command("dream", "a video of the controller acting inside M's dream, decoded by V")
    dream.add_argument("run_dir", type=Path)
    dream.add_argument("--temperature", type=float, help="dream temperature (default: the run's)")
    dream.add_argument("--out", type=Path, help="GIF to write (default RUN_DIR/dream.gif)")
    dream.add_argument("--steps", type=int, help="step cap (default: the run's controller.max_steps)")
    dream.add_argument("--seed", type=int, default=0, help="seed of the dream episode")
    dream.add_argument("--device", default="auto", choices=DEVICES)
    diagnose = command("diagnose", "fixed policies in the dream and in the real game, side by side; how well "
                                     "the dream ranks controllers")
    diagnose.add_argument("run_dir", type=Path)
    diagnose.add_argument("--episodes", type=int, default=20, help="episodes per policy and world")
    diagnose.add_argument("--temperature", type=float, help="dream temperature (default: the run's)")
    diagnose.add_argument("--device", default="auto", choices=DEVICES)
    diagnose.add_argument("--controllers", type=int, default=30,
                          help="controllers for the dream/real rank correlation (0: skip it)")
    diagnose.add_argument("--rollouts", type=int, default=2, help="episodes per controller and world")
    inspect = command("inspect", "what a run directory holds: config and each stage's status")
    inspect.add_argument("run_dir", type=Path)
    inspect.add_argument("--json", action="store_true", help="one JSON object with keys stages and config")
    presets = command("presets", "list the presets")
    presets.add_argument("--fields", action="store_true", help="also list every config key with its docstring")
    bench = command("bench", "throughput of every part against this machine's matmul ceiling")
    bench.add_argument("--quick", action="store_true", help="fewer steps, extrapolated")
    bench.add_argument("--json", metavar="FILE", default=None, help="also write the figures as one JSON object")
    return parser


def make_runtime(args: argparse.Namespace, record: bool = True, free: tuple[str, ...] = ("evaluate.",)) -> Runtime:
    """Resolve the config (preset or run directory's, plus overrides) and, if `record`, save it in the run
    directory (refused when it changes an existing run's config outside the `free` key prefixes without
    --force)."""
    for flag, value in (("--workers", args.workers), ("--envs", args.envs)):
        if value < 1:
            raise UserError(f"{flag} {value}: must be at least 1")
    if args.ray_address and args.executor != "ray":
        raise UserError("--ray-address needs --executor ray")
    if getattr(args, "episodes", None) is not None:
        args.overrides.append(f"evaluate.episodes={args.episodes}")
    run_dir = args.run_dir or Path("runs") / (args.preset or DEFAULT_PRESET)
    if args.preset is None and (run_dir / CONFIG_FILE).is_file():
        config = apply_overrides(load_run_config(run_dir), args.overrides, args.seed)
    else:
        config = resolve(args.preset or DEFAULT_PRESET, args.overrides, args.seed)
    if config.carracing_backend == "envpool" and args.command in ("collect", "train-controller", "run"):
        require_envpool()  # before anything is written, not later in a worker
    if not record and not (run_dir / CONFIG_FILE).is_file():
        raise UserError(f"{run_dir} is not a run directory (no {CONFIG_FILE}): train a run first")
    save_run_config(run_dir, config, force=args.force, write=record, free=free)
    return Runtime(run_dir=run_dir, config=config, workers=args.workers, envs=args.envs, device=args.device,
                   executor=args.executor, ray_address=args.ray_address, quiet=args.quiet)


def cmd_presets(args: argparse.Namespace) -> None:
    width = max(map(len, PRESETS))
    for name, preset in PRESETS.items():
        default = " (default)" if name == DEFAULT_PRESET else ""
        print(f"{name:<{width}}  {preset['description']}{default}")
    if args.fields:
        print("\nconfig keys (--set KEY=VALUE):\n" + describe_fields())


def cmd_inspect(args: argparse.Namespace) -> None:
    report = inspect_run(args.run_dir)
    print(json.dumps(report, indent=2) if args.json else format_report(report))


def cmd_dream(args: argparse.Namespace) -> None:
    if args.temperature is not None and args.temperature <= 0:
        raise UserError(f"--temperature {args.temperature}: must be positive")
    out = args.out or args.run_dir / "dream.gif"
    path, total, steps = write_dream_video(args.run_dir, out, args.temperature, args.steps, args.seed, args.device)
    print(f"dream: {steps} steps, return {total:.1f} -> {path}")


def cmd_diagnose(args: argparse.Namespace) -> None:
    if args.episodes < 1:
        raise UserError(f"--episodes {args.episodes}: must be at least 1")
    if args.controllers < 0 or args.rollouts < 1:
        raise UserError(f"--controllers {args.controllers} --rollouts {args.rollouts}: need controllers >= 0 "
                        "and rollouts >= 1")
    print(format_table(diagnose(args.run_dir, args.episodes, args.temperature, args.device, args.controllers,
                                args.rollouts)))


def cmd_temperatures(args: argparse.Namespace) -> None:
    try:
        taus = tuple(float(t) for t in args.taus.split(","))
    except ValueError:
        raise UserError(f"--taus {args.taus!r}: expected comma-separated numbers, e.g. 0.5,1.0,1.15") from None
    if min(taus) <= 0 or args.episodes < 1:
        raise UserError("--taus must be positive and --episodes at least 1")
    episodes = args.episodes
    args.episodes = None  # not evaluate.episodes
    # the table's own CMA-ES settings may differ from the run's (--set controller.rollouts=4, ...); the run's
    # config.yaml is left as it is
    rt = make_runtime(args, record=False, free=("evaluate.", "controller."))
    print(markdown(run_table(rt, taus, episodes, args.generations)))


def main(argv: list[str] | None = None) -> int:
    try:
        args = build_parser().parse_args(argv)
        if args.command == "presets":
            cmd_presets(args)
        elif args.command == "inspect":
            cmd_inspect(args)
        elif args.command == "dream":
            cmd_dream(args)
        elif args.command == "diagnose":
            cmd_diagnose(args)
        elif args.command == "temperatures":
            cmd_temperatures(args)
        elif args.command == "bench":
            bench_main(quick=args.quick, json_path=args.json)
        elif args.command == "evaluate":
            evaluate.run(make_runtime(args, record=args.out is None), video=args.video, out=args.out)
        elif args.command == "run":
            pipeline.run(make_runtime(args))
        else:
            STAGES[args.command].run(make_runtime(args))
        return 0
    except UserError as e:
        print(f"worldmodels: error: {e}", file=sys.stderr)
        return 2
    except BrokenPipeError:  # e.g. `worldmodels inspect D --json | head`
        sys.stderr.close()
        return 0
    except KeyboardInterrupt:
        print("worldmodels: interrupted; run the same command again to continue", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
