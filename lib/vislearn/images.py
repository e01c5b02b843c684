"""Image data: offline data sets bundled with scikit-learn and scikit-image, MNIST and
CIFAR-10 for those with an internet connection, and a batched random translation.

Offline (nothing is downloaded):

- :func:`load_digits`: scikit-learn's 1797 handwritten digits, 8 x 8 pixels, with a fixed
  stratified train/test split;
- :func:`sample_image`: a photograph from scikit-image (the astronaut Eileen Collins, a cat,
  a coffee cup, ...), as a channel-first tensor.

Online (``download=True``; files go to ``<root>/mnist/`` and ``<root>/cifar10/``, with
``root`` as in :func:`vislearn.data.data_root`): :func:`load_mnist` reads the four IDX files
of LeCun et al. (1998), :func:`load_cifar10` the Python pickles of Krizhevsky (2009) straight
from their ``.tar.gz`` archive. Downloads are checked against the published MD5 sums.

Images are float32 in ``[0, 1]``, shape ``(B, C, H, W)``; labels are int64 ``(B,)``.
scikit-learn and scikit-image are imported only by the functions that need them.
"""

from __future__ import annotations

import gzip
import os
import pickle
import tarfile
from pathlib import Path
from typing import NamedTuple

import numpy as np
import torch
import torch.nn.functional as F

from vislearn.data import data_root, download_file


class ImageSplit(NamedTuple):
    """Training and test images ``(B, C, H, W)`` and labels ``(B,)``; unpacks as a 4-tuple."""

    x_train: torch.Tensor
    y_train: torch.Tensor
    x_test: torch.Tensor
    y_test: torch.Tensor


def _split(
    x: np.ndarray, y: np.ndarray, x_test: np.ndarray, y_test: np.ndarray, device
) -> ImageSplit:
    def images(a: np.ndarray) -> torch.Tensor:
        return torch.from_numpy(a).to(device=device, dtype=torch.float32)

    def labels(a: np.ndarray) -> torch.Tensor:
        return torch.from_numpy(np.asarray(a, dtype=np.int64)).to(device)

    return ImageSplit(images(x), labels(y), images(x_test), labels(y_test))


# =============================================================================================
# Offline: scikit-learn and scikit-image
# =============================================================================================


def load_digits(
    device: torch.device | str | None = None, test_fraction: float = 0.2, seed: int = 0
) -> ImageSplit:
    """scikit-learn's handwritten digits (the UCI optical digits test set): 1797 grey images
    of 8 x 8 pixels, classes 0-9, about 180 of each.

    Pixel counts 0..16 are divided by 16 into ``[0, 1]``; images are ``(B, 1, 8, 8)``. The
    split is stratified (every class keeps its share in both parts) and fixed by ``seed``:
    ``test_fraction=0.2`` gives 1437 training and 360 test images.
    """
    from sklearn.datasets import load_digits as sklearn_digits
    from sklearn.model_selection import train_test_split

    digits = sklearn_digits()
    x = (digits.images / 16.0).astype(np.float32)[:, None]  # (1797, 1, 8, 8)
    x_train, x_test, y_train, y_test = train_test_split(
        x, digits.target, test_size=test_fraction, stratify=digits.target, random_state=seed
    )
    return _split(x_train, y_train, x_test, y_test, device)


SAMPLE_IMAGES = ("astronaut", "camera", "cat", "chelsea", "coffee", "rocket")


def sample_image(
    name: str = "astronaut",
    size: int | tuple[int, int] | None = 224,
    device: torch.device | str | None = None,
) -> torch.Tensor:
    """A photograph bundled with scikit-image as a ``(C, H, W)`` float tensor in ``[0, 1]``.

    ``name`` is one of :data:`SAMPLE_IMAGES` (``"cat"`` is ``"chelsea"``); ``"camera"`` is
    grey (``C = 1``), the others RGB. ``size=S`` takes the largest centred square and
    resizes it to ``S x S``; ``size=(H, W)`` resizes the whole image to ``H x W``; None
    keeps the original. Resizing is bilinear with antialiasing.
    """
    import skimage.data

    if name not in SAMPLE_IMAGES:
        raise ValueError(f"unknown image {name!r}; choose one of {SAMPLE_IMAGES}")
    array = getattr(skimage.data, "chelsea" if name == "cat" else name)()  # (H, W[, 3]) uint8
    image = torch.from_numpy(np.ascontiguousarray(array)).float() / 255.0
    image = image[None] if image.dim() == 2 else image.permute(2, 0, 1)  # (C, H, W)
    if isinstance(size, int):
        height, width = image.shape[-2:]
        side = min(height, width)
        top, left = (height - side) // 2, (width - side) // 2
        image = image[:, top : top + side, left : left + side]
        size = (size, size)
    if size is not None:
        image = F.interpolate(
            image[None], size=tuple(size), mode="bilinear", antialias=True, align_corners=False
        )[0].clamp_(0.0, 1.0)
    return image.to(device)


