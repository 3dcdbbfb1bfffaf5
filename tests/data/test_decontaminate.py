"""Benchmark decontamination: items read through the evaluation's tasks, planted items found in every form, clean
text untouched, the n-gram counts against a direct computation, the pipeline stage, the JSONL command, datatrove."""

from __future__ import annotations

import csv
import gzip
import json
import random
from pathlib import Path

import pytest

from deepseek_hf.data.decontam import NGramIndex, Thresholds, benchmark_tasks, load_items
from deepseek_hf.data.decontam.index import prepare
from deepseek_hf.data.decontam.planted import SpaceSplit, datatrove_filter, plant, render
from deepseek_hf.data.text import CJKWordTokenizer

DEMO_CORPUS = Path(__file__).resolve().parents[2] / "deepseek_hf" / "assets" / "demo" / "corpus_sample.jsonl.gz"

# made-up exam items in the CMMLU / C-Eval layouts (question, A-D, answer)
CMMLU_ITEMS = [
    ("人体内负责将氧气从肺部运送到全身各处组织的主要细胞是", "红细胞", "白细胞", "血小板", "淋巴细胞", "A"),
    ("下列关于人体骨骼肌收缩时肌节长度变化的说法中正确的是", "肌节变长", "肌节缩短", "肌节不变", "先变长后缩短", "B"),
    ("成年人的脊柱由多少块椎骨通过椎间盘和韧带连接而成", "二十四块", "二十六块", "三十三块", "十二块", "B"),
    ("心脏的四个腔室中壁最厚且负责把血液泵入主动脉的是", "右心房", "左心房", "右心室", "左心室", "D"),
]
CEVAL_ITEMS = [
    (
        "光合作用的暗反应阶段在叶绿体的哪个部位进行并消耗光反应产物____",
        "类囊体薄膜",
        "叶绿体基质",
        "细胞质基质",
        "线粒体内膜",
        "B",
    ),
    (
        "孟德尔用豌豆做杂交实验时发现的遗传规律中不包括下列哪一项____",
        "分离定律",
        "自由组合定律",
        "连锁互换定律",
        "显隐性关系",
        "C",
    ),
]


