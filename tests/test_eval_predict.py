"""mode=eval and mode=predict re-use a finished run from its own config and checkpoint; ckpt_path=last
resumes a run in place."""

from __future__ import annotations

import csv
import hashlib
import json
import shutil
import sys

import numpy as np
import pytest
import torch
from omegaconf import OmegaConf

TINY = ["data=digits", "trainer.enable_progress_bar=false"]


def lightdl(*args: str) -> int:
    """`python -m lightdl ARGS` in this process (torch is imported once); returns the exit code."""
    from hydra.core.global_hydra import GlobalHydra

    from lightdl import sweep_table
    from lightdl.app import run_cli

    argv, sys.argv = sys.argv, ["lightdl", *args]
    sweep_table.exit_code = 0
    try:
        return run_cli()
    except SystemExit as exc:
        return exc.code
    finally:
        sys.argv = argv
        GlobalHydra.instance().clear()


@pytest.fixture(scope="module")
def source(tmp_path_factory):
    """A 2-epoch digits run whose best.ckpt (by a deliberately inverted monitor: the HIGHEST
    val/loss, so epoch 0) differs from last.ckpt: eval must pick what training tested."""
    run = tmp_path_factory.mktemp("source") / "run"
    code = lightdl(*TINY, "trainer.max_epochs=2", "monitor_mode=max", f"hydra.run.dir={run}")
    assert code == 0
    return run


