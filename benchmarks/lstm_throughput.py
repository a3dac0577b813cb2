"""Training throughput (tokens/second) of a character-level LSTM language model through lightdl
against a plain PyTorch loop.

What it measures, in one process, on the same data tensors, seed, batch size and thread count:

  (a) lightdl: `data=chars model=lstm` (the fortunes corpus cut to --max-chars characters, windows
      of 100 characters; embedding 32, a 2-layer LSTM of 128 units, a linear head over the
      vocabulary), Adam lr 2e-3, cross-entropy per token, composed from the real conf/ and run
      through `lightdl.train.train` -- Lightning Trainer, LanguageModelTask (per-token loss summed
      on the device, exact perplexity at the epoch end), the default callbacks and the CSV logger
      all on (epoch_overhead.py's clock and runner).
  (b) plain: the same network written out (nn.Embedding -> nn.LSTM -> nn.Linear, same initial
      weights: same seed, same construction order, the same forget-gate bias), trained by
      epoch_overhead.run_plain over the DataModule's own in-memory tensors (torch.optim.Adam,
      batches gathered with index_select in TensorBatches' order, loss summed on the device).
      run_plain's cross-entropy takes class scores in dimension 1, so the plain model returns its
      logits as a (N, vocab, T) view; lightdl flattens them to (N*T, vocab) instead.

Throughput = training tokens (windows x 100) / (epoch time - validation time). The first epoch of
each run is warm-up and is discarded; the median of the rest is reported.

Run from the repository root:

    .venv/bin/python benchmarks/lstm_throughput.py
    .venv/bin/python benchmarks/lstm_throughput.py --epochs 4 --max-chars 500000 --threads 2
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import tempfile
from pathlib import Path

import lightning as L
import torch
from epoch_overhead import run_lightdl, run_plain
from torch import nn

NET = {"embedding": 32, "hidden": 128, "layers": 2}


def compose_cfg(run_dir: Path, epochs: int, batch_size: int, max_chars: int, seed: int):
    """The real conf/ composed with Hydra's compose API for the LSTM language model."""
    from hydra import compose, initialize_config_dir

    from lightdl.paths import conf_dir

    overrides = [
        f"paths.run_dir={run_dir}",
        f"paths.output_dir={run_dir}",
        "data=chars",
        f"data.max_chars={max_chars}",
        "data.seq_len=100",
        f"data.batch_size={batch_size}",
        "model=lstm",
        f"model.embedding.dim={NET['embedding']}",
        f"model.hidden_size={NET['hidden']}",
        f"model.num_layers={NET['layers']}",
        "optimizer=adam",
        "optimizer.lr=0.002",
        f"trainer.max_epochs={epochs}",
        f"seed={seed}",
        "test=false",
    ]
    with initialize_config_dir(config_dir=str(conf_dir()), version_base="1.3"):
        return compose("config", overrides=overrides)


class PlainLSTM(nn.Module):
    """Embedding -> LSTM -> Linear, as lightdl's Recurrent builds it for a language model."""

    def __init__(self, vocab_size: int) -> None:
        super().__init__()
        self.embed = nn.Embedding(vocab_size, NET["embedding"], padding_idx=0)
        self.rnn = nn.LSTM(
            NET["embedding"], NET["hidden"], num_layers=NET["layers"], batch_first=True
        )
        hidden = NET["hidden"]
        with torch.no_grad():  # forget-gate bias 1 (model.forget_bias), as lightdl sets it
            for name, param in self.rnn.named_parameters():
                if name.startswith("bias_ih"):
                    param[hidden : 2 * hidden].fill_(1.0)
                elif name.startswith("bias_hh"):
                    param[hidden : 2 * hidden].fill_(0.0)
        self.head = nn.Linear(hidden, vocab_size)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out, _ = self.rnn(self.embed(x))
        return self.head(out).transpose(1, 2)  # (N, vocab, T): what nn.CrossEntropyLoss expects


def plain_for(spec) -> PlainLSTM:
    return PlainLSTM(spec.vocab_size)


def same_init(cfg, datamodule, seed: int) -> bool:
    """lightdl's network after seed_everything(seed) holds PlainLSTM's weights after manual_seed(seed)."""
    from lightdl import build

    L.seed_everything(seed, verbose=False)
    ours = list(build.build_net(cfg, datamodule.spec, []).parameters())
    torch.manual_seed(seed)
    theirs = list(plain_for(datamodule.spec).parameters())
    return len(ours) == len(theirs) and all(
        a.shape == b.shape and torch.equal(a, b) for a, b in zip(ours, theirs, strict=True)
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--epochs", type=int, default=3, help="epochs per run (first is warm-up)")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument(
        "--max-chars", type=int, default=300_000, help="characters of the fortunes corpus"
    )
    parser.add_argument("--rounds", type=int, default=1, help="alternating (lightdl, plain) rounds")
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--seed", type=int, default=42)
    args = parser.parse_args()
    if args.epochs < 2:
        parser.error("--epochs must be >= 2 (the first epoch is discarded as warm-up)")

    from lightdl import build

    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    settings = (args.epochs, args.batch_size, args.max_chars, args.seed)

    tmp = Path(tempfile.mkdtemp(prefix="lightdl-lstm-throughput-"))
    cfg = compose_cfg(tmp / "probe", *settings)
    datamodule = build.build_datamodule(cfg)
    x_train = datamodule.splits["train"][0]
    tokens = x_train.numel()
    lr = float(cfg.optimizer.lr)
    print(
        f"torch {torch.__version__}, lightning {L.__version__}, "
        f"threads {torch.get_num_threads()}, device {device}"
    )
    print(
        f"{len(x_train)} training windows x {x_train.shape[1]} = {tokens:,} tokens, vocabulary "
        f"{datamodule.spec.vocab_size}, batch {args.batch_size}, lr {lr}, "
        f"same initial weights: {same_init(cfg, datamodule, args.seed)}"
    )

    ours, theirs = [], []
    for r in range(args.rounds):
        run_dir = tmp / f"round{r}"
        times, val, result = run_lightdl(compose_cfg(run_dir, *settings), run_dir)
        ours += [tokens / (t - v) for t, v in zip(times[1:], val[1:], strict=True)]
        print(
            f"round {r + 1} lightdl: {', '.join(f'{t:.2f}' for t in times)} s/epoch  "
            f"val/ppl={result['metrics'].get('val/ppl', float('nan')):.3f}"
        )
        times, val, last = run_plain(
            datamodule, args.epochs, args.batch_size, lr, args.seed, device, make_model=plain_for
        )
        theirs += [tokens / (t - v) for t, v in zip(times[1:], val[1:], strict=True)]
        print(
            f"round {r + 1} plain  : {', '.join(f'{t:.2f}' for t in times)} s/epoch  "
            f"val/loss={last['val/loss']:.4f} (val/ppl={torch.tensor(last['val/loss']).exp():.3f})"
        )

    a, b = statistics.median(ours), statistics.median(theirs)
    print()
    print(f"lightdl : {a:,.0f} tokens/s")
    print(f"plain   : {b:,.0f} tokens/s")
    print(f"ratio   : {a / b:.3f} (lightdl/plain throughput; 1 = no overhead)")
    shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