def _csv(path: Path, header: list[str], rows: list[list]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", encoding="utf-8", newline="") as f:
        csv.writer(f).writerows([header, *rows])


@pytest.fixture(scope="module")
def bench_dir(tmp_path_factory) -> Path:
    """A benchmark folder laid out like shared/data with one CMMLU and one C-Eval subject."""
    root = tmp_path_factory.mktemp("benchmarks")
    for split in ("dev", "test"):
        _csv(
            root / f"cmmlu/{split}/anatomy.csv",
            ["", "Question", *"ABCD", "Answer"],
            [[i, *r] for i, r in enumerate(CMMLU_ITEMS)],
        )
    for split in ("dev", "val"):
        rows = [[i, *r] for i, r in enumerate(CEVAL_ITEMS)]
        _csv(root / f"ceval/{split}/high_school_biology_{split}.csv", ["id", "question", *"ABCD", "answer"], rows)
    return root


@pytest.fixture(scope="module")
def loaded(bench_dir):
    return load_items(["cmmlu", "ceval"], str(bench_dir))


@pytest.fixture(scope="module")
def index(loaded) -> NGramIndex:
    return NGramIndex.build(loaded.items, 10)


@pytest.fixture(scope="module")
def background() -> list[dict]:
    with gzip.open(DEMO_CORPUS, "rt", encoding="utf-8") as f:
        return [json.loads(line) for line in f]


def _hit_ids(index: NGramIndex, texts: list[str]) -> list[list[str]]:
    return [[index.items[h.item]["id"] for h in hits] for hits in index.match(texts, Thresholds())]


def test_items_come_from_the_evaluation_tasks(loaded, bench_dir):
    from deepseek_hf.eval.benchmarks import BENCHMARKS

    tasks = benchmark_tasks()
    assert set(tasks) == set(BENCHMARKS)
    assert {t.test_split for t in tasks["cmmlu"]} == {"test"} and {t.test_split for t in tasks["ceval"]} == {"val"}
    assert len(tasks["cmmlu"]) == 67 and len(tasks["ceval"]) == 52
    # the evaluated splits only (CMMLU test, C-Eval val: the paper's sets), every subject missing from the folder named
    assert [i.id for i in loaded.items][:2] == ["cmmlu/anatomy/test/0", "cmmlu/anatomy/test/1"]
    assert len(loaded.items) == len(CMMLU_ITEMS) + len(CEVAL_ITEMS)
    assert len(loaded.missing_subjects["cmmlu"]) == 66 and "anatomy" not in loaded.missing_subjects["cmmlu"]
    question, options = loaded.items[0].fields
    assert question == CMMLU_ITEMS[0][0] and options == "A. 红细胞\nB. 白细胞\nC. 血小板\nD. 淋巴细胞"
    everything = load_items(["cmmlu"], str(bench_dir), splits="all")
    assert everything.duplicates == {"cmmlu": len(CMMLU_ITEMS)}  # dev holds the same rows here: indexed once


def test_english_items_of_the_shipped_demo_match_the_loader():
    from deepseek_hf.eval.benchmarks import load_benchmark
    from deepseek_hf.eval.cli import resolve_data_dir

    names = ["arc", "hellaswag", "piqa", "winogrande", "openbookqa"]
    items = load_items(names, resolve_data_dir("demo")).items
    demo = resolve_data_dir("demo")
    expected = sum(len(load_benchmark("arc", level, demo)["test"]) for level in ("easy", "challenge"))
    expected += sum(len(load_benchmark(n, None, demo)["validation"]) for n in names[1:])
    assert len(items) == expected
    hellaswag = next(i for i in items if i.benchmark == "hellaswag")
    row = load_benchmark("hellaswag", None, demo)["validation"][0]
    assert hellaswag.fields == (f"{row['ctx']} {row['endings'][row['gold']]}",)  # the original text, gold ending


def test_planted_items_are_found_in_every_form(index, loaded, background):
    rng = random.Random(0)
    chinese_host = next(d["text"] for d in background if len(d["text"]) > 500 and "的" in d["text"])
    texts, expected = [], []
    for item in loaded.items:
        for variant in ("verbatim", "reformatted", "inside_document"):
            texts.append(render(item, variant, rng, chinese_host))
            expected.append([item.id])
    assert _hit_ids(index, texts) == expected
    # whitespace, full-width and punctuation changes only: the same n-grams
    question = CMMLU_ITEMS[1][0]
    assert _hit_ids(
        index, [f"Ｑ：{' '.join(question)}！\n（A）肌节变长；（B）肌节缩短；（C）肌节不变；（D）先变长后缩短"]
    ) == [["cmmlu/anatomy/test/1"]]


def test_clean_text_loses_nothing(index, background):
    hits = _hit_ids(index, [d["text"] for d in background])
    assert sum(map(bool, hits)) == 0
    # a stock phrase shared with an item is not enough: the fraction threshold
    assert _hit_ids(index, ["下列关于人体骨骼肌收缩时的说法，大家众说纷纭。"]) == [[]]


def _ngram_sets(text: str, n: int) -> set[tuple]:
    units = CJKWordTokenizer().word_tokenize(prepare(text))
    return {tuple(units[i : i + n]) for i in range(len(units) - n + 1)}


def test_counts_and_thresholds_match_a_direct_computation(index, loaded):
    """Matched / total n-grams per (document, item) against sets of unit tuples; hits exactly where the rule says."""
    rng = random.Random(3)
    pool = "".join(f for item in loaded.items for f in item.fields)
    texts = []
    for _ in range(60):  # pieces of items of random lengths, shuffled together: every fraction occurs
        cut = rng.randrange(len(pool))
        texts.append(
            pool[cut : cut + rng.randrange(5, 60)] + "。" + pool[rng.randrange(len(pool)) :][: rng.randrange(40)]
        )
    for fraction, least in ((0.5, 1), (0.2, 3), (1.0, 1)):
        got = index.match(texts, Thresholds(fraction, least))
        for text, hits in zip(texts, got):
            doc = _ngram_sets(text, 10)
            expected = []
            for k, item in enumerate(loaded.items):
                grams = set().union(*(_ngram_sets(f, 10) for f in item.fields))
                matched = len(grams & doc)
                if grams and matched >= least and matched >= fraction * len(grams):
                    expected.append((k, matched, len(grams)))
            assert [(h.item, h.matched, h.total) for h in hits] == expected


def test_datatrove_ngram_filter_misses_chinese_inside_a_document(tmp_path, loaded, index, background):
    """datatrove's filter with its default (English, space-separated) tokens sees a Chinese sentence as one token:
    an item inside a longer Chinese document is missed; with our CJK units its single 12-gram rule finds it."""
    host = next(d["text"] for d in background if len(d["text"]) > 500 and "的" in d["text"])
    item = loaded.items[0]
    text = render(item, "inside_document", random.Random(0), host)
    from datatrove.data import Document

    (tmp_path / "spaces").mkdir()
    (tmp_path / "cjk").mkdir()
    spaces = datatrove_filter(loaded.items, str(tmp_path / "spaces"), SpaceSplit())
    cjk = datatrove_filter(loaded.items, str(tmp_path / "cjk"), CJKWordTokenizer())
    assert spaces.filter(Document(text, "d")) is True  # kept: missed
    assert cjk.filter(Document(text, "d")) == (False, "contaminated")
    assert _hit_ids(index, [text]) == [[item.id]]


def _decont_section(bench_dir, **extra) -> dict:
    return {"benchmarks": ["cmmlu", "ceval"], "data_dir": str(bench_dir), **extra}


def test_pipeline_stage_drops_and_reports_the_planted_items(tmp_path, dh, rng, bench_dir, loaded):
    from deepseek_hf.data.pipeline import run_pipeline

    clean = [{"id": f"doc{i}", "text": dh.make_text(rng, 80)} for i in range(30)]
    planted = {"doc3": 0, "doc7": 0, "doc12": 5}  # document -> item: item 0 twice, item 5 once
    for doc, item in planted.items():
        clean[int(doc[3:])]["text"] += "\n" + "\n".join(loaded.items[item].fields) + "\n" + dh.make_text(rng, 20)
    path = dh.write_jsonl(tmp_path / "in.jsonl", clean)
    config = dh.fast_config(tmp_path, [{"path": str(path)}], decontaminate=_decont_section(bench_dir))
    root = Path(run_pipeline(config))
    report = json.loads((root / "decontamination.json").read_text())
    assert report["documents"] == 30 and report["documents_hit"] == 3
    cmmlu, ceval = report["benchmarks"]["cmmlu"], report["benchmarks"]["ceval"]
    assert (cmmlu["items"], cmmlu["items_hit"], cmmlu["documents_hit"]) == (4, 1, 2)
    assert (ceval["items"], ceval["items_hit"], ceval["documents_hit"]) == (2, 1, 1)
    assert [(h["item"], [d["id"] for d in h["documents"]]) for h in cmmlu["hits"] + ceval["hits"]] == [
        ("cmmlu/anatomy/test/0", ["doc3", "doc7"]),
        ("ceval/high_school_biology/val/1", ["doc12"]),
    ]
    assert len(report["missing_subjects"]["ceval"]) == 51
    assert {r["id"] for r in dh.excluded_records(root, "decontaminate")} == set(planted)
    assert {r[0] for r in dh.output_records(root)} == {f"doc{i}" for i in range(30)} - set(planted)
    main = json.loads((root / "report.json").read_text())
    step = next(s for s in main["steps"] if s["step"] == "decontaminate")
    assert step["dropped"] == {"contaminated": 3}
    assert "| cmmlu | 4 | 0 | 1 | 2 |" in (root / "decontamination.md").read_text()

    # flag mode, 3 tasks run in turn by one worker: every document kept and marked, the same report
    sections = {"decontaminate": _decont_section(bench_dir, mode="flag"), "executor": {"tasks": 3, "workers": 1}}
    flagged = Path(run_pipeline(dh.fast_config(tmp_path, [{"path": str(path)}], "flag", **sections)))
    marks = {r[0]: json.loads(r[2])["contamination"] for r in dh.output_records(flagged)}
    assert len(marks) == 30 and marks["doc12"] == ["ceval/high_school_biology/val/1"] and marks["doc0"] == []
    assert json.loads((flagged / "decontamination.json").read_text())["benchmarks"] == report["benchmarks"]


def test_a_run_without_the_section_keeps_its_fingerprint(tmp_path, dh, bench_dir):
    plain = dh.fast_config(tmp_path, [{"path": "x.jsonl"}])
    assert dh.fast_config(tmp_path, [{"path": "x.jsonl"}], decontaminate={}).fingerprint() == plain.fingerprint()
    active = dh.fast_config(tmp_path, [{"path": "x.jsonl"}], decontaminate=_decont_section(bench_dir))
    assert active.fingerprint() != plain.fingerprint()


def _sft_and_dpo(tmp_path: Path, loaded) -> tuple[Path, Path]:
    item = "\n".join(loaded.items[2].fields)
    sft = [
        {
            "messages": [
                {"role": "user", "content": "你好，请介绍一下你自己。"},
                {"role": "assistant", "content": "我是助手。"},
            ]
        },
        {"messages": [{"role": "user", "content": f"请回答：{item}"}, {"role": "assistant", "content": "B"}]},
        {"messages": [{"role": "user", "content": "没有回答"}]},  # unusable: no assistant turn
    ]
    dpo = [
        {"prompt": "写一句问候语", "chosen": "你好！", "rejected": "走开"},
        {"prompt": "解释一下", "chosen": "\n".join(loaded.items[5].fields), "rejected": "不知道"},
    ]
    paths = tmp_path / "sft.jsonl", tmp_path / "dpo.jsonl"
    for path, records in zip(paths, (sft, dpo)):
        path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records), encoding="utf-8")
    return paths


