"""deepseek-hf: the DeepSeek LLM recipe on the Hugging Face stack.

`modeling/`, `eval_tasks/` and `recipes/` live at the top of the repository but are installed *inside* the package as
`deepseek_hf.modeling`, `deepseek_hf.eval_tasks` and `deepseek_hf.recipes`, so no generic top-level `modeling`
package lands in site-packages and a plain `pip install .` user gets everything (`deepseek-hf pretrain|sft|dpo` runs
the installed recipe scripts with their shipped YAMLs).
"""

from setuptools import find_packages, setup

# One table of pinned ranges; install_requires and the extras are built from it (alignment-handbook style).
# torch: any release from 2.6 up to 2.13.x; 2.13.0 (the CPU build on the project's machines) satisfies it.
_deps = [
    "accelerate>=1.10,<2",
    "datasets>=4.7,<6",
    "datatrove>=0.10.1,<0.11",
    "gguf>=0.17,<0.20",
    "lm-eval>=0.4.13,<0.5",
    "matplotlib>=3.8,<4",
    "numpy>=1.26,<3",
    "orjson>=3.9,<4",
    "peft>=0.17,<1",
    "py3langid>=0.4,<0.5",
    "pyyaml>=6,<7",
    "regex>=2023.0",
    "safetensors>=0.8,<1",
    "tokenizers>=0.23.1,<0.24",
    "torch>=2.6,<2.14",
    "tqdm>=4.66,<5",
    # datatrove hashes str shingles; xxhash 4 only accepts bytes (datatrove's own extras pin xxhash<4)
    "xxhash>=3.4,<4",
    "transformers>=5.24,<5.40",
    "trl>=1.16,<2",
    # optional
    "flash-attn>=2.3.3",
    "ray[default]>=2.40,<3",
    "tensorboard>=2.15,<3",
    "datasketch>=1.6,<3",
    "rensa>=0.5,<0.6",  # benchmark peers of the near-dedup stages (benchmarks/bench_dedup.py)
    "gaoya>=0.2.2,<0.3",
    "hypothesis>=6.100,<7",
    "pytest>=8,<10",
    "pytest-timeout>=2.3,<3",
    "ruff>=0.6,<1",
    "build>=1.2,<2",
]
deps = {spec.split(">")[0].split("<")[0].split("=")[0].split("[")[0]: spec for spec in _deps}


def deps_list(*names):
    return [deps[name] for name in names]


install_requires = deps_list(
    "torch",
    "transformers",
    "tokenizers",
    "safetensors",
    "datasets",
    "accelerate",
    "trl",
    "peft",
    "lm-eval",
    "datatrove",
    "gguf",
    "matplotlib",
    "numpy",
    "orjson",
    "py3langid",
    "pyyaml",
    "regex",
    "tqdm",
    "xxhash",
)
extras = {
    "flash": deps_list("flash-attn"),
    "ray": deps_list("ray"),
    "tracking": deps_list("tensorboard"),
    "bench": deps_list("datasketch", "rensa", "gaoya"),
}
extras["dev"] = deps_list("pytest", "pytest-timeout", "hypothesis", "ruff", "build") + extras["bench"] + extras["ray"]
extras["dev"] += extras["tracking"]  # the TensorBoard logging of the pretraining recipe is tested

# Map the three repo-top-level folders into the package namespace.
_mapped = {
    "modeling": "deepseek_hf.modeling",
    "eval_tasks": "deepseek_hf.eval_tasks",
    "recipes": "deepseek_hf.recipes",
}
packages = find_packages(include=["deepseek_hf", "deepseek_hf.*"])
package_dir = {}
for folder, name in _mapped.items():
    packages.append(name)
    package_dir[name] = folder
    for sub in find_packages(folder):
        packages.append(f"{name}.{sub}")
        package_dir[f"{name}.{sub}"] = f"{folder}/{sub.replace('.', '/')}"

setup(
    name="deepseek-hf",
    version="0.1.0.dev0",
    description="The DeepSeek LLM recipe (model, tokenizer, data, pretraining, scaling laws, alignment, evaluation) "
    "on transformers, datasets, tokenizers, accelerate, trl, lm-eval and datatrove",
    long_description=open("README.md", encoding="utf-8").read(),
    long_description_content_type="text/markdown",
    license="MIT",
    python_requires=">=3.10",
    packages=packages,
    package_dir=package_dir,
    package_data={
        "deepseek_hf": ["assets/**/*", "eval/reference/*"],
        # lm-eval's conventions: task YAMLs, `_*_yaml` templates (no .yaml suffix, so never indexed as tasks)
        "deepseek_hf.eval_tasks": ["**/*.yaml", "**/*_yaml", "**/*.md"],
        # the recipes' YAML configs (tiny, 7B, 67B per stage) and the accelerate configs
        "deepseek_hf.recipes": ["**/*.yaml", "**/*.md"],
    },
    include_package_data=True,
    install_requires=install_requires,
    extras_require=extras,
    entry_points={"console_scripts": ["deepseek-hf=deepseek_hf.cli:main"]},
)
