"""Image grids and PNG files in pure torch + zlib: samples people can look at, with no imaging library.

`grid` tiles a batch of images into one picture; `write_png` writes it as an 8-bit grayscale or RGB
PNG (signature, IHDR, one IDAT, IEND, each chunk with its CRC), through a temporary file renamed
into place so a reader never sees half a file; `read_png` decodes exactly what `write_png` writes
(8-bit, no interlace, filter type 0 on every row), for tests and for building on earlier grids.
"""

from __future__ import annotations

import os
import struct
import tempfile
import zlib
from pathlib import Path

import torch

SIGNATURE = b"\x89PNG\r\n\x1a\n"
COLOR_TYPES = {1: 0, 3: 2}  # channels -> PNG colour type (0 grayscale, 2 RGB)


def grid(
    images: torch.Tensor, nrow: int = 8, padding: int = 2, pad_value: float = 1.0
) -> torch.Tensor:
    """(N, C, H, W) images -> one (C, H', W') image: `nrow` images per row, ceil(N / nrow) rows.

    H' = rows * (H + padding) + padding and W' = min(nrow, N) * (W + padding) + padding; the
    padding and any empty cells in the last row are `pad_value` (white by default, so cells stay
    apart on dark images). Like torchvision's make_grid, which is not available here.
    """
    if images.dim() == 3:  # (N, H, W): one channel
        images = images.unsqueeze(1)
    if images.dim() != 4 or len(images) == 0:
        raise ValueError(
            f"grid needs a non-empty (N, C, H, W) batch, got shape {tuple(images.shape)}"
        )
    if nrow < 1 or padding < 0:
        raise ValueError(f"grid needs nrow >= 1 and padding >= 0, got {nrow} and {padding}")
    n, c, h, w = images.shape
    cols = min(nrow, n)
    rows = -(-n // nrow)
    out = images.new_full(
        (c, rows * (h + padding) + padding, cols * (w + padding) + padding), pad_value
    )
    for i in range(n):
        top = padding + (i // nrow) * (h + padding)
        left = padding + (i % nrow) * (w + padding)
        out[:, top : top + h, left : left + w] = images[i]
    return out


def to_uint8(image: torch.Tensor) -> torch.Tensor:
    """A float image in [0, 1] (clamped) or a uint8 image -> uint8 on the CPU, same shape."""
    image = image.detach().cpu()
    if image.dtype == torch.uint8:
        return image
    return (image.float().clamp(0, 1) * 255).round().to(torch.uint8)


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def encode_png(image: torch.Tensor) -> bytes:
    """The PNG file bytes of a (C, H, W) image, C = 1 (grayscale) or 3 (RGB), float [0, 1] or uint8."""
    if image.dim() == 2:
        image = image.unsqueeze(0)
    if image.dim() != 3 or image.shape[0] not in COLOR_TYPES:
        raise ValueError(
            f"a PNG needs a (C, H, W) image with C = 1 or 3, got shape {tuple(image.shape)}"
        )
    c, h, w = image.shape
    pixels = to_uint8(image).permute(1, 2, 0).reshape(h, w * c)
    # each scanline starts with its filter type byte: 0 (None)
    raw = torch.cat([torch.zeros(h, 1, dtype=torch.uint8), pixels], dim=1).contiguous()
    header = struct.pack(">IIBBBBB", w, h, 8, COLOR_TYPES[c], 0, 0, 0)
    return (
        SIGNATURE
        + _chunk(b"IHDR", header)
        + _chunk(b"IDAT", zlib.compress(raw.numpy().tobytes(), 9))
        + _chunk(b"IEND", b"")
    )


def write_png(path: str | Path, image: torch.Tensor) -> Path:
    """Write `image` (see encode_png) to `path` atomically (temporary file, then rename)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    data = encode_png(image)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as out:
            out.write(data)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def chunks(data: bytes) -> list[tuple[bytes, bytes]]:
    """[(type, payload)] of a PNG file's chunks, after checking the signature and every CRC."""
    if data[:8] != SIGNATURE:
        raise ValueError("not a PNG file: the 8-byte signature is wrong")
    found, pos = [], 8
    while pos < len(data):
        (length,) = struct.unpack(">I", data[pos : pos + 4])
        kind, payload = data[pos + 4 : pos + 8], data[pos + 8 : pos + 8 + length]
        (crc,) = struct.unpack(">I", data[pos + 8 + length : pos + 12 + length])
        if crc != zlib.crc32(kind + payload):
            raise ValueError(f"PNG chunk {kind!r} has a bad CRC")
        found.append((kind, payload))
        pos += 12 + length
    return found


def read_png(path: str | Path) -> torch.Tensor:
    """The (C, H, W) uint8 image of a PNG as write_png writes it (8-bit gray/RGB, filter 0 only)."""
    parts = chunks(Path(path).read_bytes())
    if parts[0][0] != b"IHDR" or parts[-1][0] != b"IEND":
        raise ValueError("PNG must start with IHDR and end with IEND")
    w, h, depth, color, _, _, interlace = struct.unpack(">IIBBBBB", parts[0][1])
    channels = {v: k for k, v in COLOR_TYPES.items()}.get(color)
    if depth != 8 or channels is None or interlace:
        raise ValueError(f"unsupported PNG: bit depth {depth}, colour type {color}")
    raw = zlib.decompress(b"".join(p for k, p in parts if k == b"IDAT"))
    rows = torch.frombuffer(bytearray(raw), dtype=torch.uint8).reshape(h, 1 + w * channels)
    if bool((rows[:, 0] != 0).any()):
        raise ValueError("unsupported PNG: a scanline uses a filter other than 0")
    return rows[:, 1:].reshape(h, w, channels).permute(2, 0, 1).contiguous()
