"""trainer=gpu and trainer=fast: the GPU check, compile with its eager fall back, bf16 fall back,
channels-last batches for CNNs, and plain checkpoint keys."""

from __future__ import annotations

import json
import logging

import pytest
import torch
from conftest import fit_net, make_cfg, run_cli
from lightning.pytorch.callbacks import ModelCheckpoint

from lightdl import accelerate, build
from lightdl.callbacks.speed import CompiledForward, Speed
from lightdl.errors import ConfigError
from lightdl.validate import validate

TINY = ["trainer.limit_train_batches=2", "trainer.limit_val_batches=1"]


def test_gpu_without_cuda_is_refused_in_one_sentence(tmp_path):
    done = run_cli(
        "trainer=gpu", "data=digits", "test=false", cwd=tmp_path, env={"CUDA_VISIBLE_DEVICES": ""}
    )
    assert done.returncode == 2, done.stderr
    sentence = (
        "trainer=gpu needs a CUDA GPU; none is visible (torch.cuda.is_available() is False); "
        "use trainer=default."
    )
    assert f"lightdl: error: {sentence}" in done.stderr.splitlines()
    (summary,) = (tmp_path / "outputs").rglob("summary.json")
    assert json.loads(summary.read_text())["error"] == sentence


def test_accelerator_gpu_is_checked_by_validate(tmp_path, monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(ConfigError, match=r"^trainer.accelerator=gpu needs a CUDA GPU"):
        validate(make_cfg(tmp_path, "trainer=gpu"))
    validate(make_cfg(tmp_path, "trainer=fast"))  # accelerator auto: runs on what there is
    with pytest.raises(ConfigError, match=r"^trainer.compile must be true or false, got 'yes'\.$"):
        validate(make_cfg(tmp_path, "trainer=fast", "trainer.compile=yes"))


@pytest.mark.parametrize("native_bf16", [False, True])
def test_fast_composes_and_keeps_its_keys_from_lightning(tmp_path, monkeypatch, native_bf16):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(accelerate, "cpu_has_bf16", lambda: native_bf16)
    cfg = make_cfg(tmp_path, "trainer=fast")
    assert (cfg.trainer.compile, cfg.trainer.channels_last) == (True, True)
    assert cfg.trainer.precision == "bf16-mixed" and cfg.trainer.accelerator == "auto"
    trainer = build.build_trainer(cfg, [], [], [], tmp_path)  # Lightning takes no `compile` key
    (speed,) = [c for c in trainer.callbacks if isinstance(c, Speed)]
    assert speed.compile and speed.channels_last
    # emulated bf16 (this AVX2 CPU: 6-8x slower than 32-bit) falls back to 32-true
    assert trainer.precision == ("bf16-mixed" if native_bf16 else "32-true")
    plain = build.build_trainer(make_cfg(tmp_path), [], [], [], tmp_path)
    assert not any(isinstance(c, Speed) for c in plain.callbacks)


@pytest.fixture
def failing_compile(monkeypatch):
    """torch.compile that 'succeeds' lazily and fails at the first call, as inductor does without
    a C++ compiler; returns the list of calls made to the compiled function."""
    calls = []

    def compile(fn, **kwargs):
        def compiled(*args, **kw):
            calls.append(fn)
            raise RuntimeError("InvalidCxxCompiler: No working C++ compiler found\nmore detail")

        return compiled

    monkeypatch.setattr(torch, "compile", compile)
    return calls


def test_compile_failure_warns_once_and_trains_eagerly(tmp_path, failing_compile, caplog):
    fast = ["trainer=fast", "trainer.precision=32-true", *TINY]
    with caplog.at_level(logging.WARNING, logger="lightdl"):
        net, trainer = fit_net(tmp_path / "a", *fast, epochs=2)
    warned = [r.getMessage() for r in caplog.records if "trainer.compile" in r.getMessage()]
    assert warned == [
        "trainer.compile: torch.compile failed (RuntimeError: InvalidCxxCompiler: No working "
        "C++ compiler found); training eagerly."
    ]
    assert len(failing_compile) == 1  # tried once, then eager for good
    speed = next(c for c in trainer.callbacks if type(c).__name__ == "Speed")
    assert speed.warnings == warned  # kept for summary.json's warnings
    assert isinstance(net.forward, CompiledForward) and net.forward.compiled is None
    _, eager = fit_net(tmp_path / "b", *fast, "trainer.compile=false", epochs=2)
    for key in ("train/loss", "val/loss", "val/acc"):
        assert float(trainer.callback_metrics[key]) == float(eager.callback_metrics[key])


def test_model_errors_are_not_mistaken_for_compiler_failures(failing_compile):
    net = torch.nn.Linear(3, 2)
    from lightdl.callbacks.speed import compile_forward

    compile_forward(net)
    with pytest.raises(RuntimeError, match="shapes cannot be multiplied"):
        net(torch.zeros(4, 5))  # wrong width: eager raises too, so the error is the model's
    assert net.forward.compiled is not None  # still compiled for the next, well-formed call


def test_cnn_sees_channels_last_batches_under_fast(tmp_path):
    cfg = make_cfg(tmp_path, "trainer=fast", "trainer.compile=false", "model=cnn", *TINY)
    datamodule = build.build_datamodule(cfg)
    # three channels: with one, NCHW and NHWC are the same layout and the check would prove nothing
    datamodule.splits = {
        k: (x.repeat(1, 3, 1, 1).contiguous(), y) for k, (x, y) in datamodule.splits.items()
    }
    net = build.build_net(cfg, datamodule.spec, [])
    task = build.build_task(cfg, net, datamodule, [])
    seen = []
    net.register_forward_hook(lambda module, args, out: seen.append(args[0]))
    build.build_trainer(cfg, [], [], [], tmp_path).fit(task, datamodule=datamodule)
    assert len(seen) >= 3  # two training batches, one validation batch, the training probe
    for x in seen:
        assert x.is_contiguous(memory_format=torch.channels_last) and not x.is_contiguous()
    conv = net.features[4].weight  # (64, 32, 3, 3)
    assert conv.is_contiguous(memory_format=torch.channels_last) and not conv.is_contiguous()


def test_mlp_is_left_in_its_layout(tmp_path):
    net, _ = fit_net(tmp_path, "trainer=fast", "trainer.compile=false", *TINY, epochs=1)
    assert not net._forward_pre_hooks  # no per-batch copy for a network without 2-D convolutions


def test_checkpoint_under_fast_has_plain_keys_and_loads_uncompiled(tmp_path, monkeypatch):
    real_compile = torch.compile  # dynamo's real tracing, without inductor's slow C++ build
    monkeypatch.setattr(torch, "compile", lambda fn, **kw: real_compile(fn, backend="eager"))
    checkpoint = ModelCheckpoint(dirpath=tmp_path / "ckpt", save_last=True)
    net, trainer = fit_net(
        tmp_path, "trainer=fast", "model=cnn", *TINY, callbacks=[checkpoint], epochs=1
    )
    assert net.forward.compiled is not None  # it really ran compiled
    state = torch.load(tmp_path / "ckpt" / "last.ckpt", weights_only=False)["state_dict"]
    assert not [k for k in state if "_orig_mod" in k]
    cfg = make_cfg(tmp_path, "model=cnn")
    plain = build.build_net(cfg, build.build_datamodule(cfg).spec, [])
    plain.load_state_dict({k.removeprefix("net."): v for k, v in state.items()}, strict=True)
    x = trainer.datamodule.splits["val"][0][:8]
    net.eval()
    plain.eval()
    with torch.no_grad():
        assert torch.allclose(plain(x), net(x), atol=1e-5)


@pytest.mark.slow
def test_real_compile_matches_eager_accuracy_and_eval_reloads_it(tmp_path):
    """inductor on this 2-core CPU: about 25 s of compiling per run."""
    args = ["data=digits", "trainer.max_epochs=3", "trainer.enable_progress_bar=false"]
    runs = {}
    for compile in ("true", "false"):
        out = tmp_path / compile
        done = run_cli(
            *args,
            "trainer=fast",
            f"trainer.compile={compile}",
            f"hydra.run.dir={out}",
            cwd=tmp_path,
        )
        assert done.returncode == 0, done.stderr
        assert "training eagerly" not in done.stdout + done.stderr
        runs[compile] = json.loads((out / "summary.json").read_text())["metrics"]
    assert abs(runs["true"]["val/acc"] - runs["false"]["val/acc"]) <= 0.01
    done = run_cli("mode=eval", f"ckpt_path={tmp_path / 'true'}", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    (evaluated,) = (tmp_path / "outputs").rglob("eval.json")
    test_acc = json.loads(evaluated.read_text())["metrics"]["test/acc"]
    # the run tested with its compiled forward, eval with the eager one: at most a flipped example
    assert test_acc == pytest.approx(runs["true"]["test/acc"], abs=0.01)
