"""Fashion-MNIST, found or fetched, verified, and loaded with torchvision.

The book trains on the real Fashion-MNIST (Xiao, Rasul & Vollgraf, 2017): 60,000
training and 10,000 test images of 28x28 grey-level clothing, 10 balanced classes.
:func:`ensure_fashion_mnist` makes the four IDX files available under
``root/FashionMNIST/raw/`` (where :class:`torchvision.datasets.FashionMNIST` looks for
them), trying these sources in order:

1. ``$CNNBOOK_DATA`` (a folder that already holds them, or will);
2. the book's data folder (``data/`` at the repository root, git-ignored; outside a
   checkout, ``~/.cache/cnnbook``);
3. Debian's package ``dataset-fashion-mnist`` (gzip files under
   ``/usr/share/datasets/fashion-mnist``, decompressed here);
4. torchvision's own download (Colab, laptops).

Every file is checked against the SHA-256 of the decompressed dataset recorded below.
Nothing is ever replaced by synthetic data: if no source works, :class:`DataNotFoundError`
says which sources were tried and how to fix it.

Examples
--------
>>> len(CLASSES), CLASSES[0]
(10, 'T-shirt/top')
"""
from __future__ import annotations

import gzip
import hashlib
import os
import shutil
from pathlib import Path

CLASSES = (
    "T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
    "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot",
)

# SHA-256 and size of the decompressed IDX files (the same bytes whatever the source:
# Debian's and upstream's .gz files differ, their contents do not).
FILES = {
    "train-images-idx3-ubyte": ("c59f468a2f672dc815687fe0f83887768d799fd8a3f3276145d20f83aa44d888", 47040016),
    "train-labels-idx1-ubyte": ("bad3541b69d912435c50bb6ba87bec294ff4f6a2e1246121d8633921760443d9", 60008),
    "t10k-images-idx3-ubyte": ("5b4141f0afbad91edebe8549f8fcffe087ea10ca49f1dbef5c9a5cd8815ce37b", 7840016),
    "t10k-labels-idx1-ubyte": ("0402a96d92fd2663957122ceb108a494c5af83dab82d92729df917d7dec38c34", 10008),
}
DEBIAN_DIR = Path("/usr/share/datasets/fashion-mnist")
_REPO_ROOT = Path(__file__).resolve().parents[2]


class DataNotFoundError(RuntimeError):
    """No source could provide verified Fashion-MNIST files."""


def default_root() -> Path:
    """The folder that holds ``FashionMNIST/raw``: ``$CNNBOOK_DATA``, else the book's."""
    if os.environ.get("CNNBOOK_DATA"):
        return Path(os.environ["CNNBOOK_DATA"]).expanduser()
    if (_REPO_ROOT / "_config.yml").is_file():
        return _REPO_ROOT / "data"
    return Path.home() / ".cache" / "cnnbook"


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def verify(raw: Path) -> list[str]:
    """Return the problems with the IDX files in ``raw`` (an empty list means all good)."""
    problems = []
    for name, (sha, size) in FILES.items():
        path = raw / name
        if not path.is_file():
            problems.append(f"{name}: missing")
        elif path.stat().st_size != size:
            problems.append(f"{name}: {path.stat().st_size} bytes, expected {size}")
        elif _sha256(path) != sha:
            problems.append(f"{name}: SHA-256 differs from the recorded one")
    return problems


def _from_debian(raw: Path) -> None:
    raw.mkdir(parents=True, exist_ok=True)
    for name in FILES:
        with gzip.open(DEBIAN_DIR / f"{name}.gz", "rb") as src, open(raw / name, "wb") as dst:
            shutil.copyfileobj(src, dst)


def _from_torchvision(root: Path) -> None:
    from torchvision.datasets import FashionMNIST

    FashionMNIST(str(root), train=True, download=True)
    FashionMNIST(str(root), train=False, download=True)


def ensure_fashion_mnist(root: str | os.PathLike | None = None, download: bool = True) -> Path:
    """Make verified Fashion-MNIST IDX files available and return their root folder.

    Parameters
    ----------
    root : path, optional
        Folder that holds (or will hold) ``FashionMNIST/raw/``. Default: :func:`default_root`.
    download : bool, default True
        Whether torchvision may download the files when no local source has them.

    Returns
    -------
    pathlib.Path
        ``root``, ready for ``torchvision.datasets.FashionMNIST(root, download=False)``.

    Raises
    ------
    DataNotFoundError
        When no source gives files that match the recorded checksums; the message lists
        every source tried and what went wrong with it.
    """
    root = Path(root).expanduser() if root is not None else default_root()
    raw = root / "FashionMNIST" / "raw"
    tried = []
    problems = verify(raw)
    if not problems:
        return root
    tried.append(f"{raw}: {'; '.join(problems)}")
    sources = [("Debian package dataset-fashion-mnist", DEBIAN_DIR.is_dir(), _from_debian, raw)]
    sources.append(("torchvision download", download, _from_torchvision, root))
    for label, available, fetch, target in sources:
        if not available:
            tried.append(f"{label}: not available" + ("" if download else " (download=False)"))
            continue
        try:
            fetch(target)
        except Exception as exc:  # report every source, then fail loudly below
            tried.append(f"{label}: {type(exc).__name__}: {exc}")
            continue
        problems = verify(raw)
        if not problems:
            return root
        tried.append(f"{label}: {'; '.join(problems)}")
    raise DataNotFoundError(
        "ensure_fashion_mnist: no verified Fashion-MNIST files found. Tried:\n  - "
        + "\n  - ".join(tried)
        + "\nFix: on Debian/Ubuntu run `sudo apt-get install dataset-fashion-mnist`; "
        "elsewhere allow the download (internet access), or set CNNBOOK_DATA to a folder "
        "holding FashionMNIST/raw/ with the four decompressed IDX files."
    )


def fashion_mnist(train: bool = True, transform=None, root=None):
    """The real :class:`torchvision.datasets.FashionMNIST` split, after :func:`ensure_fashion_mnist`."""
    from torchvision.datasets import FashionMNIST

    return FashionMNIST(str(ensure_fashion_mnist(root)), train=train, transform=transform, download=False)


def load_tensors(train: bool = True, root=None):
    """Return ``(images, labels)`` of one split as tensors, fast (no per-image transform).

    Shape:
        images: ``(N, 1, 28, 28)`` float32 in [0, 1]; labels: ``(N,)`` int64,
        with N = 60,000 (``train=True``) or 10,000.
    """
    ds = fashion_mnist(train=train, root=root)
    images = ds.data.unsqueeze(1).float().div_(255.0)  # (N, 1, 28, 28)
    return images, ds.targets.clone()


if __name__ == "__main__":
    print(f"Fashion-MNIST ready under {ensure_fashion_mnist()}")