def test_command_on_sft_and_dpo_files(tmp_path, bench_dir, loaded, capsys):
    from deepseek_hf.data.cli import main

    sft, dpo = _sft_and_dpo(tmp_path, loaded)
    args = ["decontaminate", "--benchmarks", "cmmlu,ceval", "--data", str(bench_dir)]
    assert main([*args, "--input", str(sft), "--output", str(tmp_path / "sft_clean.jsonl")]) == 0
    kept = [json.loads(line) for line in (tmp_path / "sft_clean.jsonl").read_text().splitlines()]
    assert [r["messages"][0]["content"] for r in kept] == ["你好，请介绍一下你自己。"]
    report = json.loads((tmp_path / "sft_clean.jsonl.decontamination.json").read_text())
    assert report["skipped"] == {"no_response": 1} and report["records"] == 3 and report["written"] == 1
    assert report["benchmarks"]["cmmlu"]["hits"][0]["documents"][0]["id"] == "record 2"
    assert "1 contaminated (dropped), 1 unusable" in capsys.readouterr().out

    out = tmp_path / "dpo_flagged.jsonl.gz"
    assert main([*args, "--input", str(dpo), "--output", str(out), "--mode", "flag"]) == 0
    with gzip.open(out, "rt", encoding="utf-8") as f:
        flagged = [json.loads(line) for line in f]
    assert [r["contamination"] for r in flagged] == [[], ["ceval/high_school_biology/val/1"]]


