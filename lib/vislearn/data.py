"""Data sets used by the course, one section per kind of data.

Files are read from a local data folder: the ``root`` argument if given, else
``$VISLEARN_DATA``, else ``~/.cache/vislearn`` (see :func:`data_root`). Each data set keeps its
files in a subfolder of it (Planetoid: ``<root>/planetoid/``). Nothing is downloaded unless a
loader is called with ``download=True``.

Sections:

- Graphs: :class:`GraphData`, :func:`load_planetoid` (Cora, CiteSeer, PubMed),
  :func:`synthetic_citation_graph` (a stand-in with the same shape of problem) and
  :func:`karate_club`.
- Downloads, shared with :mod:`vislearn.images`: :func:`download_file` (atomic, with an
  optional MD5 check) and :func:`md5sum`.
"""

from __future__ import annotations

import dataclasses
import hashlib
import os
import pickle
import tempfile
import urllib.request
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from vislearn.graphs import coalesce, edge_index_from_networkx, remove_self_loops

DATA_ENV = "VISLEARN_DATA"


def data_root(root: str | os.PathLike | None = None) -> Path:
    """The data folder: ``root``, else ``$VISLEARN_DATA``, else ``~/.cache/vislearn``."""
    if root is not None:
        return Path(root).expanduser()
    return Path(os.environ.get(DATA_ENV, "~/.cache/vislearn")).expanduser()


# =============================================================================================
# Graphs
# =============================================================================================


@dataclass
class GraphData:
    """One graph for node classification.

    ``x`` ``(N, F)`` float node features, ``y`` ``(N,)`` long labels, ``edge_index`` ``(2, E)``
    (see :mod:`vislearn.graphs`; undirected graphs list both directions), and boolean masks
    ``(N,)`` of the training, validation and test nodes.
    """

    x: torch.Tensor
    y: torch.Tensor
    edge_index: torch.Tensor
    train_mask: torch.Tensor
    val_mask: torch.Tensor
    test_mask: torch.Tensor
    num_classes: int
    name: str

    @property
    def num_nodes(self) -> int:
        return self.x.shape[0]

    @property
    def num_features(self) -> int:
        return self.x.shape[1]

    @property
    def num_edges(self) -> int:
        """Directed edges: an undirected graph counts each edge twice, as PyG does."""
        return self.edge_index.shape[1]

    def to(self, device: torch.device | str) -> GraphData:
        """A copy with every tensor on ``device``."""
        return dataclasses.replace(
            self,
            **{
                f.name: getattr(self, f.name).to(device)
                for f in dataclasses.fields(self)
                if isinstance(getattr(self, f.name), torch.Tensor)
            },
        )

    def __repr__(self) -> str:
        return (
            f"GraphData({self.name}: {self.num_nodes} nodes, {self.num_edges} edges, "
            f"{self.num_features} features, {self.num_classes} classes, "
            f"{int(self.train_mask.sum())}/{int(self.val_mask.sum())}/"
            f"{int(self.test_mask.sum())} split, {self.x.device.type})"
        )


def _mask(index: torch.Tensor, size: int) -> torch.Tensor:
    mask = torch.zeros(size, dtype=torch.bool)
    mask[index] = True
    return mask


def _undirected(edge_index: torch.Tensor, num_nodes: int) -> torch.Tensor:
    """Both directions of every edge, no self-loops, each edge once per direction."""
    both = torch.cat([edge_index, edge_index.flip(0)], dim=1)
    both, _ = remove_self_loops(both)
    return coalesce(both, num_nodes)[0]


def _row_normalize(x: torch.Tensor) -> torch.Tensor:
    """Divide each row by its sum (rows that sum to 0 stay 0), as Kipf and Welling do."""
    total = x.sum(dim=1, keepdim=True)
    return x / total.masked_fill(total == 0, 1)


# ---------------------------------------------------------------------------------------------
# Planetoid citation graphs (Yang, Cohen and Salakhutdinov, ICML 2016)
# ---------------------------------------------------------------------------------------------

