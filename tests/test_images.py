"""Image data: the offline data sets, MNIST and CIFAR-10 parsers on tiny fake files served
through ``file://`` URLs, and the augmentations."""

import gzip
import hashlib
import io
import pickle
import struct
import tarfile

import numpy as np
import pytest
import torch

from vislearn.images import (
    CIFAR10_ARCHIVE,
    MNIST_MD5,
    download_file,
    load_cifar10,
    load_digits,
    load_mnist,
    random_affine,
    random_translate,
    read_idx,
    sample_image,
)
from vislearn.testing import assert_close, make_generator, random_tensor

# --- offline data ------------------------------------------------------------------------------


def test_digits_shapes_range_and_stratified_split(device):
    data = load_digits(device=device)
    x_train, y_train, x_test, y_test = data
    assert x_train.shape == (1437, 1, 8, 8) and x_test.shape == (360, 1, 8, 8)
    assert y_train.shape == (1437,) and y_test.shape == (360,)
    assert x_train.dtype == torch.float32 and y_train.dtype == torch.int64
    assert x_train.device.type == device.type
    assert x_train.min() == 0 and x_train.max() == 1  # pixel counts 0..16 divided by 16
    counts = torch.bincount(y_test.cpu(), minlength=10)
    assert counts.min() >= 35 and counts.max() <= 37, "every class keeps its share (~10%)"


def test_digits_split_is_reproducible():
    a, b, c = load_digits(), load_digits(), load_digits(seed=1)
    assert torch.equal(a.x_test, b.x_test) and torch.equal(a.y_train, b.y_train)
    assert not torch.equal(a.x_test, c.x_test)
    assert load_digits(test_fraction=0.5).x_test.shape[0] in (898, 899)


def test_sample_images():
    image = sample_image()
    assert image.shape == (3, 224, 224) and image.dtype == torch.float32
    assert image.min() >= 0 and image.max() <= 1 and image.std() > 0.1
    assert sample_image("camera", size=32).shape == (1, 32, 32)
    assert sample_image("coffee", size=(40, 60)).shape == (3, 40, 60)
    assert sample_image("cat", size=None).shape == (3, 300, 451)
    with pytest.raises(ValueError, match="unknown image"):
        sample_image("lena")


# --- downloads and parsers on fake files ----------------------------------------------------


def md5(path):
    return hashlib.md5(path.read_bytes()).hexdigest()


def write_idx(path, array):
    """An IDX file: zero, zero, type 0x08 (ubyte), ndim, big-endian sizes, data; gzipped."""
    header = struct.pack(">BBBB", 0, 0, 0x08, array.ndim)
    header += struct.pack(f">{array.ndim}i", *array.shape)
    path.write_bytes(gzip.compress(header + array.astype(np.uint8).tobytes()))


@pytest.fixture
def fake_mnist(tmp_path):
    """A 'server' folder with the four MNIST files, 5 training and 3 test images."""
    rng = np.random.default_rng(0)
    server = tmp_path / "server"
    server.mkdir()
    arrays = {
        "train-images-idx3-ubyte.gz": rng.integers(0, 256, (5, 28, 28)),
        "train-labels-idx1-ubyte.gz": rng.integers(0, 10, 5),
        "t10k-images-idx3-ubyte.gz": rng.integers(0, 256, (3, 28, 28)),
        "t10k-labels-idx1-ubyte.gz": rng.integers(0, 10, 3),
    }
    for name, array in arrays.items():
        write_idx(server / name, array)
    checksums = {name: md5(server / name) for name in arrays}
    return server, arrays, checksums


def test_mnist_download_and_parse(tmp_path, fake_mnist):
    server, arrays, checksums = fake_mnist
    assert set(checksums) == set(MNIST_MD5)
    root = tmp_path / "data"
    data = load_mnist(root, download=True, base_url=server.as_uri(), md5=checksums)
    assert data.x_train.shape == (5, 1, 28, 28) and data.x_test.shape == (3, 1, 28, 28)
    expected = torch.from_numpy(arrays["train-images-idx3-ubyte.gz"] / 255.0).float()
    assert_close(data.x_train[:, 0], expected)
    assert data.y_test.tolist() == arrays["t10k-labels-idx1-ubyte.gz"].tolist()
    assert sorted(p.name for p in (root / "mnist").iterdir()) == sorted(arrays)
    # Once downloaded, the files are read without a server.
    again = load_mnist(root, base_url="file:///nonexistent")
    assert torch.equal(again.x_train, data.x_train)


