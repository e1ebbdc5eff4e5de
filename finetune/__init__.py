"""loclip.finetune: training the LLaVA-style MLLM (``loclip.mllm``) on referring and grounding conversations.

The recipe (``config``), the conversation dataset and batch stream (``data``), what trains (``adapters``:
stage 1/2, LoRA/QLoRA), composing a model from an encoder and an LLM (``builder``), preparing a pretrained LLM
from GGUF (``llm_prep``) and the trainer on the shared training loop (``trainer``). Nothing is imported here,
so ``import loclip.finetune.builder`` needs neither DeepSpeed nor peft.
"""