# =============================================================================================
# Downloads
# =============================================================================================


def _fetch(
    folder: Path, name: str, download: bool, base_url: str, md5: dict[str, str] | None
) -> Path:
    """``folder / name``, downloaded from ``base_url/name`` first if missing and allowed."""
    path = folder / name
    if not path.exists():
        if not download:
            raise FileNotFoundError(
                f"{path} does not exist; pass download=True to fetch it from {base_url}"
            )
        download_file(f"{base_url.rstrip('/')}/{name}", path, md5.get(name) if md5 else None)
    return path


# =============================================================================================
# MNIST (LeCun, Bottou, Bengio and Haffner, 1998)
# =============================================================================================

MNIST_URL = "https://ossci-datasets.s3.amazonaws.com/mnist"
MNIST_MD5 = {
    "train-images-idx3-ubyte.gz": "f68b3c2dcbeaaa9fbdd348bbdeb94873",
    "train-labels-idx1-ubyte.gz": "d53e105ee54ea40749a09fcbcd1e9432",
    "t10k-images-idx3-ubyte.gz": "9fb629c4189551a2d022fa330f9573f3",
    "t10k-labels-idx1-ubyte.gz": "ec29112dd5afa0611ce80d1b7f02629c",
}
_IDX_DTYPES = {
    0x08: np.uint8,
    0x09: np.int8,
    0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"),
    0x0D: np.dtype(">f4"),
    0x0E: np.dtype(">f8"),
}


def read_idx(path: str | os.PathLike) -> np.ndarray:
    """Read an IDX file (gzip-compressed if its name ends in ``.gz``).

    The format: two zero bytes, a byte for the element type (``0x08`` = unsigned byte), a
    byte for the number of dimensions ``k``, ``k`` big-endian int32 sizes, then the data in
    C order.
    """
    opener = gzip.open if str(path).endswith(".gz") else open
    with opener(path, "rb") as f:
        data = f.read()
    if len(data) < 4 or data[:2] != b"\x00\x00" or data[2] not in _IDX_DTYPES:
        raise ValueError(f"{path} is not an IDX file")
    ndim = data[3]
    shape = tuple(int(s) for s in np.frombuffer(data, dtype=">i4", count=ndim, offset=4))
    dtype = np.dtype(_IDX_DTYPES[data[2]])
    expected = 4 + 4 * ndim + int(np.prod(shape)) * dtype.itemsize
    if len(data) != expected:
        raise ValueError(f"{path}: header says {shape}, but the file has the wrong length")
    return np.frombuffer(data, dtype=dtype, offset=4 + 4 * ndim).reshape(shape)


def load_mnist(
    root: str | os.PathLike | None = None,
    download: bool = False,
    *,
    base_url: str = MNIST_URL,
    md5: dict[str, str] | None = MNIST_MD5,
    device: torch.device | str | None = None,
) -> ImageSplit:
    """MNIST: 60000 training and 10000 test images of handwritten digits, ``(B, 1, 28, 28)``.

    Reads the four files of :data:`MNIST_MD5` from ``<root>/mnist/``; with ``download=True``
    missing files are fetched from ``base_url`` and checked against ``md5`` (None: not
    checked). Pixels are divided by 255.
    """
    folder = data_root(root) / "mnist"
    arrays = {}
    for part, prefix in (("train", "train"), ("test", "t10k")):
        images = _fetch(folder, f"{prefix}-images-idx3-ubyte.gz", download, base_url, md5)
        labels = _fetch(folder, f"{prefix}-labels-idx1-ubyte.gz", download, base_url, md5)
        x, y = read_idx(images), read_idx(labels)  # (B, 28, 28) uint8, (B,) uint8
        if x.ndim != 3 or y.shape != x.shape[:1]:
            raise ValueError(f"MNIST {part}: {x.shape[0]} images but labels of shape {y.shape}")
        arrays[part] = (x[:, None] / np.float32(255.0), y)
    return _split(*arrays["train"], *arrays["test"], device)


# =============================================================================================
# CIFAR-10 (Krizhevsky, 2009)
# =============================================================================================

CIFAR10_URL = "https://www.cs.toronto.edu/~kriz"
CIFAR10_ARCHIVE = "cifar-10-python.tar.gz"
CIFAR10_MD5 = {CIFAR10_ARCHIVE: "c58f30108f718f92721af3b95e74349a"}
CIFAR10_CLASSES = (
    "airplane",
    "automobile",
    "bird",
    "cat",
    "deer",
    "dog",
    "frog",
    "horse",
    "ship",
    "truck",
)