PLANETOID_URL = "https://github.com/kimiyoung/planetoid/raw/master/data"
PLANETOID_NAMES = {"cora": "Cora", "citeseer": "CiteSeer", "pubmed": "PubMed"}
PLANETOID_PARTS = ("x", "tx", "allx", "y", "ty", "ally", "graph", "test.index")


def md5sum(path: str | os.PathLike) -> str:
    """The MD5 hex digest of a file, read in 1 MiB chunks."""
    digest = hashlib.md5()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def download_file(url: str, path: str | os.PathLike, md5: str | None = None) -> Path:
    """Fetch ``url`` into ``path`` and check its MD5 sum (if given).

    The file is written under a temporary name and renamed only once it is complete and
    its checksum matches, so an interrupted or corrupted download leaves nothing behind.
    ``url`` may be ``https://``, ``http://`` or ``file://``.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        try:
            with os.fdopen(fd, "wb") as out, urllib.request.urlopen(url, timeout=60) as source:
                while chunk := source.read(1 << 20):
                    out.write(chunk)
        except (OSError, ValueError) as error:  # URLError is an OSError
            raise OSError(f"could not download {url}: {error}") from error
        if md5 is not None and (actual := md5sum(tmp)) != md5:
            raise OSError(f"checksum mismatch for {url}: expected MD5 {md5}, got {actual}")
        os.replace(tmp, path)
    finally:
        Path(tmp).unlink(missing_ok=True)  # a no-op once the file has been renamed
    return path


def _read_planetoid_part(folder: Path, name: str, part: str):
    path = folder / f"ind.{name}.{part}"
    if part == "test.index":
        return torch.tensor([int(line) for line in path.read_text().split()], dtype=torch.long)
    with open(path, "rb") as f, warnings.catch_warnings():
        # The pickles name scipy.sparse.csr, a module path newer SciPy marks as deprecated.
        warnings.simplefilter("ignore", DeprecationWarning)
        obj = pickle.load(f, encoding="latin1")  # Python 2 pickles; needs scipy for x parts
    if part == "graph":
        return obj  # dict: node -> list of neighbours
    dense = obj.toarray() if hasattr(obj, "toarray") else np.asarray(obj)
    return torch.from_numpy(dense.astype(np.float32))


def load_planetoid(
    name: str,
    root: str | os.PathLike | None = None,
    download: bool = False,
    normalize_features: bool = True,
    base_url: str = PLANETOID_URL,
) -> GraphData:
    """Cora, CiteSeer or PubMed with the standard split of Yang et al. (2016), as used by the
    GCN and GAT papers and PyG's ``Planetoid``.

    Reads ``<root>/planetoid/ind.<name>.{x,tx,allx,y,ty,ally,graph,test.index}`` (see
    :func:`data_root`). Missing files raise ``FileNotFoundError`` naming them, unless
    ``download=True``, which fetches just the missing ones from ``base_url`` (default: the
    kimiyoung/planetoid repository; any URL that ``urllib`` opens, ``file://`` included).

    Split: the training nodes are the first ``len(y)`` nodes (20 per class), validation the
    next 500, test the 1000 nodes listed in ``test.index``. Edges are made undirected with
    self-loops and duplicates removed, as PyG does (Cora 10,556 directed edges). CiteSeer's
    ``test.index`` skips 15 node ids inside its range: the files hold no features or label
    for them (Kipf's loader calls them isolated; in the graph each has one or two edges). They
    get zero features and label 0 and are in no mask, the fix of Kipf's and PyG's loaders.
    ``normalize_features`` divides each node's bag-of-words by its number of words.
    """
    key = name.lower()
    if key not in PLANETOID_NAMES:
        raise ValueError(
            f"unknown Planetoid data set {name!r}; choose from {list(PLANETOID_NAMES)}"
        )
    folder = data_root(root) / "planetoid"
    missing = [p for p in PLANETOID_PARTS if not (folder / f"ind.{key}.{p}").is_file()]
    if missing and download:
        for part in missing:
            filename = f"ind.{key}.{part}"
            download_file(f"{base_url.rstrip('/')}/{filename}", folder / filename)
    elif missing:
        files = ", ".join(f"ind.{key}.{p}" for p in missing)
        raise FileNotFoundError(
            f"{PLANETOID_NAMES[key]} needs {files}, missing from {folder}. "
            f"Copy the files there, set ${DATA_ENV} or root= to a folder whose planetoid/ "
            f"holds them, or call load_planetoid({name!r}, download=True)."
        )
    # x holds the training rows again (the first rows of allx); y gives the training count.
    _x, tx, allx, y, ty, ally, graph, test_index = (
        _read_planetoid_part(folder, key, part) for part in PLANETOID_PARTS
    )
    sorted_test = test_index.sort().values
    if key == "citeseer":  # test indices have gaps: give the missing nodes empty rows
        span = int(test_index.max() - test_index.min()) + 1
        tx_full, ty_full = tx.new_zeros(span, tx.shape[1]), ty.new_zeros(span, ty.shape[1])
        tx_full[sorted_test - test_index.min()] = tx
        ty_full[sorted_test - test_index.min()] = ty
        tx, ty = tx_full, ty_full
    # Test rows are stored in sorted order after allx; put each at its node id.
    features = torch.cat([allx, tx])  # (N, F)
    features[test_index] = features[sorted_test]
    labels = torch.cat([ally, ty]).argmax(dim=1)  # (N,)
    labels[test_index] = labels[sorted_test]
    num_nodes = labels.shape[0]

    source = [node for node, neighbours in graph.items() for _ in neighbours]
    target = [n for neighbours in graph.values() for n in neighbours]
    edge_index = _undirected(torch.tensor([source, target], dtype=torch.long), num_nodes)

    num_train = y.shape[0]
    return GraphData(
        x=_row_normalize(features) if normalize_features else features,
        y=labels,
        edge_index=edge_index,
        train_mask=_mask(torch.arange(num_train), num_nodes),
        val_mask=_mask(torch.arange(num_train, num_train + 500), num_nodes),
        test_mask=_mask(test_index, num_nodes),
        num_classes=y.shape[1],
        name=PLANETOID_NAMES[key],
    )


# ---------------------------------------------------------------------------------------------
# Synthetic citation graph and Zachary's karate club
# ---------------------------------------------------------------------------------------------


def _sbm_edges(
    labels: torch.Tensor, p_in: float, p_out: float, generator: torch.Generator
) -> torch.Tensor:
    """Undirected stochastic-block-model edges (both directions) for the given labels.

    For each pair of classes the number of edges is drawn from its binomial distribution, then
    that many node pairs are drawn uniformly: exact in distribution for the counts, and for a
    sparse graph (small ``p``) the rare pair drawn twice, or a node paired with itself, is
    simply dropped. Cost ``O(E)``, so graphs with millions of edges are cheap.
    """
    num_nodes = labels.shape[0]
    members = [torch.nonzero(labels == c).flatten() for c in range(int(labels.max()) + 1)]
    pieces = []
    for a, nodes_a in enumerate(members):
        for b in range(a, len(members)):
            nodes_b = members[b]
            pairs = len(nodes_a) * (len(nodes_a) - 1) / 2 if a == b else len(nodes_a) * len(nodes_b)
            p = p_in if a == b else p_out
            trials, prob = torch.tensor(float(pairs)), torch.tensor(p)
            count = int(torch.binomial(trials, prob, generator=generator))
            u = nodes_a[torch.randint(len(nodes_a), (count,), generator=generator)]
            v = nodes_b[torch.randint(len(nodes_b), (count,), generator=generator)]
            pieces.append(torch.stack([u, v]))
    return _undirected(torch.cat(pieces, dim=1), num_nodes)


def _planetoid_like_split(
    labels: torch.Tensor, num_classes: int, per_class: int, num_val: int, num_test: int
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The first ``per_class`` nodes of each class (by id) train; of the rest, the first
    ``num_val`` validate and the next ``num_test`` test."""
    num_nodes = labels.shape[0]
    train = torch.cat(
        [torch.nonzero(labels == c).flatten()[:per_class] for c in range(num_classes)]
    )
    train_mask = _mask(train, num_nodes)
    rest = torch.nonzero(~train_mask).flatten()
    if len(train) < per_class * num_classes or len(rest) < num_val + num_test:
        raise ValueError(
            f"{num_nodes} nodes are too few for {per_class} training nodes per class, "
            f"{num_val} validation and {num_test} test nodes"
        )
    val_mask = _mask(rest[:num_val], num_nodes)
    test_mask = _mask(rest[num_val : num_val + num_test], num_nodes)
    return train_mask, val_mask, test_mask


def synthetic_citation_graph(
    num_nodes: int = 2708,
    num_classes: int = 7,
    num_features: int = 1433,
    p_in: float = 0.008,
    p_out: float = 0.0003,
    generator: torch.Generator | None = None,
    words_per_node: int = 18,
    topic_fraction: float = 0.3,
    num_val: int = 500,
    num_test: int = 1000,
    label_generator: torch.Generator | None = None,
) -> GraphData:
    """A Cora-like graph to run the chapter anywhere: a stochastic block model with
    class-correlated bag-of-words features. Defaults are close to Cora's sizes and degree.

    Labels are balanced and shuffled. Two nodes are linked with probability ``p_in`` in the
    same class and ``p_out`` across classes (see :func:`_sbm_edges`). Each class owns an equal
    slice of the vocabulary (its topic); each node draws ``words_per_node`` words, each from
    its class's topic with probability ``topic_fraction`` and from the whole vocabulary
    otherwise, and has binary features (row-normalised, as :func:`load_planetoid`). Split as
    Planetoid: 20 training nodes per class, then ``num_val`` and ``num_test`` nodes.

    The labels are drawn with ``label_generator`` (default: ``generator``), the words and
    edges with ``generator``: a grader that gives a student's code the features and edges but
    not every label draws them from two generators, so that nothing the code could learn
    about the draws of the one says anything about the other.
    """
    generator = generator if generator is not None else torch.Generator().manual_seed(0)
    label_generator = label_generator if label_generator is not None else generator
    order = torch.randperm(num_nodes, generator=label_generator)
    labels = torch.arange(num_nodes)[order] % num_classes  # (N,) balanced, shuffled

    topic = torch.arange(num_features) % num_classes  # (F,) which class owns each word
    in_topic = (topic[None, :] == torch.arange(num_classes)[:, None]).float()  # (C, F)
    word_probs = (1 - topic_fraction) / num_features + topic_fraction * in_topic / in_topic.sum(
        dim=1, keepdim=True
    )  # (C, F), rows sum to 1
    words = torch.multinomial(word_probs[labels], words_per_node, True, generator=generator)
    x = torch.zeros(num_nodes, num_features).scatter_(1, words, 1.0)  # (N, F) binary

    train_mask, val_mask, test_mask = _planetoid_like_split(
        labels, num_classes, 20, num_val, num_test
    )
    return GraphData(
        x=_row_normalize(x),
        y=labels,
        edge_index=_sbm_edges(labels, p_in, p_out, generator),
        train_mask=train_mask,
        val_mask=val_mask,
        test_mask=test_mask,
        num_classes=num_classes,
        name="synthetic citation graph",
    )


def karate_club() -> GraphData:
    """Zachary's karate club (34 members, 78 friendships) with the two factions it split into.

    Labels from networkx's ``club`` attribute: 0 = "Mr. Hi" (node 0, the instructor),
    1 = "Officer" (node 33, the president). Features are one-hot node ids (``x = I``), as in
    Kipf and Welling's example. Only the two leaders are labelled for training; there is no
    validation set, the other 32 members are the test set.
    """
    import networkx as nx  # course requirement, not a dependency of the package

    graph = nx.karate_club_graph()
    labels = torch.tensor([int(graph.nodes[n]["club"] != "Mr. Hi") for n in graph.nodes])
    num_nodes = labels.shape[0]
    train_mask = _mask(torch.tensor([0, num_nodes - 1]), num_nodes)
    return GraphData(
        x=torch.eye(num_nodes),
        y=labels,
        edge_index=coalesce(edge_index_from_networkx(graph), num_nodes)[0],
        train_mask=train_mask,
        val_mask=torch.zeros(num_nodes, dtype=torch.bool),
        test_mask=~train_mask,
        num_classes=2,
        name="karate club",
    )
