"""Signatures are pinned: the same document gives the same shingles and MinHash values in every run, task and process,
and equal to the committed fixture (a change of the hashing invalidates stored signatures: bump the fixture
knowingly, never silently)."""

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
from datatrove.data import Document

from deepseek_hf.data.config import DedupConfig
from deepseek_hf.data.dedup import DedupSignature, minhash_config

FIXTURE = Path(__file__).parent / "fixtures" / "dedup_signatures.json"
TEXTS = [
    "床前明月光，疑是地上霜。舉頭望明月，低頭思故鄉。",
    "The river, the CITY and 3 bridges: it's a café's morning, and the bridges are old.",
    "秦川雄帝宅, It's 2 cats and 12 dogs; 函谷壯皇居！",
]
COMPUTE = """
import json, sys
from deepseek_hf.data.config import DedupConfig
from deepseek_hf.data.dedup import DedupSignature, minhash_config
texts, out = json.loads(sys.argv[1]), {}
for bits in (32, 64):
    signer = DedupSignature("/nonexistent", minhash_config(DedupConfig(hash_precision=bits)))
    hashes, offsets = signer.shingles(texts)
    out[str(bits)] = {"shingles": hashes.tolist(), "offsets": offsets.tolist(),
                      "signatures": signer.signatures(hashes, offsets).tolist()}
print(json.dumps(out))
"""


def _in_subprocess() -> dict:
    result = subprocess.run(
        [sys.executable, "-c", COMPUTE, json.dumps(TEXTS)], check=True, capture_output=True, text=True, timeout=120
    )
    return json.loads(result.stdout.strip().splitlines()[-1])


def test_signatures_equal_the_committed_fixture_and_a_fresh_process():
    fixture = json.loads(FIXTURE.read_text())
    assert _in_subprocess() == fixture
    for bits in ("32", "64"):
        signer = DedupSignature("/nonexistent", minhash_config(DedupConfig(hash_precision=int(bits))))
        hashes, offsets = signer.shingles(TEXTS)
        assert hashes.tolist() == fixture[bits]["shingles"] and offsets.tolist() == fixture[bits]["offsets"]
        assert signer.signatures(hashes, offsets).tolist() == fixture[bits]["signatures"]
        # a document alone or in a batch with others: the same values
        for i, text in enumerate(TEXTS):
            assert signer.signature(signer.get_shingles(text)).tolist() == fixture[bits]["signatures"][i]


def test_signature_files_do_not_depend_on_the_sharding(tmp_path):
    config = minhash_config(DedupConfig())
    docs = [Document(text=f"{t} w{chr(97 + i)}", id=f"{i}/{t[:3]}") for i in range(26) for t in TEXTS]
    one = tmp_path / "one"
    step = DedupSignature(str(one), config)
    step.run(iter(docs), 0, 1)
    rows = np.fromfile(one / "full/00000.sig", dtype=step.dtype).reshape(len(docs), -1)
    parts, start = [], 0
    for rank, size in enumerate((7, 50, len(docs) - 57)):  # shards cut across the signature batches
        DedupSignature(str(tmp_path / "three"), config).run(iter(docs[start : start + size]), rank, 3)
        parts.append(np.fromfile(tmp_path / f"three/full/{rank:05d}.sig", dtype=step.dtype).reshape(size, -1))
        start += size
    assert np.array_equal(np.concatenate(parts), rows)
    assert len(np.unique(rows, axis=0)) == len(docs)
