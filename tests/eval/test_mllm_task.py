"""`loclip-eval --task mllm` on a tiny random MLLM saved by the test (mechanics and output schema)."""

import json
from pathlib import Path

import pytest

from loclip.cli.evaluate import main
from loclip.synth import SceneConfig, write_split


def test_mllm_task_scores_referring_and_rec(tmp_path: Path) -> None:
    from loclip.encoder import LoclipVisionModel, tiny_config
    from loclip.mllm.builder import compose, make_processor, tiny_llm
    from loclip.mllm.conversation import ensure_tokens
    from loclip.synth import build_tokenizer

    tokenizer = build_tokenizer(model_max_length=1024)
    ensure_tokens(tokenizer, "plain")
    model = compose(LoclipVisionModel(tiny_config().vision_config), tiny_llm(tokenizer, hidden_size=32, layers=1,
                                                                             heads=4), tokenizer)
    model.save_pretrained(tmp_path / "mllm")
    make_processor(model.config, tokenizer, "plain").save_pretrained(tmp_path / "mllm")
    write_split(tmp_path / "world", "val", 3, seed=0, config=SceneConfig(image_size=64, max_objects=2))

    out = tmp_path / "results.json"
    code = main(["--model", str(tmp_path / "mllm"), "--task", "mllm", "--conversations-json",
                 str(tmp_path / "world" / "val" / "conversations.json"), "--max-new-tokens", "4",
                 "--out", str(out), "--no-progress"])
    assert code == 0
    (result,) = json.loads(out.read_text())["results"]
    assert set(result["metrics"]) == {"referring_accuracy", "rec_acc@0.5"}
    assert 0 <= result["metrics"]["referring_accuracy"] <= 1 and result["info"]["num_refer"] > 0


@pytest.mark.parametrize("extra,match", [(["--task", "synthetic"], "cannot be combined"), ([], "conversations")])
def test_mllm_task_bad_arguments(tmp_path: Path, capsys, extra, match) -> None:
    (tmp_path / "config.json").write_text("{}")
    args = ["--model", str(tmp_path), "--task", "mllm", *extra]
    if "synthetic" in extra:
        args += ["--conversations-json", str(tmp_path / "config.json"), "--synth-dir", str(tmp_path)]
    assert main(args) == 2
    assert match in capsys.readouterr().err
