"""DrQ-style random shift of image batches: pad by ``pad`` pixels and crop back at a random offset.

Padding replicates the border (as in DrQ), built from ``cat`` of the edge rows/columns so it
works on uint8 images: ``F.pad(mode="replicate")`` refuses them, and torchvision's
``pad(..., padding_mode="edge")`` gives the same pixels but casts to float and back (8x slower
on a batch of 256 64x64 images); torchvision has no per-sample crop, which the shift needs.
The shift is split in two steps so that several image batches can share one shift per sample
(the agents shift observation, next observation and goal identically):

    shifts = sample_shifts(batch, pad, generator)     # (B, 2) ints in [0, 2 * pad]
    out = shift_images(images, shifts, pad)           # same shape and dtype as ``images``

``random_shift`` does both for a single batch.
"""

from __future__ import annotations

import torch
from einops import rearrange


def _is_channels_last(images: torch.Tensor, channels_last: bool | None) -> bool:
    """Layout of a (B, H, W, C) or (B, C, H, W) batch; guessed from the channel count if None."""
    if channels_last is not None:
        return channels_last
    if images.ndim != 4:
        raise ValueError(f"expected a 4-d image batch, got shape {tuple(images.shape)}")
    # Camera images have 1, 3 or 4 channels; a side of <= 4 pixels is not an image we train on.
    return images.shape[-1] <= 4 or images.shape[1] > 4


def sample_shifts(
    batch_size: int,
    pad: int,
    generator: torch.Generator | None = None,
    device: torch.device | str | None = None,
) -> torch.Tensor:
    """Random crop offsets, (B, 2) int64 (dy, dx) in [0, 2 * pad]; pad + 0 means no shift."""
    # Draw on the generator's device (torch requires it), then move.
    gen_device = generator.device if generator is not None else device
    shifts = torch.randint(0, 2 * pad + 1, (batch_size, 2), generator=generator, device=gen_device)
    return shifts if device is None else shifts.to(device)


def _replicate_pad(images: torch.Tensor, pad: int, h_dim: int) -> torch.Tensor:
    """Replicate-pad dims h_dim and h_dim + 1 by ``pad``; works for uint8 (F.pad does not)."""
    w_dim = h_dim + 1
    for dim in (h_dim, w_dim):
        size = images.shape[dim]
        first = images.narrow(dim, 0, 1)
        last = images.narrow(dim, size - 1, 1)
        shape = list(images.shape)
        shape[dim] = pad
        parts = [first.expand(shape), images, last.expand(shape)]
        images = torch.cat(parts, dim=dim)
    return images


def shift_images(
    images: torch.Tensor, shifts: torch.Tensor, pad: int, *, channels_last: bool | None = None
) -> torch.Tensor:
    """Crop ``images`` replicate-padded by ``pad`` at offsets ``shifts`` (B, 2); new tensor.

    Output pixel (y, x) of sample b is input pixel (y + dy - pad, x + dx - pad) clamped to the
    image, i.e. the image content moves by (pad - dy, pad - dx) pixels. Implementation: pad once,
    view every possible crop with ``unfold`` (no copy), then one gather of B whole crops; several
    times faster than a per-pixel gather on uint8.
    """
    if pad == 0:
        return images.clone()
    last = _is_channels_last(images, channels_last)
    b = images.shape[0]
    h, w = (images.shape[1], images.shape[2]) if last else (images.shape[2], images.shape[3])
    padded = _replicate_pad(images, pad, 1 if last else 2)
    # Windows over all offsets: unfold appends (H, W) and leaves dy, dx where H, W were.
    hd = 1 if last else 2
    windows = padded.unfold(hd, h, 1).unfold(hd + 1, w, 1)
    if last:
        windows = rearrange(windows, "b dy dx c h w -> b dy dx h w c")
    else:
        windows = rearrange(windows, "b c dy dx h w -> b dy dx c h w")
    shifts = shifts.to(images.device)
    idx = torch.arange(b, device=images.device)
    return windows[idx, shifts[:, 0], shifts[:, 1]]  # (B, H, W, C) or (B, C, H, W), contiguous


def random_shift(
    images: torch.Tensor,
    pad: int = 4,
    generator: torch.Generator | None = None,
    *,
    channels_last: bool | None = None,
) -> torch.Tensor:
    """DrQ random shift of a (B, H, W, C) or (B, C, H, W) batch of any dtype; pad=0 is identity."""
    shifts = sample_shifts(images.shape[0], pad, generator, device=images.device)  # (B, 2)
    return shift_images(images, shifts, pad, channels_last=channels_last)
