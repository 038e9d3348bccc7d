"""SODDataset samples, size checks, and per-sample seeding (sam2sod.data.dataset)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from torch.utils.data import DataLoader

from sam2sod.data import AugmentConfig, Pair, SODDataset, build_transform, check_pairs, find_pairs
from sam2sod.errors import SodError


def write_pair(root: Path, name: str, img_hw: tuple[int, int], mask_hw: tuple[int, int] | None = None) -> Pair:
    rng = np.random.default_rng(abs(hash(name)) % 1000)
    (root / "images").mkdir(parents=True, exist_ok=True)
    (root / "masks").mkdir(parents=True, exist_ok=True)
    image = rng.integers(0, 256, (*img_hw, 3), dtype=np.uint8)
    mh, mw = mask_hw or img_hw
    mask = np.zeros((mh, mw), np.uint8)
    mask[mh // 4 : mh // 2, mw // 4 : mw // 2] = 255
    mask[0, 0] = 100  # a soft value
    Image.fromarray(image).save(root / "images" / f"{name}.png")
    Image.fromarray(mask).save(root / "masks" / f"{name}.png")
    return Pair(name, root / "images" / f"{name}.png", root / "masks" / f"{name}.png")


def test_sample_without_transform(tmp_path: Path) -> None:
    pair = write_pair(tmp_path, "a", (12, 20))
    ds = SODDataset(find_pairs(tmp_path))
    assert len(ds) == 1 and ds.names == ["a"]
    s = ds[0]
    assert s["name"] == "a" and s["orig_size"] == (12, 20)
    assert s["image"].dtype == torch.float32 and s["image"].shape == (3, 12, 20)
    assert s["mask"].dtype == torch.float32 and s["mask"].shape == (1, 12, 20)
    raw = np.array(Image.open(pair.image))
    torch.testing.assert_close(s["image"], torch.from_numpy(raw).permute(2, 0, 1).float() / 255)
    assert 0 <= s["image"].min() and s["image"].max() <= 1
    assert s["mask"][0, 0, 0].item() == pytest.approx(100 / 255)  # soft values kept
    np.testing.assert_allclose(s["mask"].unique().numpy(), [0.0, 100 / 255, 1.0], rtol=1e-6)


def test_size_mismatch_raises_naming_files(tmp_path: Path) -> None:
    pair = write_pair(tmp_path, "a", (12, 20), (10, 20))
    with pytest.raises(SodError) as err:
        SODDataset([pair])[0]
    msg = str(err.value)
    assert str(pair.image) in msg and str(pair.mask) in msg and "10x20" in msg and "12x20" in msg


def test_size_mismatch_resize_mask(tmp_path: Path) -> None:
    pair = write_pair(tmp_path, "a", (12, 20), (6, 10))
    s = SODDataset([pair], resize_mask=True)[0]
    assert s["mask"].shape == (1, 12, 20)
    assert s["mask"].min() >= 0 and s["mask"].max() <= 1
    soft = ((s["mask"] > 0) & (s["mask"] < 1)).sum()
    assert soft > 0  # bilinear keeps soft values, no binarisation
    assert check_pairs([pair], resize_mask=True) == ["a"]


def test_check_pairs_collects_all_mismatches(tmp_path: Path) -> None:
    pairs = [write_pair(tmp_path, f"m{i}", (8, 8), (8, 9)) for i in range(7)]
    pairs.append(write_pair(tmp_path, "ok", (8, 8)))
    with pytest.raises(SodError) as err:
        check_pairs(pairs)
    msg = str(err.value)
    assert msg.startswith("7 of 8 masks")
    assert "and 2 more" in msg and "m0" in msg and str(pairs[0].mask) in msg and "8x9" in msg
    assert "ok" not in msg.replace("look", "")
    assert check_pairs(pairs, resize_mask=True) == [f"m{i}" for i in range(7)]
    assert check_pairs(pairs[-1:]) == []
    with pytest.raises(SodError, match="empty"):
        check_pairs([])


def test_check_pairs_reads_headers_only_but_names_unreadable_files(tmp_path: Path) -> None:
    big = np.random.default_rng(0).integers(0, 256, (64, 64, 3), dtype=np.uint8)
    pair = write_pair(tmp_path, "t", (64, 64))
    Image.fromarray(big).save(pair.image)
    data = pair.image.read_bytes()
    pair.image.write_bytes(data[: len(data) // 2])  # header intact, pixel data truncated
    assert check_pairs([pair]) == []  # header-only: not decoded
    with pytest.raises(SodError, match="cannot read image"):
        SODDataset([pair])[0]
    pair.mask.write_text("garbage")
    with pytest.raises(SodError, match="cannot read mask") as err:
        check_pairs([pair])
    assert str(pair.mask) in str(err.value)


def test_check_pairs_respects_exif_orientation(tmp_path: Path) -> None:
    (tmp_path / "images").mkdir()
    (tmp_path / "masks").mkdir()
    exif = Image.Exif()
    exif[0x0112] = 6
    Image.new("RGB", (30, 10)).save(tmp_path / "images" / "r.jpg", exif=exif.tobytes())
    Image.new("L", (10, 30)).save(tmp_path / "masks" / "r.png")  # mask drawn on the displayed image
    pairs = find_pairs(tmp_path)
    assert check_pairs(pairs) == []
    assert SODDataset(pairs)[0]["image"].shape == (3, 30, 10)


def make_ds(tmp_path: Path, seed: int = 0) -> SODDataset:
    for i in range(6):
        write_pair(tmp_path, f"s{i}", (24, 24))
    cfg = AugmentConfig(size=16, rotate_p=1.0, rotate_deg=45, crop_prob=1.0, vflip=0.5)
    return SODDataset(find_pairs(tmp_path), build_transform(cfg, train=True), seed=seed)


def test_seeding_reproducible_per_seed_epoch_index(tmp_path: Path) -> None:
    ds = make_ds(tmp_path, seed=3)
    first = [ds[i]["mask"] for i in range(6)]
    assert all(torch.equal(ds[i]["mask"], first[i]) for i in reversed(range(6)))  # order-independent
    assert torch.equal(make_ds(tmp_path, seed=3)[2]["image"], ds[2]["image"])
    assert not torch.equal(make_ds(tmp_path, seed=4)[2]["image"], ds[2]["image"])
    ds.set_epoch(1)
    assert not torch.equal(ds[2]["image"], make_ds(tmp_path, seed=3)[2]["image"])
    ds.set_epoch(0)
    assert torch.equal(ds[2]["mask"], first[2])
    with pytest.raises(ValueError):
        ds.set_epoch(-1)
    with pytest.raises(SodError):
        SODDataset([], seed=-1)


def test_transform_gets_a_torch_generator(tmp_path: Path) -> None:
    write_pair(tmp_path, "a", (8, 8))
    seen = []

    def spy(sample: dict, gen: object) -> dict:
        seen.append(gen)
        return sample

    SODDataset(find_pairs(tmp_path), spy)[0]
    assert isinstance(seen[0], torch.Generator)


def test_independent_of_worker_count(tmp_path: Path) -> None:
    ds = make_ds(tmp_path, seed=1)
    ds.set_epoch(2)

    def masks(workers: int) -> torch.Tensor:
        loader = DataLoader(ds, batch_size=2, num_workers=workers, shuffle=False)
        return torch.cat([b["mask"] for b in loader])

    torch.testing.assert_close(masks(0), masks(2), atol=0, rtol=0)