def _read_cifar_batches(archive: Path, names: list[str]) -> tuple[np.ndarray, np.ndarray]:
    """Images ``(B, 3, 32, 32)`` uint8 and labels of the named batches in the archive.

    Each batch is a pickled dict (written by Python 2) with ``b"data"``, ``(10000, 3072)``
    uint8 rows holding the red, green then blue 32 x 32 planes, and ``b"labels"``.
    """
    images, labels = [], []
    with tarfile.open(archive, "r:gz") as tar:
        members = {Path(m.name).name: m for m in tar.getmembers() if m.isfile()}
        for name in names:
            if name not in members:
                raise ValueError(f"{archive} has no file {name}")
            with tar.extractfile(members[name]) as f:
                batch = pickle.load(f, encoding="bytes")  # the archive's MD5 was checked
            images.append(np.asarray(batch[b"data"], dtype=np.uint8).reshape(-1, 3, 32, 32))
            labels.append(np.asarray(batch[b"labels"], dtype=np.int64))
    return np.concatenate(images), np.concatenate(labels)


def load_cifar10(
    root: str | os.PathLike | None = None,
    download: bool = False,
    *,
    base_url: str = CIFAR10_URL,
    md5: dict[str, str] | None = CIFAR10_MD5,
    device: torch.device | str | None = None,
) -> ImageSplit:
    """CIFAR-10: 50000 training and 10000 test colour images, ``(B, 3, 32, 32)``, in the ten
    classes of :data:`CIFAR10_CLASSES`.

    Reads ``<root>/cifar10/cifar-10-python.tar.gz`` (163 MiB), downloaded from ``base_url``
    with ``download=True`` and checked against ``md5``. The batches are read from the
    archive without unpacking it. Pixels are divided by 255 (the float32 training images
    take 600 MiB).
    """
    archive = _fetch(data_root(root) / "cifar10", CIFAR10_ARCHIVE, download, base_url, md5)
    x, y = _read_cifar_batches(archive, [f"data_batch_{i}" for i in range(1, 6)])
    x_test, y_test = _read_cifar_batches(archive, ["test_batch"])
    return _split(x / np.float32(255.0), y, x_test / np.float32(255.0), y_test, device)


# =============================================================================================
# Augmentation
# =============================================================================================


def random_translate(
    images: torch.Tensor, max_shift: int, generator: torch.Generator | None = None
) -> torch.Tensor:
    """Shift each image by its own random whole number of pixels in ``[-max_shift,
    max_shift]`` along each axis, filling with zeros: ``(B, C, H, W) -> (B, C, H, W)``.

    The shifts are drawn on the CPU with ``generator`` (the same on every device), then the
    whole batch is moved by one gather on the images' device.
    """
    if max_shift == 0:
        return images
    batch, _, height, width = images.shape
    shifts = torch.randint(-max_shift, max_shift + 1, (2, batch), generator=generator)
    dy, dx = (max_shift + shifts).to(images.device)  # offsets into the padded image, (B,)
    padded = F.pad(images, (max_shift,) * 4)  # (B, C, H + 2s, W + 2s)
    rows = dy[:, None] + torch.arange(height, device=images.device)  # (B, H)
    cols = dx[:, None] + torch.arange(width, device=images.device)  # (B, W)
    b = torch.arange(batch, device=images.device)[:, None, None]  # (B, 1, 1)
    # Advanced indices on axes 0, 2, 3 around a slice: the result is (B, H, W, C).
    shifted = padded[b, :, rows[:, :, None], cols[:, None, :]]
    return shifted.permute(0, 3, 1, 2)


def random_affine(
    images: torch.Tensor,
    generator: torch.Generator | None = None,
    *,
    degrees: float = 10.0,
    translate: float = 0.06,
    scale: tuple[float, float] = (0.9, 1.1),
) -> torch.Tensor:
    """Rotate, scale and shift each image by its own random amount, resampling bilinearly
    (zeros outside): ``(B, C, H, W) -> (B, C, H, W)``.

    Per image, uniformly: an angle in ``[-degrees, degrees]``, a zoom factor in ``scale``
    and a shift of up to ``translate`` times the width (height) along each axis, all about
    the image's centre. Sub-pixel shifts and small rotations suit tiny images such as 8 x 8
    digits, where a whole-pixel shift (:func:`random_translate`) is already 12% of the
    image. The parameters are drawn on the CPU with ``generator``.
    """
    batch = images.shape[0]
    u = torch.rand(4, batch, generator=generator, dtype=torch.float64)  # (4, B) in [0, 1)
    angle = torch.deg2rad((2 * u[0] - 1) * degrees)
    zoom = scale[0] + (scale[1] - scale[0]) * u[1]
    shift = (2 * u[2:] - 1) * translate * 2  # (2, B); normalised coordinates span [-1, 1]
    # theta maps output coordinates to input coordinates: a rotation by -angle over zoom.
    cos, sin = torch.cos(angle) / zoom, torch.sin(angle) / zoom
    theta = torch.stack(
        [torch.stack([cos, -sin, shift[0]], dim=-1), torch.stack([sin, cos, shift[1]], dim=-1)],
        dim=1,
    ).to(images)  # (B, 2, 3)
    grid = F.affine_grid(theta, list(images.shape), align_corners=False)  # (B, H, W, 2)
    return F.grid_sample(images, grid, mode="bilinear", padding_mode="zeros", align_corners=False)