def _hashes(run) -> dict[str, str]:
    return {
        str(p.relative_to(run)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(run.rglob("*"))
        if p.is_file()
    }


def _probabilities(run, raw: torch.Tensor) -> torch.Tensor:
    """The run's net applied directly: raw digits standardized with statistics computed here from
    the raw training split, then softmax of the best checkpoint's scores."""
    from lightdl import build
    from lightdl.models.transfer import load_run_net

    saved = OmegaConf.load(run / ".hydra" / "config.yaml")
    data = build.make(saved, "data", preprocess=None)
    data.setup()
    train_x = data.splits["train"][0]
    mean, std = train_x.mean(0, keepdim=True), train_x.std(0, keepdim=True)
    std = torch.where(std < 1e-6, torch.ones_like(std), std)
    net = load_run_net(str(run), data.spec, key="ckpt_path").eval()
    with torch.no_grad():
        return net((raw - mean) / std).softmax(-1)


def _raw_test_images(run, n: int) -> torch.Tensor:
    from lightdl import build

    saved = OmegaConf.load(run / ".hydra" / "config.yaml")
    data = build.make(saved, "data", preprocess=None)
    data.setup()
    return data.splits["test"][0][:n]


def _rows(path) -> list[dict[str, str]]:
    with path.open() as file:
        return list(csv.DictReader(file))


def test_eval_reproduces_the_runs_test_acc_exactly_in_a_new_dir(source, tmp_path):
    best = torch.load(source / "checkpoints" / "best.ckpt", weights_only=True)
    summary = json.loads((source / "summary.json").read_text())
    assert (best["epoch"], summary["epochs"]) == (0, 2)  # tested: not the final weights
    before = _hashes(source)
    out = tmp_path / "eval"
    code = lightdl("mode=eval", f"ckpt_path={source}", f"hydra.run.dir={out}", *TINY[1:])
    assert code == 0
    result = json.loads((out / "eval.json").read_text())
    assert result["metrics"]["test/acc"] == summary["metrics"]["test/acc"]  # exactly
    assert result["source_checkpoint"] == str((source / "checkpoints" / "best.ckpt").resolve())
    assert _hashes(source) == before  # the source run is read, never written


def test_eval_overrides_apply_on_top_of_the_saved_config(source, tmp_path):
    out = tmp_path / "eval"
    args = ["++data.eval_batch_size=60", "trainer.limit_test_batches=1", "data=digits"]
    code = lightdl(
        "mode=eval",
        f"ckpt_path={source / 'checkpoints' / 'last.ckpt'}",
        *args,
        f"hydra.run.dir={out}",
    )
    assert code == 0
    result = json.loads((out / "eval.json").read_text())
    acc = result["metrics"]["test/acc"]
    assert abs(acc * 60 - round(acc * 60)) < 1e-4  # one batch of 60 examples, not 360
    assert result["overrides"] == args[:2]  # data=digits is the run's own choice: nothing to apply
    assert result["source_checkpoint"].endswith("last.ckpt")


def test_predict_npy_matches_the_nets_own_argmax(source, tmp_path):
    raw = _raw_test_images(source, 5)
    np.save(tmp_path / "x.npy", raw.numpy())
    out = tmp_path / "predict"
    code = lightdl(
        "mode=predict",
        f"ckpt_path={source}",
        f"predict.inputs={tmp_path / 'x.npy'}",
        f"hydra.run.dir={out}",
    )
    assert code == 0
    rows = _rows(out / "predictions.csv")
    expected = _probabilities(source, raw)
    assert [r["input"] for r in rows] == ["0", "1", "2", "3", "4"]
    assert [int(r["class"]) for r in rows] == expected.argmax(-1).tolist()
    written = torch.tensor([[float(r[f"prob_{c}"]) for c in range(10)] for r in rows])
    assert torch.allclose(written, expected, atol=1e-5)


def test_predict_reads_an_image_folder_as_the_runs_inputs(source, tmp_path):
    from PIL import Image

    raw = _raw_test_images(source, 2)
    folder = tmp_path / "images"
    folder.mkdir()
    pixels = (raw[:, 0] * 255).round().to(torch.uint8).numpy()
    Image.fromarray(pixels[0], mode="L").save(folder / "a.png")
    big = Image.fromarray(pixels[1], mode="L").resize((32, 32), Image.NEAREST).convert("RGB")
    big.save(folder / "b.png")  # colour and 4x larger: converted to 1x8x8
    out = tmp_path / "predict"
    code = lightdl(
        "mode=predict", f"ckpt_path={source}", f"predict.inputs={folder}", f"hydra.run.dir={out}"
    )
    assert code == 0
    rows = _rows(out / "predictions.csv")
    assert [r["input"] for r in rows] == ["a.png", "b.png"]
    expected = _probabilities(source, torch.as_tensor(pixels[:, None] / 255.0, dtype=torch.float32))
    written = torch.tensor([[float(r[f"prob_{c}"]) for c in range(10)] for r in rows])
    assert torch.allclose(written, expected, atol=1e-4)  # pixels / 255, same preprocessing


def test_bad_checkpoint_and_inputs_are_one_sentence_and_exit_2(source, tmp_path, capsys):
    np.save(tmp_path / "flat.npy", np.zeros((3, 64), dtype=np.float32))
    cases = [
        (["mode=eval", f"ckpt_path={tmp_path / 'nowhere'}"], "ckpt_path="),
        (
            ["mode=predict", f"ckpt_path={source}", f"predict.inputs={tmp_path / 'flat.npy'}"],
            "expected an array of shape (N, 1, 8, 8)",
        ),
        (["mode=predict", f"ckpt_path={source}"], "mode=predict needs predict.inputs"),
    ]
    for args, needle in cases:
        capsys.readouterr()
        assert lightdl(*args, f"hydra.run.dir={tmp_path / 'out'}") == 2
        errors = [line for line in capsys.readouterr().err.splitlines() if "error" in line]
        assert len(errors) == 1 and needle in errors[0], errors


def test_ckpt_path_last_resumes_the_run_in_place(source, tmp_path, capsys):
    """The source run's last.ckpt holds its final epoch (1); resuming trains only epoch 2."""
    run = tmp_path / "run"
    shutil.copytree(source, run)
    assert torch.load(run / "checkpoints" / "last.ckpt", weights_only=False)["epoch"] == 1
    rows = _rows(run / "metrics.csv")
    marked = next(r for r in rows if r["epoch"] == "0" and r["train/loss"])
    marked["train/loss"] = "999"  # survives only if epoch 0 is not trained again
    with (run / "metrics.csv").open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    args = [*TINY, "monitor_mode=max", "ckpt_path=last", f"hydra.run.dir={run}"]
    assert lightdl(*args, "trainer.max_epochs=3") == 0
    summary = json.loads((run / "summary.json").read_text())
    assert summary["epochs"] == 3 and summary["global_steps"] == 3 * 20
    train_rows = [r for r in _rows(run / "metrics.csv") if r["train/loss"]]
    assert [int(r["epoch"]) for r in train_rows] == [0, 1, 2]
    assert train_rows[0]["train/loss"] == "999"  # epochs 0 and 1 were not re-run
    capsys.readouterr()
    assert lightdl(*TINY, "ckpt_path=last", f"hydra.run.dir={tmp_path / 'new'}") == 2
    assert "has no checkpoints/last.ckpt" in capsys.readouterr().err
