"""The recipe scripts and their YAML configs, installed as `deepseek_hf.recipes` (setup.py maps this folder there).

In a checkout they run as scripts (`python recipes/pretrain.py --config recipes/tiny/pretrain/config_cpu.yaml`); from
an installed package, where this folder is absent, `deepseek-hf pretrain|sft|dpo --config tiny/pretrain/config_cpu`
runs the same modules' `cli(argv)` with the shipped configs reachable by name (`deepseek_hf.recipe_cli`).
"""
