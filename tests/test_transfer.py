"""Transfer learning: a pretrained network's features reused on new classes, frozen or fine-tuned."""

from __future__ import annotations

import lightning as L
import pytest
import torch
from conftest import make_cfg
from omegaconf import OmegaConf

from lightdl import build
from lightdl.errors import ConfigError
from lightdl.train import train

TARGET = ["data.classes=[5,6,7,8,9]", "data.train_per_class=10", "model=transfer"]


@pytest.fixture(scope="module")
def pretrained(tmp_path_factory):
    """An MLP trained on digits 0-4: a run directory laid out as `python -m lightdl` leaves it."""
    tmp = tmp_path_factory.mktemp("source")
    run_dir = tmp / "run"
    cfg = make_cfg(tmp, "data.classes=[0,1,2,3,4]", "model.hidden=[64]", "trainer.max_epochs=3")
    (run_dir / ".hydra").mkdir(parents=True)
    OmegaConf.save(cfg, run_dir / ".hydra" / "config.yaml")
    assert train(cfg, run_dir)["status"] in ("completed", "stopped_early")
    assert (run_dir / "checkpoints" / "best.ckpt").is_file()
    return run_dir


def _fit(tmp_path, *overrides):
    """(net before training, net after) for the composed config, fitted 20 epochs (one step each)."""
    cfg = make_cfg(tmp_path, *overrides, "trainer.max_epochs=20", "optimizer.lr=0.01")
    dm = build.build_datamodule(cfg)
    L.seed_everything(0, verbose=False)
    net = build.build_net(cfg, dm.spec, [])
    before = {k: v.clone() for k, v in net.state_dict().items()}
    task = build.build_task(cfg, net, dm, [])
    trainer = build.build_trainer(cfg, [], [], [], tmp_path)
    trainer.fit(task, datamodule=dm)
    return before, net, trainer


def test_classes_and_few_labels_select_the_data(tmp_path):
    cfg = make_cfg(tmp_path, "data.classes=[5,6,7,8,9]", "data.train_per_class=10")
    dm = build.build_datamodule(cfg)
    assert dm.spec.num_classes == 5
    assert torch.equal(dm.splits["train"][1].bincount(), torch.full((5,), 10))
    assert set(dm.splits["test"][1].tolist()) == set(range(5))


def test_transfer_loads_the_source_weights_and_a_new_head(tmp_path, pretrained):
    cfg = make_cfg(tmp_path, *TARGET, f"model.source={pretrained}")
    net = build.build_net(cfg, build.build_datamodule(cfg).spec, [])
    state = torch.load(pretrained / "checkpoints" / "best.ckpt", weights_only=True)["state_dict"]
    assert torch.equal(net.net[1].weight, state["net.1.weight"])  # the pretrained hidden layer
    assert net.head.out_features == 5 and net.net[-1] is net.head


def test_frozen_backbone_is_bit_identical_after_training(tmp_path, pretrained):
    before, net, trainer = _fit(tmp_path, *TARGET, f"model.source={pretrained}", "model.freeze=all")
    after = net.state_dict()
    changed = [k for k in before if not torch.equal(before[k], after[k])]
    assert changed == ["net.3.weight", "net.3.bias"]  # only the new head moved
    assert float(trainer.callback_metrics["val/acc"]) > 0.5  # pretrained features carry over


def test_fine_tuning_moves_the_backbone(tmp_path, pretrained):
    before, net, _ = _fit(tmp_path, *TARGET, f"model.source={pretrained}", "model.freeze=none")
    assert not torch.equal(before["net.1.weight"], net.state_dict()["net.1.weight"])


def test_bad_sources_and_freeze_values_are_one_sentence(tmp_path, pretrained):
    for overrides, needle in (
        ([f"model.source={tmp_path / 'nowhere'}"], "model.source="),
        (["model.source=null"], "model=transfer needs model.source"),
        ([f"model.source={pretrained}", "model.freeze=7"], "model.freeze must be all, none"),
    ):
        cfg = make_cfg(tmp_path, *TARGET, *overrides)
        with pytest.raises(ConfigError, match=needle):
            build.build_net(cfg, build.build_datamodule(cfg).spec, [])


@pytest.fixture(scope="module")
def pretrained_cnn(tmp_path_factory):
    """A small CNN with batch norm trained one epoch on digits 0-4 (nested: features, classifier)."""
    tmp = tmp_path_factory.mktemp("cnn_source")
    run_dir = tmp / "run"
    cfg = make_cfg(
        tmp,
        "data.classes=[0,1,2,3,4]",
        "model=cnn",
        "model.blocks=[{filters:4,kernel:3},{filters:8,kernel:3}]",
        "model.head=[16]",
        "regularizer=[batchnorm]",
        "trainer.max_epochs=1",
    )
    (run_dir / ".hydra").mkdir(parents=True)
    OmegaConf.save(cfg, run_dir / ".hydra" / "config.yaml")
    assert train(cfg, run_dir)["status"] in ("completed", "stopped_early")
    return run_dir


def test_frozen_cnn_trains_only_its_new_head_inside_the_classifier(tmp_path, pretrained_cnn):
    source = [*TARGET, f"model.source={pretrained_cnn}", "regularizer=[batchnorm]"]
    before, net, _ = _fit(tmp_path, *source, "model.freeze=all")
    changed = {k for k in before if not torch.equal(before[k], net.state_dict()[k])}
    assert changed == {"net.classifier.3.weight", "net.classifier.3.bias"}  # BN stats kept too


def test_freeze_n_counts_layers_with_their_batch_norm(tmp_path, pretrained_cnn):
    source = [*TARGET, f"model.source={pretrained_cnn}", "regularizer=[batchnorm]"]
    before, net, _ = _fit(tmp_path, *source, "model.freeze=1")
    changed = {
        k.rsplit(".", 1)[0] for k in before if not torch.equal(before[k], net.state_dict()[k])
    }
    # block 1 = the first conv and its batch norm; the second conv onwards trains
    assert "net.features.1" not in changed and "net.features.2" not in changed
    assert {"net.features.5", "net.features.6", "net.classifier.0"} <= changed
