"""sslmem.train.data: every source, the cache, and every failure a user can hit (all offline)."""

from __future__ import annotations

import socket
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch

from sslmem.errors import SSLMemError
from sslmem.train.data import DATASETS, ImageData, channel_stats, load_dataset


def write_npz(path: Path, compression=zipfile.ZIP_LZMA, **arrays) -> Path:
    """An .npz like ../shared/data's (LZMA members by default), written without numpy's savez."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(path, "w", compression=compression) as zf:
        for key, value in arrays.items():
            with zf.open(f"{key}.npy", "w", force_zip64=True) as f:
                np.lib.format.write_array(f, np.asarray(value), allow_pickle=False)
    return path


def fake_arrays(n=30, size=8, channels=3, k=3, seed=0) -> dict:
    rng = np.random.default_rng(seed)
    return {"images": rng.integers(0, 256, (n, size, size, channels), dtype=np.uint8),
            "labels": np.arange(n, dtype=np.int64) % k,
            "classes": np.array([f"c{i}" for i in range(k)])}


def files(root: Path) -> list[str]:
    """Every file and folder under root, relative, sorted (to spot leftovers)."""
    return sorted(str(p.relative_to(root)) for p in root.rglob("*")) if root.exists() else []


# --- digits (embedded) -----------------------------------------------------------------------


def test_digits_train_test():
    train, test = load_dataset("digits"), load_dataset("digits", "test")
    assert train.images.shape == (len(train), 3, 32, 32) and train.images.dtype == torch.uint8
    assert (len(train), len(test)) == (1437, 360)
    assert train.labels.dtype == torch.int64 and train.num_classes == 10
    assert 0 <= int(train.labels.min()) and int(train.labels.max()) <= 9
    assert train.classes == tuple("0123456789")
    both = torch.cat([train.index, test.index])
    assert sorted(both.tolist()) == list(range(1797))  # disjoint and complete
    # stratified: each class is ~20 % test
    ratio = torch.bincount(test.labels) / torch.bincount(torch.cat([train.labels, test.labels]))
    assert torch.all((ratio - 0.2).abs() < 0.02)
    again = load_dataset("digits")
    assert torch.equal(again.images, train.images) and torch.equal(again.index, train.index)
    assert torch.equal(train.images[:, 0], train.images[:, 2])  # grey served as RGB
    assert all(0 < m < 1 for m in train.mean) and all(0 < s < 1 for s in train.std)


def test_digits_pixels_match_sklearn():
    from sklearn.datasets import load_digits

    data = load_dataset("digits", image_size=8, channels=1)
    raw = load_digits().images[data.index.numpy()]
    assert np.array_equal(data.images[:, 0].numpy(), np.rint(raw * 255 / 16).astype(np.uint8))


def test_channel_stats_exact():
    images = torch.randint(0, 256, (7, 3, 5, 5), dtype=torch.uint8)
    mean, std = channel_stats(images)
    x = images.double().div(255).transpose(0, 1).reshape(3, -1)
    assert np.allclose(mean, x.mean(1).numpy()) and np.allclose(std, x.std(1, correction=0))


# --- the shared root ---------------------------------------------------------------------------


def test_cifar10_mini(shared_data, tmp_runs):
    train = load_dataset("cifar10-mini", data_root=shared_data)
    assert train.images.shape == (2000, 3, 32, 32) and train.images.dtype == torch.uint8
    assert train.classes[0] == "airplane" and train.classes[-1] == "truck"
    assert torch.equal(train.index, torch.arange(2000))  # its own positions
    with np.load(shared_data / "cifar10-mini" / "train.npz") as z:
        assert np.array_equal(train.source_index.numpy(), z["source_index"])
        assert np.array_equal(train.images[5].permute(1, 2, 0).numpy(), z["images"][5])
    assert np.allclose(train.mean, (0.4920, 0.4815, 0.4446), atol=1e-4)  # README values
    assert np.allclose(train.std, (0.2459, 0.2421, 0.2597), atol=1e-4)
    sub = train.subset(np.array([7, 3, 1999]))
    assert sub.index.tolist() == [7, 3, 1999] and sub.mean == train.mean
    assert torch.equal(sub.source_index, train.source_index[[7, 3, 1999]])
    assert torch.equal(sub.subset([2]).images, train.images[1999:2000])
    masked = train.subset(train.labels == 0)
    assert len(masked) == 200 and set(masked.labels.tolist()) == {0}
    assert len(train.to("cpu")) == 2000 and "cifar10-mini" in repr(train)


# --- the .npz cache ----------------------------------------------------------------------------


def test_cache_serves_second_load(tmp_path, tmp_runs, monkeypatch):
    root = tmp_path / "data"
    arrays = fake_arrays()
    write_npz(root / "cifar10" / "train.npz", **arrays)
    first = load_dataset("cifar10", data_root=root)
    caches = list((tmp_runs / "_data" / "cifar10").glob("train-*.npy"))
    assert len(caches) == 1
    assert files(root) == ["cifar10", "cifar10/train.npz"]  # the data root is never written

    read = []
    original = np.lib.npyio.NpzFile.__getitem__
    monkeypatch.setattr(np.lib.npyio.NpzFile, "__getitem__",
                        lambda self, key: read.append(key) or original(self, key))
    second = load_dataset("cifar10", data_root=root)
    assert "images" not in read  # not decompressed again
    assert torch.equal(first.images, second.images)
    assert np.array_equal(second.images.permute(0, 2, 3, 1).numpy(), arrays["images"])

    size = caches[0].stat().st_size
    caches[0].write_bytes(caches[0].read_bytes()[: size // 2])  # truncated cache file
    read.clear()
    with pytest.warns(UserWarning, match="rebuilding damaged cache"):
        third = load_dataset("cifar10", data_root=root)
    assert "images" in read and torch.equal(third.images, first.images)
    assert caches[0].stat().st_size == size


def test_stored_npz_is_not_cached(tmp_path, tmp_runs):
    root = tmp_path / "data"
    write_npz(root / "cifar10" / "test.npz", compression=zipfile.ZIP_STORED, **fake_arrays())
    assert len(load_dataset("cifar10", "test", data_root=root)) == 30
    assert files(tmp_runs) == []  # already plain: nothing to cache


def test_image_size_and_channels(tmp_path, tmp_runs):
    root = tmp_path / "data"
    arrays = fake_arrays(n=4, size=28, channels=1, k=2)
    arrays["images"][0] = 100  # a flat image stays flat when resized
    write_npz(root / "mnist" / "train.npz", **arrays)
    native = load_dataset("mnist", data_root=root)
    assert native.images.shape == (4, 1, 28, 28)
    big = load_dataset("mnist", data_root=root, image_size=32, channels=3)
    assert big.images.shape == (4, 3, 32, 32) and big.images.dtype == torch.uint8
    assert torch.equal(big.images[:, 0], big.images[:, 1]) and torch.all(big.images[0] == 100)
    assert len(set(big.mean)) == 1

    rgb = fake_arrays(n=2, size=4)
    rgb["images"][:] = (255, 0, 0)
    write_npz(root / "cifar10" / "train.npz", **rgb)
    grey = load_dataset("cifar10", data_root=root, channels=1)
    assert grey.images.shape == (2, 1, 4, 4) and torch.all(grey.images == 76)  # 0.299 * 255
    for bad in ({"channels": 2}, {"image_size": 0}):
        with pytest.raises(SSLMemError, match="channels must be|image_size must be"):
            load_dataset("cifar10", data_root=root, **bad)


# --- bad input ---------------------------------------------------------------------------------


def test_unknown_name_and_split():
    with pytest.raises(SSLMemError) as err:
        load_dataset("cifar11")
    assert "cifar11" in str(err.value) and all(name in str(err.value) for name in DATASETS)
    assert "folder:PATH" in str(err.value)
    with pytest.raises(SSLMemError, match="unknown split.*'val'.*test, train"):
        load_dataset("digits", "val")
    with pytest.raises(SSLMemError, match="unlabeled.*not offered"):
        load_dataset("stl10", "unlabeled")


def offline(monkeypatch):
    """Make name resolution fail as on a machine without network."""
    def no_network(*args, **kwargs):
        raise socket.gaierror(-3, "Temporary failure in name resolution")

    monkeypatch.setattr(socket, "getaddrinfo", no_network)


@pytest.mark.parametrize("name,folder", [("cifar10", "cifar10"), ("fashionmnist", "fashion-mnist")])
def test_absent_dataset_offline(tmp_path, tmp_runs, monkeypatch, name, folder):
    offline(monkeypatch)
    root = tmp_path / "data"
    root.mkdir()
    with pytest.raises(SSLMemError) as err:
        load_dataset(name, "test", data_root=root)
    message = str(err.value)
    assert repr(name) in message and str(root / folder / "test.npz") in message
    assert "download failed" in message and "SSLMEM_DATA" in message
    assert err.value.__cause__ is None and err.value.__suppress_context__
    assert files(root) == [] and files(tmp_runs) == []  # nothing left behind


def test_absent_dataset_no_download(tmp_path):
    with pytest.raises(SSLMemError, match=r"'svhn' not found.*svhn/train.npz \(download=False\)"):
        load_dataset("svhn", data_root=tmp_path, download=False)
    with pytest.raises(SSLMemError, match="cifar10-mini.*not downloadable"):
        load_dataset("cifar10-mini", data_root=tmp_path)
    assert files(tmp_path) == []


def test_missing_dataset_messages_fit_the_dataset(tmp_path):
    """A dataset torchvision cannot fetch is not told to download; a file is not a folder."""
    with pytest.raises(SSLMemError) as err:
        load_dataset("cifar10-mini", data_root=tmp_path)
    message = str(err.value)
    assert "not downloadable" in message and "download" not in message.replace(
        "not downloadable", "")
    assert "../shared/data/cifar10-mini" in message and str(tmp_path) in message
    with pytest.raises(SSLMemError) as err:
        load_dataset("svhn", data_root=tmp_path, download=False)
    assert "network" in str(err.value)  # this one can be fetched
    a_file = tmp_path / "data"
    a_file.write_text("not a folder")
    for name in ("cifar10", "cifar10-mini"):
        with pytest.raises(SSLMemError, match=f"data root {a_file}.* is a file, not a folder"):
            load_dataset(name, data_root=a_file)


def test_listing_checks_files_without_reading_them(tmp_path, monkeypatch):
    import sslmem.train.datastore as datastore
    from sslmem.pipeline.chapters import available

    write_npz(tmp_path / "mnist" / "train.npz", **fake_arrays())
    write_npz(tmp_path / "mnist" / "test.npz", **fake_arrays())
    monkeypatch.setattr(datastore, "_read_npz", lambda *a: pytest.fail("read while listing"))
    assert available("mnist", tmp_path) is None and available("digits", tmp_path) is None
    assert "not found" in available("fashionmnist", tmp_path)


def test_read_only_root_is_never_written(tmp_path, tmp_runs, monkeypatch):
    """Like ../shared/data (mode r-x): no download is even tried, also when running as root."""
    offline(monkeypatch)
    root = tmp_path / "data"
    write_npz(root / "cifar100" / "test.npz", **fake_arrays())
    for p in (root / "cifar100", root):
        p.chmod(0o555)
    try:
        with pytest.raises(SSLMemError, match=r"cifar100/train.npz \(the data root .* read-only"):
            load_dataset("cifar100", data_root=root)
        assert files(root) == ["cifar100", "cifar100/test.npz"]
    finally:
        for p in (root, root / "cifar100"):
            p.chmod(0o755)


def test_download_converts_once(tmp_path, tmp_runs, monkeypatch):
    """The torchvision path, with a stand-in for the network: both splits become .npz files."""
    import torchvision.datasets

    calls = []

    class FakeMNIST:
        classes = ["0 - zero", "1 - one"]

        def __init__(self, root, train, download):
            calls.append(train)
            assert download and Path(root).is_dir()
            n = 6 if train else 4
            self.data = torch.full((n, 28, 28), 7, dtype=torch.uint8)
            self.targets = torch.arange(n) % 2

    monkeypatch.setattr(torchvision.datasets, "MNIST", FakeMNIST)
    root = tmp_path / "data"
    data = load_dataset("mnist", "test", data_root=root)
    assert data.images.shape == (4, 1, 28, 28) and data.classes == ("0 - zero", "1 - one")
    assert files(root) == ["mnist", "mnist/test.npz", "mnist/train.npz"]  # _downloads removed
    assert len(load_dataset("mnist", data_root=root)) == 6 and calls == [True, False]


@pytest.mark.parametrize("case", ["garbage", "truncated", "bitflip", "no-labels", "float-images",
                                  "length-mismatch", "bad-labels", "plain-npy"])
def test_corrupt_npz(tmp_path, tmp_runs, case):
    root = tmp_path / "data"
    path = root / "cifar10" / "train.npz"
    arrays = fake_arrays()
    if case == "garbage":
        path.parent.mkdir(parents=True)
        path.write_bytes(b"not a zip at all" * 100)
    elif case == "truncated":
        data = write_npz(path, **arrays).read_bytes()
        path.write_bytes(data[: len(data) // 2])
    elif case == "bitflip":  # damage inside the LZMA stream of images.npy
        data = bytearray(write_npz(path, **fake_arrays(n=300)).read_bytes())
        data[len(data) // 3] ^= 0xFF
        path.write_bytes(bytes(data))
    elif case == "plain-npy":
        path.parent.mkdir(parents=True)
        with open(path, "wb") as f:
            np.save(f, arrays["images"])
    else:
        if case == "no-labels":
            del arrays["labels"]
        elif case == "float-images":
            arrays["images"] = arrays["images"].astype(np.float32)
        elif case == "length-mismatch":
            arrays["labels"] = arrays["labels"][:-1]
        elif case == "bad-labels":
            arrays["labels"][0] = 3  # only 3 classes
        write_npz(path, **arrays)
    before = files(root)
    with pytest.raises(SSLMemError) as err:
        load_dataset("cifar10", data_root=root)
    assert str(path) in str(err.value) and "delete it" in str(err.value)
    assert err.value.__cause__ is None
    if case == "no-labels":
        assert "missing arrays ['labels']" in str(err.value)
    assert files(root) == before and files(tmp_runs) == []


# --- folder: datasets --------------------------------------------------------------------------


def make_tree(root: Path, per_class=5, classes=("cat", "dog")) -> Path:
    from PIL import Image

    rng = np.random.default_rng(0)
    for c, name in enumerate(classes):
        (root / name).mkdir(parents=True)
        for i in range(per_class):
            w, h = 10 + 7 * i, 20 + 3 * c  # different sizes
            pixels = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
            img = Image.fromarray(pixels)
            (img.convert("L") if i == 0 else img).save(root / name / f"{i}.png")
    return root


def test_folder_holdout_and_cache(tmp_path, tmp_runs, monkeypatch):
    tree = make_tree(tmp_path / "tree")
    train = load_dataset(f"folder:{tree}")
    test = load_dataset(f"folder:{tree}", "test")
    assert train.images.shape == (8, 3, 32, 32) and test.images.shape == (2, 3, 32, 32)
    assert train.classes == ("cat", "dog") and sorted(test.labels.tolist()) == [0, 1]
    assert sorted(torch.cat([train.index, test.index]).tolist()) == list(range(10))
    # index = position in the sorted tree: cat/0..4 then dog/0..4
    assert (train.labels == (train.index >= 5).long()).all()
    cached = list((tmp_runs / "_data").glob("folder-*/*.npz"))
    assert sorted(p.name for p in cached) == ["test.npz", "train.npz"]

    import PIL.Image

    def no_decoding(*args, **kwargs):
        raise AssertionError("decoded again")

    with monkeypatch.context() as patch:  # (undo() would also drop $SSLMEM_RUNS)
        patch.setattr(PIL.Image, "open", no_decoding)
        again = load_dataset(f"folder:{tree}")
    assert torch.equal(again.images, train.images) and torch.equal(again.index, train.index)
    assert load_dataset(f"folder:{tree}", image_size=16).images.shape == (8, 3, 16, 16)
    damaged = tmp_runs / "_data" / cached[0].parent.name / "train.npz"
    damaged.write_bytes(damaged.read_bytes()[:500])
    with pytest.warns(UserWarning, match="rebuilding damaged cache"):
        assert torch.equal(load_dataset(f"folder:{tree}").images, train.images)
    (tree / "dog" / "5.png").write_bytes((tree / "dog" / "4.png").read_bytes())
    assert len(load_dataset(f"folder:{tree}")) == 9  # an edited tree is converted again
    assert len(list((tmp_runs / "_data").glob("folder-*"))) == 3  # 32 px, 16 px, edited


def test_folder_train_test_dirs(tmp_path, tmp_runs):
    make_tree(tmp_path / "tree" / "train", per_class=3, classes=("a", "b", "c"))
    make_tree(tmp_path / "tree" / "test", per_class=2, classes=("b", "c"))
    train = load_dataset(f"folder:{tmp_path / 'tree'}", image_size=12)
    test = load_dataset(f"folder:{tmp_path / 'tree'}", "test", image_size=12, channels=1)
    assert len(train) == 9 and train.classes == ("a", "b", "c")
    assert test.images.shape == (4, 1, 12, 12)
    assert test.labels.tolist() == [1, 1, 2, 2]  # labelled by name, not by folder count


def test_folder_errors(tmp_path, tmp_runs):
    with pytest.raises(SSLMemError, match="not a directory"):
        load_dataset(f"folder:{tmp_path / 'nowhere'}")
    with pytest.raises(SSLMemError, match="needs a path"):
        load_dataset("folder:")
    (tmp_path / "empty").mkdir()
    with pytest.raises(SSLMemError, match="class folder"):
        load_dataset(f"folder:{tmp_path / 'empty'}")
    (tmp_path / "empty" / "cat").mkdir()
    with pytest.raises(SSLMemError, match="no valid file"):
        load_dataset(f"folder:{tmp_path / 'empty'}")
    make_tree(tmp_path / "half" / "train")
    with pytest.raises(SSLMemError, match="only train/"):
        load_dataset(f"folder:{tmp_path / 'half'}")
    tree = make_tree(tmp_path / "broken")
    (tree / "cat" / "bad.png").write_bytes(b"this is no image")
    with pytest.raises(SSLMemError, match=r"cannot read image .*bad\.png"):
        load_dataset(f"folder:{tree}")
    assert files(tmp_runs) == []  # no partial conversion left


def test_imagedata_contract():
    data = ImageData("x", "train", torch.zeros(3, 1, 4, 4, dtype=torch.uint8),
                     torch.tensor([0, 1, 1]), ("a", "b"), torch.tensor([10, 11, 12]),
                     (0.0,), (0.0,))
    assert (len(data), data.num_classes, data.channels, data.image_size) == (3, 2, 1, 4)
    assert data.subset(torch.tensor([2, 0])).index.tolist() == [12, 10]
    assert data.source_index is None and data.subset([1]).source_index is None


def test_folder_cache_with_changed_pixels_is_rebuilt(tmp_path, tmp_runs):
    """The converted tree is a stored .npz: its zip CRCs expose pixels changed on disk."""
    tree = make_tree(tmp_path / "tree")
    first = load_dataset(f"folder:{tree}")
    (cache,) = (tmp_runs / "_data").glob("folder-*/train.npz")
    data = bytearray(cache.read_bytes())
    start = data.index(b"images.npy") + 200  # inside the pixels of the images member
    data[start:start + 64] = bytes(64)
    cache.write_bytes(bytes(data))
    with pytest.warns(UserWarning, match="rebuilding damaged cache"):
        again = load_dataset(f"folder:{tree}")
    assert torch.equal(again.images, first.images)


def test_unreadable_cache_stops_and_is_kept(tmp_path, tmp_runs, monkeypatch):
    root = tmp_path / "data"
    write_npz(root / "cifar10" / "train.npz", **fake_arrays())
    load_dataset("cifar10", data_root=root)
    (cache,) = (tmp_runs / "_data" / "cifar10").glob("train-*.npy")
    before = files(tmp_runs)
    real = np.load

    def denied(path, *args, **kwargs):
        if str(path) == str(cache):
            raise PermissionError(13, "Permission denied", str(path))
        return real(path, *args, **kwargs)

    monkeypatch.setattr(np, "load", denied)
    with pytest.raises(SSLMemError, match="cannot read .*train-.*npy.*Permission denied"):
        load_dataset("cifar10", data_root=root)
    assert files(tmp_runs) == before


def test_cache_that_cannot_be_written_costs_a_warning_not_the_load(tmp_path, tmp_runs,
                                                                   monkeypatch):
    root = tmp_path / "data"
    arrays = fake_arrays()
    write_npz(root / "cifar10" / "train.npz", **arrays)

    def full(*args, **kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(np, "save", full)
    with pytest.warns(UserWarning, match="cannot write .*No space.*decompressed on every load"):
        data = load_dataset("cifar10", data_root=root)
    assert np.array_equal(data.images.permute(0, 2, 3, 1).numpy(), arrays["images"])
    assert not [f for f in files(tmp_runs) if f.endswith((".npy", ".tmp", ".sha256"))]