def test_mnist_missing_files_and_bad_checksums(tmp_path, fake_mnist):
    server, _, checksums = fake_mnist
    with pytest.raises(FileNotFoundError, match="download=True"):
        load_mnist(tmp_path / "empty")
    wrong = {**checksums, "train-images-idx3-ubyte.gz": "0" * 32}
    with pytest.raises(OSError, match="checksum mismatch"):
        load_mnist(tmp_path / "data", download=True, base_url=server.as_uri(), md5=wrong)
    assert not (tmp_path / "data" / "mnist" / "train-images-idx3-ubyte.gz").exists()
    assert not [p for p in (tmp_path / "data" / "mnist").iterdir() if p.name.startswith(".")]
    with pytest.raises(OSError, match="could not download"):
        download_file((server / "missing.gz").as_uri(), tmp_path / "x" / "missing.gz")


def test_read_idx_rejects_other_files(tmp_path):
    path = tmp_path / "bad.gz"
    path.write_bytes(gzip.compress(b"\x01\x02\x08\x01" + b"\x00" * 8))
    with pytest.raises(ValueError, match="not an IDX file"):
        read_idx(path)
    path.write_bytes(gzip.compress(struct.pack(">BBBBi", 0, 0, 8, 1, 5) + b"\x00" * 4))
    with pytest.raises(ValueError, match="wrong length"):
        read_idx(path)


def cifar_batch(rng, n):
    """A CIFAR-10 batch as the archive holds it: a dict with bytes keys, pickled."""
    batch = {
        b"batch_label": b"fake",
        b"labels": rng.integers(0, 10, n).tolist(),
        b"data": rng.integers(0, 256, (n, 3072)).astype(np.uint8),
        b"filenames": [b"x.png"] * n,
    }
    return batch, pickle.dumps(batch, protocol=2)


def test_cifar10_download_and_parse(tmp_path):
    rng = np.random.default_rng(1)
    server = tmp_path / "server"
    server.mkdir()
    batches = {}
    with tarfile.open(server / CIFAR10_ARCHIVE, "w:gz") as tar:
        names = [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch", "batches.meta"]
        for i, name in enumerate(names):
            batch, blob = cifar_batch(rng, 2 + i % 2)
            batches[name] = batch
            info = tarfile.TarInfo(f"cifar-10-batches-py/{name}")
            info.size = len(blob)
            tar.addfile(info, io.BytesIO(blob))
    checksums = {CIFAR10_ARCHIVE: md5(server / CIFAR10_ARCHIVE)}
    data = load_cifar10(tmp_path / "data", download=True, base_url=server.as_uri(), md5=checksums)
    assert data.x_train.shape == (3 * 2 + 2 * 3, 3, 32, 32)  # batches of 2, 3, 2, 3, 2 images
    assert data.x_test.shape == (3, 3, 32, 32)
    first = batches["data_batch_1"]
    row = torch.from_numpy(first[b"data"][1].astype(np.float32) / 255)
    # A row holds the red, then the green, then the blue 32 x 32 plane, each row by row.
    assert_close(data.x_train[1, 0, 0, :], row[:32])
    assert_close(data.x_train[1, 1], row[1024:2048].reshape(32, 32))
    assert data.y_train[:2].tolist() == first[b"labels"]
    assert data.y_test.tolist() == batches["test_batch"][b"labels"]
    with pytest.raises(OSError, match="checksum"):
        load_cifar10(
            tmp_path / "other",
            download=True,
            base_url=server.as_uri(),
            md5={CIFAR10_ARCHIVE: "0" * 32},
        )


# --- augmentation -----------------------------------------------------------------------------


def test_random_translate_shifts_whole_images_with_zero_fill(device):
    images = random_tensor((6, 2, 5, 7), make_generator(0), device=device)
    shifted = random_translate(images, 2, make_generator(1))
    assert shifted.shape == images.shape
    shifts = torch.randint(-2, 3, (2, 6), generator=make_generator(1))  # the same draws
    for b in range(6):
        dy, dx = -int(shifts[0, b]), -int(shifts[1, b])  # content moves by (dy, dx)
        expected = torch.zeros_like(images[b])
        src = images[b, :, max(0, -dy) : 5 - max(0, dy), max(0, -dx) : 7 - max(0, dx)]
        expected[:, max(0, dy) : 5 - max(0, -dy), max(0, dx) : 7 - max(0, -dx)] = src
        assert torch.equal(shifted[b], expected), (b, dy, dx)
    assert random_translate(images, 0) is images


def test_random_affine(device):
    images = random_tensor((4, 3, 8, 8), make_generator(2), device=device)
    identity = random_affine(images, make_generator(0), degrees=0, translate=0, scale=(1, 1))
    assert_close(identity, images, atol=1e-6, rtol=1e-5)
    moved = random_affine(images, make_generator(0))
    assert moved.shape == images.shape and not torch.allclose(moved, images)
    assert torch.equal(moved, random_affine(images, make_generator(0)))  # reproducible
