"""loclip.configs: the recipes the commands run (the quickstarts among them) and DeepSpeed JSON, as files.

No code: this folder is a package only so that its files install with loclip (package data), and a command
finds its quickstart (``configs/pretrain/quickstart.yaml``, ``configs/mllm/quickstart.yaml``) from a wheel as
from a checkout, through ``importlib.resources``.
"""
