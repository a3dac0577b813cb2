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
      run_plain below: epoch_overhead.run_plain's loop (torch.optim.Adam over the DataModule's own
      in-memory tensors, batches gathered with index_select in TensorBatches' order, loss summed
      on the device, one .item() per epoch), with the logits flattened to (N*T, vocab) for the
      cross-entropy as lightdl does (run_plain's (N, vocab, T) layout costs about 30% more in the
      loss on the CPU, which would flatter lightdl).

Throughput = training tokens (windows x 100) / (epoch time - validation time). The first epoch of
each run is warm-up and is discarded; the median of the rest is reported, and the best epoch too:
on a machine shared with other jobs, interference only ever slows an epoch down, so the best
epochs of the two are the fairer comparison.

Run from the repository root:

    .venv/bin/python benchmarks/lstm_throughput.py
    .venv/bin/python benchmarks/lstm_throughput.py --rounds 2 --threads 1   # robust on a shared machine
    .venv/bin/python benchmarks/lstm_throughput.py --max-chars 5000 --epochs 2 --json lstm.json

Measured (2-core CPU, --rounds 2 --threads 1, 134,900 training tokens): lightdl 26,513 tokens/s,
plain 26,470 tokens/s (medians), ratio 1.002; both reach the same val/ppl (28.287) after 3 epochs.
With 2 threads and another job on one of the two cores, the LSTM's many small per-step operations
wait on each other and epochs swing between 3 and 30 s: use --threads 1 there.
"""

from __future__ import annotations

import argparse
import math
import shutil
import statistics
import tempfile
import time
from pathlib import Path

import case_result
import lightning as L
import torch
import torch.nn.functional as F
from epoch_overhead import run_lightdl
from torch import nn

NET = {"embedding": 32, "hidden": 128, "layers": 2}


def compose_cfg(
    run_dir: Path, epochs: int, batch_size: int, max_chars: int, seed: int, extra: tuple = ()
):
    """The real conf/ composed with Hydra's compose API for the LSTM language model; `extra` are
    further overrides."""
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
        *extra,
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
        return self.head(out)


def plain_for(spec) -> PlainLSTM:
    return PlainLSTM(spec.vocab_size)


def run_plain(datamodule, epochs: int, batch_size: int, lr: float, seed: int, device):
    """epoch_overhead.run_plain for a language model: (epoch times, validation times, last metrics)."""
    x_train, y_train = (t.to(device) for t in datamodule.splits["train"])
    x_val, y_val = (t.to(device) for t in datamodule.splits["val"])
    torch.manual_seed(seed)
    model = plain_for(datamodule.spec).to(device)
    optimizer = torch.optim.Adam(model.parameters(), lr=lr)
    loss_fn = nn.CrossEntropyLoss()
    n, eval_bs = len(x_train), datamodule.eval_batch_size
    times, val_times, last = [], [], {}
    for epoch in range(epochs):
        start = time.perf_counter()
        model.train()
        generator = torch.Generator().manual_seed(datamodule.split_seed * 100_003 + epoch)
        order = torch.randperm(n, generator=generator).to(device)
        loss_sum = torch.zeros((), device=device)
        for i in range(0, n, batch_size):
            index = order[i : i + batch_size]
            xb, yb = x_train.index_select(0, index), y_train.index_select(0, index)
            logits = model(xb)
            loss = loss_fn(logits.reshape(-1, logits.shape[-1]), yb.reshape(-1))
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            with torch.no_grad():
                loss_sum += loss.detach() * yb.numel()
        val_start = time.perf_counter()
        model.eval()
        with torch.no_grad():
            nll = torch.zeros((), device=device)
            for i in range(0, len(x_val), eval_bs):
                logits = model(x_val[i : i + eval_bs])
                target = y_val[i : i + eval_bs].reshape(-1)
                nll += F.cross_entropy(
                    logits.reshape(-1, logits.shape[-1]), target, reduction="sum"
                )
        last = {
            "train/loss": loss_sum.item() / y_train.numel(),
            "val/ppl": math.exp(nll.item() / y_val.numel()),
        }
        end = time.perf_counter()
        times.append(end - start)
        val_times.append(end - val_start)
    return times, val_times, last


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
        "--max-chars", type=int, default=150_000, help="characters of the fortunes corpus"
    )
    parser.add_argument("--rounds", type=int, default=1, help="alternating (lightdl, plain) rounds")
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--seed", type=int, default=42)
    case_result.add_options(parser)
    args = parser.parse_args()
    if args.epochs < 2:
        parser.error("--epochs must be >= 2 (the first epoch is discarded as warm-up)")

    from lightdl import build

    if args.threads:
        torch.set_num_threads(args.threads)
    device, on_device = case_result.resolve_device(parser, args.device)
    gpu = case_result.GpuPeak(device)
    settings = (args.epochs, args.batch_size, args.max_chars, args.seed, (*on_device, *args.set))

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
    ours_t, ours_v, theirs_t, theirs_v = [], [], [], []
    for r in range(args.rounds):
        run_dir = tmp / f"round{r}"
        gpu.start()
        times, val, result = run_lightdl(compose_cfg(run_dir, *settings), run_dir)
        gpu.stop("lightdl")
        ours_t, ours_v = ours_t + times[1:], ours_v + val[1:]
        ours += [tokens / (t - v) for t, v in zip(times[1:], val[1:], strict=True)]
        print(
            f"round {r + 1} lightdl: {', '.join(f'{t:.2f}' for t in times)} s/epoch  "
            f"val/ppl={result['metrics'].get('val/ppl', float('nan')):.3f}"
        )
        gpu.start()
        times, val, last = run_plain(
            datamodule, args.epochs, args.batch_size, lr, args.seed, device
        )
        gpu.stop("plain")
        theirs_t, theirs_v = theirs_t + times[1:], theirs_v + val[1:]
        theirs += [tokens / (t - v) for t, v in zip(times[1:], val[1:], strict=True)]
        print(
            f"round {r + 1} plain  : {', '.join(f'{t:.2f}' for t in times)} s/epoch  "
            f"val/ppl={last['val/ppl']:.3f}"
        )

    print()
    for label, pick in (("median", statistics.median), ("best", max)):
        a, b = pick(ours), pick(theirs)
        print(f"{label:6}: lightdl {a:,.0f} tokens/s, plain {b:,.0f} tokens/s, ratio {a / b:.3f}")
    print("ratio = lightdl/plain throughput (1 = no overhead; below 1, lightdl is slower)")
    case_result.write(
        args.json,
        case="lstm",
        unit="tokens",
        items=tokens,
        device=device,
        lightdl=(ours_t, ours_v),
        plain=(theirs_t, theirs_v),
        gpu=gpu,
        metrics={
            "lightdl val/ppl": result["metrics"].get("val/ppl"),
            "plain val/ppl": last["val/ppl"],
        },
        settings=vars(args),
    )
    shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
