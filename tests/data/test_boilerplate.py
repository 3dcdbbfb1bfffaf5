import numpy as np

from deepseek_hf.data.boilerplate import _partition
from deepseek_hf.data.pipeline import run_pipeline

BOILER = "Copyright 2024 Example Corp. All rights reserved."


def test_partition_covers_the_hash_range():
    hashes = np.array([0, 1, 2**63, 2**64 - 1], dtype=np.uint64)
    assert _partition(hashes, 4).tolist() == [0, 0, 2, 3]
    assert _partition(hashes, 1).tolist() == [0, 0, 0, 0]


def test_lines_in_enough_documents_are_removed_everywhere(tmp_path, dh, rng):
    docs = [{"id": f"d{i}", "text": f"{dh.make_text(rng, 60)}\n{BOILER}\nHome"} for i in range(5)]
    docs += [
        {"id": f"pair{i}", "text": f"{dh.make_text(rng, 60)}\nthis line is shared by two documents only"}
        for i in range(2)
    ]
    docs += [{"id": "only-boilerplate", "text": f"{BOILER}\n\n{BOILER.upper()}"}]
    path = dh.write_jsonl(tmp_path / "in.jsonl", docs)
    cfg = dh.fast_config(
        tmp_path,
        [{"path": str(path)}],
        filters={},
        dedup={"enabled": False},
        line_dedup={"min_docs": 3, "min_chars": 20},
    )
    root = run_pipeline(cfg)
    out = {r[0]: r[1] for r in dh.output_records(root)}
    assert all(BOILER not in text and text.endswith("\nHome") for i, text in out.items() if i.startswith("d"))
    assert all(text.endswith("shared by two documents only") for i, text in out.items() if i.startswith("pair"))
    assert [r["id"] for r in dh.excluded_records(root, "line_dedup")] == ["only-boilerplate"]
    import json
    from pathlib import Path

    report = json.loads((Path(root) / "report.json").read_text())
    assert report["line_dedup"]["boilerplate_lines"] == 1  # the upper-cased copy normalizes to the same line
    # 5 documents lose one line; the last one loses both of its lines and is dropped
    assert report["line_dedup"]["lines_removed"] == 7 and report["line_dedup"]["documents_emptied"] == 1
