"""Prepare pretraining data the DeepSeek LLM way (arXiv 2401.02954, section 2.1): deduplicate across the whole
corpus, filter, remix — on datatrove, with the executor (local / Ray / Slurm) chosen in the config.

CPU demo on the shipped EN/ZH sample (the embedded default; a minute on 2 cores) -> outputs/demo/data:
    python recipes/prepare_data.py --config recipes/tiny/data/config_demo.yaml

Web-scale layout on Slurm (edit the input paths and partition first):
    python recipes/prepare_data.py --config recipes/deepseek-llm-7b/data/config_full.yaml

Any scalar key can be overridden on the command line, e.g. `--output_dir /tmp/run --overwrite true`.
The pretraining recipe reads the result with `deepseek_hf.data.load_output(output_dir)`.
"""

from deepseek_hf.data import DataPipelineConfig, run_pipeline
from deepseek_hf.data.cli import make_parser


def main(config: DataPipelineConfig) -> None:
    root = run_pipeline(config)
    print(f"run folder: {root}  (report: {root}/report.md, documents: {root}/output)")


if __name__ == "__main__":
    main(*make_parser().parse_args_and_config())
