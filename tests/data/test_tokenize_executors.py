"""Tokenizing on datatrove's other executors: Slurm (job arrays built, not submitted) and Ray (local cluster)."""

from __future__ import annotations

import gzip
import json
import re
from pathlib import Path

import dill
import pytest

from deepseek_hf.data.tokenize import MANIFEST_FILE, TokenizeConfig, run_tokenize

REPO = Path(__file__).resolve().parents[2]
DEMO_CORPUS = REPO / "deepseek_hf" / "assets" / "demo" / "corpus_sample.jsonl.gz"


@pytest.fixture(scope="module")
def corpus_and_tokenizer(tmp_path_factory) -> tuple[Path, str]:
    from deepseek_hf.tokenizer import train_tokenizer

    with gzip.open(DEMO_CORPUS, "rt", encoding="utf-8") as handle:
        texts = [json.loads(line)["text"] for line in handle][::20]
    folder = tmp_path_factory.mktemp("tokenize")
    (folder / "in").mkdir()
    for i in range(4):
        (folder / "in" / f"{i}.jsonl").write_text("".join(json.dumps({"text": t}) + "\n" for t in texts[i::4]))
    train_tokenizer([str(folder / "in" / "0.jsonl")], vocab_size=300, output_dir=folder / "tok", show_progress=False)
    return folder / "in", str(folder / "tok")


def _config(tmp_path, corpus_and_tokenizer, name: str, executor: dict) -> TokenizeConfig:
    corpus, tokenizer = corpus_and_tokenizer
    return TokenizeConfig(input=str(corpus), tokenizer=tokenizer, output_dir=str(tmp_path / name), executor=executor)


def test_slurm_job_arrays_are_built_and_chained_without_submitting(tmp_path, corpus_and_tokenizer, monkeypatch):
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
        "venv_path": "/envs/ds/bin/activate",
        "cpus_per_task": 2,
    }
    root = Path(run_tokenize(_config(tmp_path, corpus_and_tokenizer, "tokens", executor)))

    jobs = [(script, args) for script, args in submitted if "launch_pickled_pipeline" in script]
    assert len(jobs) == 2  # tokenize, then manifest (plus one stats-merging job each)
    (tokenize, _), (manifest, manifest_args) = jobs
    assert "#SBATCH --job-name=deepseek-data-tokenize" in tokenize and "#SBATCH --partition=cpu" in tokenize
    assert re.search(r"--array=0-(\d+)", tokenize).group(1) == "3"
    assert re.search(r"--array=0-(\d+)", manifest).group(1) == "0"
    assert "#SBATCH --cpus-per-task=2" in tokenize and "source /envs/ds/bin/activate" in tokenize
    assert f"--dependency=afterok:{1001 + submitted.index(jobs[0])}" in manifest_args
    with open(root / "logs" / "tokenize" / "executor.pik", "rb") as f:
        pickled = dill.load(f)
    reader, writer = pickled.pipeline
    assert pickled.world_size == 4 and type(writer).__name__ == "TokenShardWriter" and writer.threads == 2
    assert [reader.inputs.files[a:b] for a, b in reader.blocks] == [["0.jsonl"], ["1.jsonl"], ["2.jsonl"], ["3.jsonl"]]
    assert not (root / "shards").exists() and not (root / MANIFEST_FILE).exists()  # nothing ran here


@pytest.mark.slow
@pytest.mark.filterwarnings("ignore:placement_group:DeprecationWarning")  # raised inside datatrove's Ray executor
def test_ray_local_cluster_gives_the_local_shards(tmp_path, corpus_and_tokenizer):
    ray = pytest.importorskip("ray")
    from deepseek_hf.training.packing import PackedDataset
    from deepseek_hf.training.shards import load_tokenized_corpus

    local = run_tokenize(_config(tmp_path, corpus_and_tokenizer, "local", {"tasks": 2, "workers": 1}))
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    try:
        executor = {"type": "ray", "tasks": 2, "mem_per_cpu_gb": 0.25}
        remote = run_tokenize(_config(tmp_path, corpus_and_tokenizer, "ray", executor))
    finally:
        ray.shutdown()
    rows = [PackedDataset(load_tokenized_corpus(root), 32) for root in (local, remote)]
    assert len(rows[0]) == len(rows[1]) > 10
    for i in range(len(rows[0])):
        assert all((rows[0][i][k] == rows[1][i][k]).all() for k in ("input_ids", "position_ids", "labels"))
    manifests = [json.loads((Path(root) / MANIFEST_FILE).read_text()) for root in (local, remote)]
    assert [s["num_tokens"] for s in manifests[0]["shards"]] == [s["num_tokens"] for s in manifests[1]["shards"]]
