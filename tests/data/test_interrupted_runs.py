"""A run killed with SIGKILL leaves no process behind, and its re-run resumes to the output of an uninterrupted run."""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest
import yaml

from deepseek_hf.data.pipeline import run_pipeline

REPO = Path(__file__).resolve().parents[2]

# A pass-through step that stalls its task after a few documents, so the run is surely mid-stage when killed. It
# lives in a module on PYTHONPATH: the workers (forked from the forkserver) unpickle it by reference.
STALL_STEP = """
import os
import time
from pathlib import Path

from datatrove.pipeline.base import PipelineStep


class Stall(PipelineStep):
    name = "stall"

    def __init__(self, flag_dir, after):
        super().__init__()
        self.flag_dir, self.after = flag_dir, after

    def run(self, data, rank=0, world_size=1):
        for i, doc in enumerate(data):
            if i == self.after:
                Path(self.flag_dir, f"stalled.{rank}").write_text(str(os.getpid()))
                while True:
                    time.sleep(0.05)
            yield doc
"""

DRIVER = """
import sys

from stall_step import Stall

from deepseek_hf.data import pipeline
from deepseek_hf.data.config import DataPipelineConfig



def build_stalled(config, build_stages=pipeline.build_stages):
    stages = build_stages(config)
    for stage in stages:
        if stage.name == "filter":
            stage.pipeline.insert(-1, Stall(sys.argv[2], after=5))  # just before the writer: partial shards exist
    return stages


if __name__ == "__main__":  # the workers import this module again
    pipeline.build_stages = build_stalled
    pipeline.run_pipeline(DataPipelineConfig.from_yaml(sys.argv[1]))
"""


def _alive(procs: list[psutil.Process]) -> list[psutil.Process]:
    alive = []
    for p in procs:
        try:
            if p.is_running() and p.status() != psutil.STATUS_ZOMBIE:
                alive.append(p)
        except psutil.NoSuchProcess:
            pass
    return alive


@pytest.mark.slow
def test_kill_9_of_the_main_process_ends_every_worker_and_the_rerun_resumes(tmp_path, dh, rng):
    texts = [dh.make_text(rng, 60) for _ in range(80)]
    records = [{"id": f"d{i}", "text": t} for i, t in enumerate(texts)] + [{"id": "copy", "text": texts[3]}]
    inputs = [{"path": str(dh.write_jsonl(tmp_path / "in.jsonl", records))}]
    sections = {"inputs": inputs, "ingest": {"progress": False}, "filters": {"quality": {"min_doc_words": 5}}}
    killed = tmp_path / "killed"
    config = {"output_dir": str(killed), "executor": {"tasks": 2, "workers": 2}, "remix": {"enabled": False}}
    (tmp_path / "run.yaml").write_text(yaml.safe_dump({**config, **sections}))
    (tmp_path / "stall_step.py").write_text(STALL_STEP)
    (tmp_path / "driver.py").write_text(DRIVER)
    flags = tmp_path / "flags"
    flags.mkdir()
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(tmp_path), str(REPO)])}
    log = (tmp_path / "driver.log").open("wb")
    main = subprocess.Popen(
        [sys.executable, str(tmp_path / "driver.py"), str(tmp_path / "run.yaml"), str(flags)],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    family: list[psutil.Process] = []
    try:
        deadline = time.monotonic() + 300
        while len(list(flags.glob("stalled.*"))) < 2:
            assert main.poll() is None, (tmp_path / "driver.log").read_text()[-3000:]
            assert time.monotonic() < deadline, "the run never reached the stalled stage"
            time.sleep(0.2)
        family = psutil.Process(main.pid).children(recursive=True)
        workers = {int(p.read_text()) for p in flags.glob("stalled.*")}
        assert workers <= {p.pid for p in family}
        ingest_done = (killed / "logs/ingest/completions/00000").stat().st_mtime_ns
        main.send_signal(signal.SIGKILL)
        main.wait()
        psutil.wait_procs(_alive(family), timeout=15)
        survivors = [f"{p.pid} {' '.join(p.cmdline())[:120]}" for p in _alive(family)]
        assert not survivors, f"processes of the killed run still alive: {survivors}"
    finally:
        for p in _alive(family):
            p.kill()
        if main.poll() is None:
            main.kill()
        log.close()

    # the re-run (same configuration; the worker count is not part of it) resumes where the killed run stopped
    rerun = dh.fast_config(tmp_path, inputs, "killed", executor={"tasks": 2, "workers": 1})
    run_pipeline(rerun)
    assert (killed / "logs/ingest/completions/00000").stat().st_mtime_ns == ingest_done  # resumed, not redone
    reference = run_pipeline(dh.fast_config(tmp_path, inputs, "reference", executor={"tasks": 2, "workers": 1}))
    assert dh.output_records(killed) == dh.output_records(reference) and len(dh.output_records(reference)) > 70
