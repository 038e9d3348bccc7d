"""Joint image/mask transforms on sample dicts, seeded only through the generator passed in.

A sample is ``{"image": float 3xHxW, "mask": float 1xHxW, ...}`` (the mask is optional, other keys
are passed through). Every transform is called as ``t(sample, gen)`` where `gen` is a
`torch.Generator` or a `numpy.random.Generator`; no global RNG is used. With ``gen=None`` a fresh,
OS-seeded numpy generator is used (not reproducible). Geometric transforms warp image and mask as
one stacked tensor, so both always get exactly the same geometry; masks are interpolated bilinearly
and stay soft, in [0, 1].
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, fields
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from sam2sod.errors import SodError

__all__ = [
    "SAM2_MEAN",
    "SAM2_STD",
    "AugmentConfig",
    "ColorJitter",
    "Compose",
    "Generator",
    "Normalize",
    "RandomHorizontalFlip",
    "RandomRotation",
    "RandomScaleCrop",
    "RandomVerticalFlip",
    "Resize",
    "Transform",
    "build_transform",
    "denormalize",
    "rotate",
]

SAM2_MEAN = (0.485, 0.456, 0.406)
SAM2_STD = (0.229, 0.224, 0.225)
PADDING_MODES = ("zeros", "reflection", "border")

Sample = dict[str, Any]
Generator = torch.Generator | np.random.Generator | None
Transform = Callable[[Sample, Generator], Sample]


def _rand(gen: Generator) -> float:
    """One uniform draw in [0, 1) from `gen`."""
    if gen is None:
        gen = np.random.default_rng()
    if isinstance(gen, np.random.Generator):
        return float(gen.random())
    return float(torch.rand((), generator=gen))


def _uniform(gen: Generator, lo: float, hi: float) -> float:
    return lo + (hi - lo) * _rand(gen)


def _randint(gen: Generator, lo: int, hi: int) -> int:
    """Uniform integer in [lo, hi] (both included)."""
    if hi <= lo:
        return lo
    return lo + min(int(_rand(gen) * (hi - lo + 1)), hi - lo)


def _size2(size: int | Sequence[int]) -> tuple[int, int]:
    if isinstance(size, int):
        return size, size
    h, w = size
    return int(h), int(w)


def _resize(t: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """CxHxW -> Cx(size) bilinear with antialias (convex weights: no overshoot)."""
    if tuple(t.shape[-2:]) == size:
        return t
    return F.interpolate(t[None], size=size, mode="bilinear", align_corners=False, antialias=True)[0]


def _joint(sample: Sample, fn: Callable[[torch.Tensor], torch.Tensor]) -> Sample:
    """Apply `fn` to image and mask stacked as one (C+1)xHxW tensor, so both get the same geometry."""
    out = dict(sample)
    image = sample["image"]
    mask = sample.get("mask")
    if mask is None:
        out["image"] = fn(image)
        return out
    both = fn(torch.cat([image, mask.to(image.dtype)], dim=0))
    out["image"] = both[: image.shape[0]]
    out["mask"] = both[image.shape[0] :].clamp(0.0, 1.0).to(mask.dtype)
    return out


class Compose:
    """Apply transforms in order, all drawing from the same generator."""

    def __init__(self, transforms: Sequence[Transform]) -> None:
        self.transforms = list(transforms)

    def __call__(self, sample: Sample, gen: Generator = None) -> Sample:
        for t in self.transforms:
            sample = t(sample, gen)
        return sample

    def __repr__(self) -> str:
        return "Compose(" + ", ".join(repr(t) for t in self.transforms) + ")"


class Resize:
    """Resize image and mask to `size` (int or (H, W)); bilinear with antialias for both."""

    def __init__(self, size: int | Sequence[int]) -> None:
        self.size = _size2(size)

    def __call__(self, sample: Sample, gen: Generator = None) -> Sample:
        return _joint(sample, lambda t: _resize(t, self.size))

    def __repr__(self) -> str:
        return f"Resize({self.size})"


class RandomHorizontalFlip:
    """Mirror left-right with probability `p` (pixel x -> W-1-x)."""

    def __init__(self, p: float = 0.5) -> None:
        self.p = p

    def __call__(self, sample: Sample, gen: Generator = None) -> Sample:
        if _rand(gen) >= self.p:
            return sample
        return _joint(sample, lambda t: t.flip(-1))

    def __repr__(self) -> str:
        return f"RandomHorizontalFlip(p={self.p})"


class RandomVerticalFlip:
    """Mirror top-bottom with probability `p` (pixel y -> H-1-y)."""

    def __init__(self, p: float = 0.5) -> None:
        self.p = p

    def __call__(self, sample: Sample, gen: Generator = None) -> Sample:
        if _rand(gen) >= self.p:
            return sample
        return _joint(sample, lambda t: t.flip(-2))

    def __repr__(self) -> str:
        return f"RandomVerticalFlip(p={self.p})"


def rotate(t: torch.Tensor, degrees: float, padding: str = "zeros") -> torch.Tensor:
    """Rotate a CxHxW tensor counter-clockwise (as displayed) by `degrees` about the image centre.

    A pixel at offset (dx, dy) from the centre ((W-1)/2, (H-1)/2), y pointing down, moves to
    (cos a*dx + sin a*dy, -sin a*dx + cos a*dy). Bilinear sampling; areas from outside the image
    are filled per `padding` ("zeros", "reflection" or "border", as in `grid_sample`).
    """
    h, w = t.shape[-2:]
    a = math.radians(degrees)
    c, s = math.cos(a), math.sin(a)
    # Output -> input mapping in pixel offsets is [[c, -s], [s, c]]; rescaled to normalised coords.
    theta = torch.tensor([[c, -s * h / w, 0.0], [s * w / h, c, 0.0]], dtype=t.dtype, device=t.device)
    grid = F.affine_grid(theta[None], [1, t.shape[0], h, w], align_corners=False)
    return F.grid_sample(t[None], grid, mode="bilinear", padding_mode=padding, align_corners=False)[0]


class RandomRotation:
    """With probability `p`, rotate by an angle drawn uniformly from `degrees`.

    `degrees` is a max angle d (range [-d, d]) or a (lo, hi) range; positive = counter-clockwise.
    Image and mask use the same `padding` ("zeros": black image, background mask; "reflection":
    mirrored content and mirrored mask, so a mirrored object stays labelled; "border").
    """

    def __init__(self, degrees: float | Sequence[float], p: float = 0.5, padding: str = "zeros") -> None:
        if isinstance(degrees, (int, float)):
            degrees = (-abs(degrees), abs(degrees))
        self.degrees = (float(degrees[0]), float(degrees[1]))
        if padding not in PADDING_MODES:
            raise SodError(f"rotation padding must be one of {', '.join(PADDING_MODES)}, got {padding!r}")
        self.p = p
        self.padding = padding

    def __call__(self, sample: Sample, gen: Generator = None) -> Sample:
        apply = _rand(gen) < self.p
        angle = _uniform(gen, *self.degrees)
        if not apply or angle == 0.0:
            return sample
        return _joint(sample, lambda t: rotate(t, angle, self.padding))

    def __repr__(self) -> str:
        return f"RandomRotation(degrees={self.degrees}, p={self.p}, padding={self.padding!r})"


class RandomScaleCrop:
    """With probability `p`, zoom by a factor drawn from `scale`, then crop or zero-pad back to HxW.

    Zoom in (factor > 1): a random HxW window of the enlarged sample is kept. Zoom out (< 1): the
    shrunk sample is placed at a random offset on a zero canvas (black image, background mask).
    """

    def __init__(self, scale: Sequence[float] = (0.75, 1.25), p: float = 0.5) -> None:
        self.scale = (float(scale[0]), float(scale[1]))
        self.p = p

    def __call__(self, sample: Sample, gen: Generator = None) -> Sample:
        apply = _rand(gen) < self.p
        factor = _uniform(gen, *self.scale)
        u_y, u_x = _rand(gen), _rand(gen)
        if not apply or factor == 1.0:
            return sample

        def warp(t: torch.Tensor) -> torch.Tensor:
            h, w = t.shape[-2:]
            nh, nw = max(1, round(h * factor)), max(1, round(w * factor))
            t = _resize(t, (nh, nw))
            pads = []
            for new, old, u, dim in ((nw, w, u_x, -1), (nh, h, u_y, -2)):
                offset = min(int(u * (abs(new - old) + 1)), abs(new - old))
                if new >= old:
                    t = t.narrow(dim, offset, old)
                    pads += [0, 0]
                else:
                    pads += [offset, old - new - offset]
            return F.pad(t, pads) if any(pads) else t

        return _joint(sample, warp)

    def __repr__(self) -> str:
        return f"RandomScaleCrop(scale={self.scale}, p={self.p})"


def _gray(image: torch.Tensor) -> torch.Tensor:
    """3xHxW RGB -> HxW luma (ITU-R 601)."""
    return 0.299 * image[0] + 0.587 * image[1] + 0.114 * image[2]


class ColorJitter:
    """With probability `p`, scale brightness, contrast and saturation by factors in [1-x, 1+x].

    Image only (expects values in [0, 1], i.e. before `Normalize`; the result is clamped to [0, 1]).
    """

    def __init__(self, brightness: float = 0.2, contrast: float = 0.2, saturation: float = 0.2, p: float = 1.0) -> None:
        self.brightness, self.contrast, self.saturation, self.p = brightness, contrast, saturation, p

    def __call__(self, sample: Sample, gen: Generator = None) -> Sample:
        apply = _rand(gen) < self.p
        b = _uniform(gen, 1 - self.brightness, 1 + self.brightness)
        c = _uniform(gen, 1 - self.contrast, 1 + self.contrast)
        s = _uniform(gen, 1 - self.saturation, 1 + self.saturation)
        if not apply:
            return sample
        image = sample["image"] * b
        mean = _gray(image).mean()
        image = (image - mean) * c + mean
        gray = _gray(image)[None]
        image = ((image - gray) * s + gray).clamp(0.0, 1.0)
        return {**sample, "image": image}

    def __repr__(self) -> str:
        return f"ColorJitter({self.brightness}, {self.contrast}, {self.saturation}, p={self.p})"


class Normalize:
    """image -> (image - mean) / std per channel (SAM2's ImageNet statistics by default); mask untouched."""

    def __init__(self, mean: Sequence[float] = SAM2_MEAN, std: Sequence[float] = SAM2_STD) -> None:
        self.mean = torch.tensor(mean, dtype=torch.float32)[:, None, None]
        self.std = torch.tensor(std, dtype=torch.float32)[:, None, None]

    def __call__(self, sample: Sample, gen: Generator = None) -> Sample:
        image = sample["image"]
        return {**sample, "image": (image - self.mean.to(image)) / self.std.to(image)}

    def __repr__(self) -> str:
        return f"Normalize(mean={self.mean.flatten().tolist()}, std={self.std.flatten().tolist()})"


def denormalize(
    image: torch.Tensor, mean: Sequence[float] = SAM2_MEAN, std: Sequence[float] = SAM2_STD
) -> torch.Tensor:
    """Undo `Normalize` on a 3xHxW or Bx3xHxW tensor (for visualisation)."""
    m = torch.tensor(mean, dtype=image.dtype, device=image.device)[:, None, None]
    s = torch.tensor(std, dtype=image.dtype, device=image.device)[:, None, None]
    return image * s + m


@dataclass
class AugmentConfig:
    """Augmentation settings. Probabilities are in [0, 1]; 0 switches a transform off.

    size: network input (int or (H, W)); hflip/vflip: flip probabilities; rotate_deg/rotate_p: max
    angle and probability; scale/crop_prob: zoom range and probability of `RandomScaleCrop`;
    brightness/contrast/saturation/jitter_p: `ColorJitter`; padding: rotation padding mode;
    normalize: apply SAM2's mean/std.
    """

    size: int | tuple[int, int] = 1024
    hflip: float = 0.5
    vflip: float = 0.0
    rotate_deg: float = 10.0
    rotate_p: float = 0.3
    scale: tuple[float, float] = (0.75, 1.25)
    crop_prob: float = 0.5
    brightness: float = 0.2
    contrast: float = 0.2
    saturation: float = 0.2
    jitter_p: float = 0.8
    padding: str = "zeros"
    normalize: bool = True

    def __post_init__(self) -> None:
        if isinstance(self.size, (list, tuple)):
            if len(self.size) != 2 or not all(isinstance(v, int) and v > 0 for v in self.size):
                raise SodError(f"augment size must be a positive int or [H, W], got {self.size!r}")
            self.size = (int(self.size[0]), int(self.size[1]))
        elif isinstance(self.size, bool) or not isinstance(self.size, int) or self.size <= 0:
            raise SodError(f"augment size must be a positive int or [H, W], got {self.size!r}")
        for name in ("hflip", "vflip", "rotate_p", "crop_prob", "jitter_p"):
            value = getattr(self, name)
            if not isinstance(value, (int, float)) or not 0.0 <= value <= 1.0:
                raise SodError(f"augment {name} is a probability and must be in [0, 1], got {value!r}")
        if not isinstance(self.rotate_deg, (int, float)) or not 0.0 <= self.rotate_deg <= 180.0:
            raise SodError(f"augment rotate_deg must be in [0, 180], got {self.rotate_deg!r}")
        try:
            lo, hi = (float(v) for v in self.scale)
        except (TypeError, ValueError):
            raise SodError(f"augment scale must be [min, max], got {self.scale!r}") from None
        if not 0.0 < lo <= hi:
            raise SodError(f"augment scale must satisfy 0 < min <= max, got {self.scale!r}")
        self.scale = (lo, hi)
        for name in ("brightness", "contrast", "saturation"):
            value = getattr(self, name)
            if not isinstance(value, (int, float)) or not 0.0 <= value <= 1.0:
                raise SodError(f"augment {name} must be in [0, 1], got {value!r}")
        if self.padding not in PADDING_MODES:
            raise SodError(f"augment padding must be one of {', '.join(PADDING_MODES)}, got {self.padding!r}")

    @classmethod
    def from_dict(cls, values: Mapping[str, Any] | None) -> AugmentConfig:
        """Build from a mapping (e.g. a YAML section); unknown keys raise `SodError` listing valid ones."""
        values = dict(values or {})
        valid = [f.name for f in fields(cls)]
        unknown = sorted(set(values) - set(valid))
        if unknown:
            raise SodError(f"unknown augment option(s): {', '.join(unknown)}; valid: {', '.join(valid)}")
        return cls(**values)


def build_transform(cfg: AugmentConfig, train: bool) -> Compose:
    """Train: resize, flips, colour jitter, rotation, scale-crop, normalise (disabled parts left out).

    Eval (`train=False`): resize and normalise only.
    """
    steps: list[Transform] = [Resize(cfg.size)]
    if train:
        if cfg.hflip > 0:
            steps.append(RandomHorizontalFlip(cfg.hflip))
        if cfg.vflip > 0:
            steps.append(RandomVerticalFlip(cfg.vflip))
        if cfg.jitter_p > 0 and (cfg.brightness or cfg.contrast or cfg.saturation):
            steps.append(ColorJitter(cfg.brightness, cfg.contrast, cfg.saturation, cfg.jitter_p))
        if cfg.rotate_p > 0 and cfg.rotate_deg > 0:
            steps.append(RandomRotation(cfg.rotate_deg, cfg.rotate_p, cfg.padding))
        if cfg.crop_prob > 0 and cfg.scale != (1.0, 1.0):
            steps.append(RandomScaleCrop(cfg.scale, cfg.crop_prob))
    if cfg.normalize:
        steps.append(Normalize())
    return Compose(steps)