@pytest.mark.parametrize(
    "change, message",
    [
        (["--benchmarks", "cmmlu,nope"], "unknown benchmark(s) ['nope']"),
        (["--data", "/no/such/folder"], "/no/such/folder: no such folder"),
        (["--benchmarks", "mmlu"], "mmlu: not found"),
        (["--input", "BAD"], "line 2 is not valid JSON"),
        (["--mode", "erase"], "decontaminate.mode must be one of ['drop', 'flag']"),
    ],
)
def test_command_errors_are_one_line(tmp_path, bench_dir, capsys, change, message):
    from deepseek_hf.data.cli import main

    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"text": "fine"}\n{"text": \n', encoding="utf-8")
    args = {"--benchmarks": "cmmlu", "--data": str(bench_dir), "--input": str(bad), "--output": str(tmp_path / "o")}
    args.update(dict(zip(change[::2], change[1::2])))
    if args["--input"] == "BAD":
        args["--input"] = str(bad)
    else:
        bad.write_text('{"text": "fine"}\n', encoding="utf-8")
    assert main(["decontaminate", *[x for kv in args.items() for x in kv]]) == 1
    err = capsys.readouterr().err
    assert message in err and "error:" in err and "Traceback" not in err
    assert not (tmp_path / "o").exists()


def test_shared_benchmarks_and_corpus(shared_data):
    """CMMLU test + C-Eval val of ../shared/data planted into the real EN/ZH corpus: every full copy found in each
    form, no untouched document hit (the figures of the README come from `python -m ...planted` on all of it)."""
    with gzip.open(shared_data / "corpus" / "pretrain_mix.jsonl.gz", "rt", encoding="utf-8") as f:
        corpus = [json.loads(line) for i, line in enumerate(f) if i % 4 == 0]
    items = load_items(["cmmlu", "ceval"], str(shared_data)).items
    index = NGramIndex.build(items, 10)
    detectable = [item for item, total in zip(items, index.totals.tolist()) if total]
    docs, truth = plant(detectable, corpus, 20, seed=1)
    hits = index.match([d["text"] for d in docs], Thresholds())
    found = {d["id"]: [index.items[h.item]["id"] for h in hit] for d, hit in zip(docs, hits) if hit}
    full = {doc: item for doc, (item, form) in truth.items() if form != "question_only"}
    assert all(item in found.get(doc, []) for doc, item in full.items())
    # anything else a planted document hits is a near-twin of the planted item (CMMLU repeats some questions)
    by_id = {item.id: item for item in detectable}
    for doc, item in full.items():
        twins = index.match(["\n".join(by_id[item].fields)], Thresholds())[0]
        assert set(found[doc]) <= {index.items[h.item]["id"] for h in twins}
    assert [doc for doc in found if doc not in truth] == []
