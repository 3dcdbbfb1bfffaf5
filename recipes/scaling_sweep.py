"""Run a scaling study of DeepSeek LLM section 3: IsoFLOP profiles or a batch/LR grid, one pretraining run each.

Every run is `python recipes/pretrain.py --config BASE.yaml --output_dir OUT/runs/<run> --compute_budget C ...`
(or `accelerate launch ...` with `launcher: accelerate`) in its own process, logged to OUT/logs/<run>.log; each
finished run's row (validation bits-per-byte, FLOPs, tokens, shape, batch, LR) goes into OUT/results.jsonl and
OUT/results.csv. Run the same command again to resume: runs in the table are not redone, a run killed half-way
resumes from its own checkpoint. Then fit and plot: `deepseek-hf scaling fit OUT/results.jsonl`.

The CPU demo (`make scaling-demo`; the reduced CI size is recipes/tiny/scaling/ci.yaml):
    python recipes/scaling_sweep.py --config recipes/tiny/scaling/isoflop_cpu.yaml

The paper's Figure 1b (`kind: schedule`: one model under several multi-step stage proportions) and Table 4
(`corpora:`: the same IsoFLOP study on corpora of different quality, a and b side by side):
    python recipes/scaling_sweep.py --config recipes/tiny/scaling/schedule_cpu.yaml
    python recipes/scaling_sweep.py --config recipes/tiny/scaling/quality_cpu.yaml    # see its header first

Flags override the YAML's keys (`--on_failure continue`, `--dry_run true`, `--budgets [1e11,3e11]`); every key
is a field of `deepseek_hf.scaling.sweep.SweepConfig`, an unknown one is an error. A configuration error ends in
one message and exit code 1 (`--debug`: the traceback); so does a sweep with failed runs, naming their logs.
"""

import logging
import signal
import sys

from deepseek_hf.scaling.sweep import load_config, run_sweep
from deepseek_hf.utils import USER_ERRORS, debug_requested, describe_error, parse_value

logger = logging.getLogger(__name__)
PROG = "recipes/scaling_sweep.py"


def parse_args(argv: list[str]) -> tuple[str | None, dict, bool]:
    """`--config PATH`, `--debug` and `--key value` / `--key=value` pairs (dashes or underscores in keys)."""
    config, overrides, debug = None, {}, False
    index = 0
    while index < len(argv):
        arg = argv[index]
        if arg in ("-h", "--help"):
            print(__doc__)
            raise SystemExit(0)
        if arg == "--debug":
            debug, index = True, index + 1
            continue
        if not arg.startswith("--") or len(arg) == 2:
            raise ValueError(f"unexpected argument {arg!r}: options are --key value")
        key, sep, value = arg[2:].partition("=")
        if not sep:
            if index + 1 >= len(argv):
                raise ValueError(f"option --{key} needs a value")
            value, index = argv[index + 1], index + 1
        key = key.replace("-", "_")
        if key == "config":
            config = value
        else:
            overrides[key] = parse_value(value)
        index += 1
    return config, overrides, debug


def main(config_path: str | None, overrides: dict) -> int:
    config = load_config(config_path, overrides)
    report = run_sweep(config)
    print(report.summary())
    if report.failed:
        failures = "; ".join(str(failure) for failure in report.failed)
        raise RuntimeError(f"{len(report.failed)} run(s) failed: {failures}; run the sweep again to retry them")
    if config.dry_run:
        print(
            f"dry run: the commands of the {len(report.not_started)} unfinished runs are in {config.output_dir}/commands.sh"
        )
    else:
        print(f"results: {config.results_path}; fit them with `deepseek-hf scaling fit {config.results_path}`")
    return 0


def _exit_on_sigterm(signum, frame):
    raise SystemExit(128 + signum)  # unwinds through the runner, which then stops the run it launched


def cli(argv: list[str] | None = None) -> int:
    logging.basicConfig(format="%(asctime)s %(levelname)s %(name)s: %(message)s", level=logging.INFO)
    previous = signal.signal(signal.SIGTERM, _exit_on_sigterm)  # a scheduler's kill must not orphan the run
    debug = False
    try:
        config_path, overrides, debug = parse_args(list(sys.argv[1:] if argv is None else argv))
        return main(config_path, overrides)
    except (*USER_ERRORS, RuntimeError) as error:
        if debug or debug_requested():
            raise
        print(f"{PROG}: error: {describe_error(error)}\n(--debug shows the traceback)", file=sys.stderr)
        return 1
    finally:
        signal.signal(signal.SIGTERM, previous)


if __name__ == "__main__":
    sys.exit(cli())
