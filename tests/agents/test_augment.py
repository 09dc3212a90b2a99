"""Random shift: identity at pad 0, outputs are shifted copies, shared shifts, no mutation."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from goalrl.agents.augment import random_shift, sample_shifts, shift_images


def _images(b: int, h: int, w: int, c: int = 3, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.randint(0, 256, (b, h, w, c), generator=g, dtype=torch.uint8)  # (B, H, W, C)


def _reference(img: np.ndarray, dy: int, dx: int, pad: int) -> np.ndarray:
    """Replicate-pad an (H, W, C) image and crop at (dy, dx): the DrQ definition."""
    padded = np.pad(img, ((pad, pad), (pad, pad), (0, 0)), mode="edge")
    return padded[dy : dy + img.shape[0], dx : dx + img.shape[1]]


@pytest.mark.parametrize("channels_last", [True, False])
def test_pad_zero_is_identity(channels_last: bool) -> None:
    x = _images(5, 16, 16)
    x = x if channels_last else x.permute(0, 3, 1, 2).contiguous()
    out = random_shift(x, pad=0, generator=torch.Generator().manual_seed(0))
    assert torch.equal(out, x)
    assert out.data_ptr() != x.data_ptr()  # a copy, never the input itself


@pytest.mark.parametrize("size", [(16, 16), (32, 24)])
def test_outputs_are_replicate_padded_crops(size: tuple[int, int]) -> None:
    pad = 3
    x = _images(8, *size)
    gen = torch.Generator().manual_seed(1)
    shifts = sample_shifts(8, pad, gen)  # (B, 2)
    assert shifts.min() >= 0 and shifts.max() <= 2 * pad
    out = shift_images(x, shifts, pad)
    assert out.shape == x.shape and out.dtype == torch.uint8
    for i in range(8):
        dy, dx = shifts[i].tolist()
        np.testing.assert_array_equal(out[i].numpy(), _reference(x[i].numpy(), dy, dx, pad))


def test_random_shift_finds_some_valid_offset_per_sample() -> None:
    """Without knowing the offsets: each output equals one of the (2p+1)^2 shifted copies."""
    pad = 2
    x = _images(6, 12, 12)
    out = random_shift(x, pad=pad, generator=torch.Generator().manual_seed(3))
    seen_shift = False
    for i in range(6):
        matches = [
            (dy, dx)
            for dy in range(2 * pad + 1)
            for dx in range(2 * pad + 1)
            if np.array_equal(out[i].numpy(), _reference(x[i].numpy(), dy, dx, pad))
        ]
        assert matches, f"sample {i} is not a shifted copy"
        seen_shift |= (pad, pad) not in matches
    assert seen_shift  # at least one sample actually moved


def test_channels_first_matches_channels_last() -> None:
    x = _images(4, 16, 16)
    shifts = sample_shifts(4, 4, torch.Generator().manual_seed(5))
    a = shift_images(x, shifts, 4, channels_last=True)  # (B, H, W, C)
    b = shift_images(x.permute(0, 3, 1, 2).contiguous(), shifts, 4, channels_last=False)
    assert b.shape == (4, 3, 16, 16)
    assert torch.equal(a.permute(0, 3, 1, 2), b)


def test_shared_shift_keeps_identical_images_identical() -> None:
    x = _images(4, 16, 16)
    shifts = sample_shifts(4, 4, torch.Generator().manual_seed(6))
    assert torch.equal(shift_images(x, shifts, 4), shift_images(x.clone(), shifts, 4))


def test_float_images_and_no_mutation() -> None:
    x = torch.rand(3, 16, 16, 3)
    before = x.clone()
    out = random_shift(x, pad=4, generator=torch.Generator().manual_seed(0))
    assert out.dtype == torch.float32
    assert torch.equal(x, before)


def test_generator_makes_it_reproducible() -> None:
    x = _images(4, 16, 16)
    a = random_shift(x, 4, torch.Generator().manual_seed(9))
    b = random_shift(x, 4, torch.Generator().manual_seed(9))
    assert torch.equal(a, b)
