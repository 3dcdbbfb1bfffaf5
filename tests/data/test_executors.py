"""The same pipeline on datatrove's other executors: Slurm (job scripts built, not submitted) and Ray (local cluster)."""

import re
from pathlib import Path

import dill
import pytest

from deepseek_hf.data.pipeline import build_stages, run_pipeline


def _inputs(dh, rng, tmp_path):
    texts = [dh.make_text(rng, 60) for _ in range(40)]
    records = [{"id": f"d{i}", "text": t, "source": f"s{i % 2}"} for i, t in enumerate(texts)]
    records += [{"id": f"copy{i}", "text": texts[i].upper()} for i in range(5)]
    records += [{"id": f"near{i}", "text": dh.near_copy(texts[10 + i], rng)} for i in range(5)]
    return [{"path": str(dh.write_jsonl(tmp_path / "in.jsonl", records))}]


def test_slurm_job_arrays_are_built_and_chained_without_submitting(tmp_path, dh, rng, monkeypatch):
    import datatrove.executor.slurm as slurm

    submitted = []

    def fake_sbatch(script: str, job_id_retriever, *args) -> str:
        submitted.append((script, args))
        return str(1000 + len(submitted))

    monkeypatch.setattr(slurm, "launch_slurm_job", fake_sbatch)
    executor = {
        "type": "slurm",
        "tasks": 4,
        "partition": "cpu",
        "time": "2:00:00",
        "venv_path": "/envs/ds/bin/activate",
        "stage_overrides": {"dedup_clusters": {"mem_per_cpu_gb": 64}},
    }
    cfg = dh.fast_config(tmp_path, _inputs(dh, rng, tmp_path), executor=executor, dedup={"num_buckets": 4})
    root = Path(run_pipeline(cfg))

    stages = [s.name for s in build_stages(cfg)]
    jobs = [(script, args) for script, args in submitted if "launch_pickled_pipeline" in script]
    assert len(jobs) == len(stages) == 8  # plus one stats-merging job per stage
    ids = {}
    for (script, args), stage in zip(jobs, stages):
        ids[stage] = str(1001 + submitted.index((script, args)))
        assert f"#SBATCH --job-name=deepseek-data-{stage}" in script and "#SBATCH --partition=cpu" in script
        assert "source /envs/ds/bin/activate" in script and f"{root}/logs/{stage}/executor.pik" in script
        assert (root / "logs" / stage / "launch_script.slurm").read_text() == script
    tasks = {stage: re.search(r"--array=0-(\d+)", script).group(1) for (script, _), stage in zip(jobs, stages)}
    assert tasks == {
        "ingest": "3",
        "dedup_signatures": "3",
        "dedup_buckets": "4",
        "dedup_clusters": "0",
        "dedup_filter": "3",
        "line_dedup_find": "0",
        "filter": "3",
        "finalize": "0",
    }
    assert "#SBATCH --mem-per-cpu=64G" in jobs[stages.index("dedup_clusters")][0]
    for previous, stage in zip(stages, stages[1:]):  # each stage waits for the previous one to succeed
        args = jobs[stages.index(stage)][1]
        assert f"--dependency=afterok:{ids[previous]}" in args
    with open(root / "logs" / "dedup_buckets" / "executor.pik", "rb") as f:
        pickled = dill.load(f)
    assert pickled.world_size == 5 and type(pickled.pipeline[0]).__name__ == "DedupBuckets"
    assert not (root / "work" / "ingest").exists() and not (root / "output").exists()  # nothing ran here


@pytest.mark.slow
@pytest.mark.filterwarnings("ignore:placement_group:DeprecationWarning")  # raised inside datatrove's Ray executor
def test_ray_local_cluster_gives_the_local_output(tmp_path, dh, rng):
    ray = pytest.importorskip("ray")
    inputs = _inputs(dh, rng, tmp_path)
    # the dedup stages (the multi-stage part) + filters; each Ray task pays an actor start-up (a fresh process)
    sections = {"dedup": {"num_buckets": 1}, "line_dedup": {"enabled": False}}
    local = run_pipeline(dh.fast_config(tmp_path, inputs, "local", executor={"tasks": 2, "workers": 1}, **sections))
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    try:
        executor = {"type": "ray", "tasks": 2, "mem_per_cpu_gb": 0.25}
        remote = run_pipeline(dh.fast_config(tmp_path, inputs, "ray", executor=executor, **sections))
    finally:
        ray.shutdown()
    assert dh.output_records(remote) == dh.output_records(local) != []
