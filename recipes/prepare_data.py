"""Prepare pretraining data the DeepSeek LLM way (arXiv 2401.02954, section 2.1): deduplicate across the whole
corpus, filter, remix — on datatrove, with the executor (local / Ray / Slurm) chosen in the config.

CPU demo on the shipped EN/ZH sample (the embedded default; a minute on 2 cores) -> outputs/demo/data:
    python recipes/prepare_data.py --config recipes/tiny/data/config_demo.yaml

Web-scale layout on Slurm (edit the input paths and partition first):
    python recipes/prepare_data.py --config recipes/deepseek-llm-7b/data/config_full.yaml

Any scalar key can be overridden on the command line, e.g. `--output-dir /tmp/run --overwrite true` (the same
arguments as `deepseek-hf data run`; a mistake ends in one message, `--debug` shows its traceback).
The pretraining recipe reads the result with `deepseek_hf.data.load_output(output_dir)`.
"""

import sys

from deepseek_hf.data.cli import run_command

if __name__ == "__main__":
    status = run_command(sys.argv[1:], prog="prepare_data.py")
    if status:
        sys.exit(status)
