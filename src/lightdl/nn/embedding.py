"""Token embeddings: a lookup table, optionally started from saved word vectors (skip-gram)."""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from lightdl.data.spec import DataSpec
from lightdl.errors import ConfigError


def load_vectors(path: str | Path) -> tuple[list[str], torch.Tensor]:
    """(tokens, vectors) from a file written by `save_vectors` (model=skipgram writes one).

    Read with torch.load(weights_only=True): tensors and plain containers, no pickled code. A
    missing, unreadable, empty, truncated or foreign file is refused in one sentence naming it.
    """
    from lightdl.data.files import DataFileError, check_file

    what = "model.embedding.init:"
    path = check_file(path, what)
    if path.stat().st_size == 0:
        raise DataFileError(f"{what} {path} is empty.")
    try:
        saved = torch.load(path, map_location="cpu", weights_only=True)
    except PermissionError:
        raise DataFileError(f"{what} {path} is unreadable: permission denied.") from None
    except Exception as exc:  # noqa: BLE001 - any unreadable file gets the same sentence
        reason = (str(exc).splitlines() or [""])[0].split(". ")[0].rstrip(".")
        if "central directory" in reason or isinstance(exc, EOFError):
            problem = f"truncated or corrupt ({reason})"
        else:  # KeyError 101 for a text file, a refused global for a pickle with code
            problem = f"in the wrong format ({type(exc).__name__}: {reason or 'unreadable'})"
        raise DataFileError(
            f"{what} {path} is not a vector file saved by lightdl: it is {problem}."
        ) from None
    tokens = saved.get("itos") if isinstance(saved, dict) else None
    vectors = saved.get("vectors") if isinstance(saved, dict) else None
    if not isinstance(tokens, list | tuple) or not isinstance(vectors, torch.Tensor):
        raise DataFileError(
            f"{what} {path} is not a vector file saved by lightdl (wrong format: it needs "
            "'itos', a list of tokens, and 'vectors', a tensor)."
        )
    tokens = [str(t) for t in tokens]
    if vectors.dim() != 2 or len(tokens) != len(vectors):
        raise DataFileError(
            f"{what} {path} holds {len(tokens)} tokens but vectors of shape {tuple(vectors.shape)}."
        )
    if not vectors.is_floating_point():
        raise DataFileError(f"{what} {path} holds {vectors.dtype} vectors, not floating point.")
    return tokens, vectors


def save_vectors(path: str | Path, tokens: list[str], vectors: torch.Tensor) -> None:
    torch.save({"itos": list(tokens), "vectors": vectors.detach().cpu()}, Path(path))


EMBEDDING_KEYS = ("dim", "init", "freeze")


def make_embedding(spec: DataSpec, settings: dict | None) -> TokenEmbedding:
    """TokenEmbedding from a model's `embedding` settings, unknown keys refused in one sentence."""
    settings = dict(settings or {})
    unknown = sorted(set(settings) - set(EMBEDDING_KEYS))
    if unknown:
        raise ConfigError(
            f"model.embedding has no key {', '.join(unknown)}; valid keys: {', '.join(EMBEDDING_KEYS)}."
        )
    return TokenEmbedding(spec, **settings)


class TokenEmbedding(nn.Embedding):
    """nn.Embedding over the data's vocabulary (row spec.pad_id stays zero).

    init: a vector file (see `save_vectors`); each vocabulary token found in it starts from its
    saved vector, the others keep their random start. `found` counts the tokens matched.
    freeze: keep the table fixed during training (requires_grad off).
    """

    def __init__(
        self, spec: DataSpec, dim: int = 64, init: str | None = None, freeze: bool = False
    ) -> None:
        if spec.vocab_size is None:
            raise ConfigError(f"an embedding needs token data, but this data is '{spec.kind}'.")
        if not isinstance(dim, int) or dim < 1:
            raise ConfigError(f"model.embedding.dim must be an integer >= 1, got {dim!r}.")
        super().__init__(spec.vocab_size, dim, padding_idx=spec.pad_id)
        self.found = 0
        if init is not None:
            self._load(spec, init)
        self.weight.requires_grad_(not freeze)

    def _load(self, spec: DataSpec, path: str) -> None:
        tokens, vectors = load_vectors(path)
        if vectors.shape[1] != self.embedding_dim:
            raise ConfigError(
                f"model.embedding.init: {path} holds {vectors.shape[1]}-dimensional vectors but "
                f"model.embedding.dim={self.embedding_dim}."
            )
        index = {t: i for i, t in enumerate(tokens)}
        rows = [
            (i, index[t]) for i, t in enumerate(spec.vocab or ()) if t in index and i != spec.pad_id
        ]
        if not rows:
            raise ConfigError(
                f"model.embedding.init: no token of this data's vocabulary is in {path}."
            )
        ours, theirs = (torch.tensor(r) for r in zip(*rows, strict=True))
        with torch.no_grad():
            self.weight[ours] = vectors[theirs].to(self.weight.dtype)
        self.found = len(rows)
