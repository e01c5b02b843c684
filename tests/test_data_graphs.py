"""The graph section of vislearn.data: Planetoid files (local, missing, downloaded), the
synthetic citation graph and the karate club."""

import os
import re
import shutil
from pathlib import Path

import pytest
import torch

from vislearn.data import (
    DATA_ENV,
    PLANETOID_PARTS,
    GraphData,
    karate_club,
    load_planetoid,
    synthetic_citation_graph,
)
from vislearn.graphs import coalesce
from vislearn.testing import make_generator


def find_planetoid_root() -> Path | None:
    """The data root whose planetoid/ holds the files: shared/data beside the repository,
    else $VISLEARN_DATA."""
    candidates = [Path(__file__).parents[2] / "shared/data"]
    if DATA_ENV in os.environ:
        candidates.append(Path(os.environ[DATA_ENV]))
    for root in candidates:
        if (root / "planetoid/ind.cora.graph").is_file():
            return root
    return None


ROOT = find_planetoid_root()
needs_planetoid = pytest.mark.skipif(
    ROOT is None, reason="Planetoid files not found in shared/data/planetoid or $VISLEARN_DATA"
)


def assert_undirected_simple(data: GraphData) -> None:
    edge_index = data.edge_index
    assert edge_index.dtype == torch.long and edge_index.shape[0] == 2
    assert (edge_index[0] != edge_index[1]).all(), "no self-loops"
    assert coalesce(edge_index, data.num_nodes)[0].shape == edge_index.shape, "no duplicates"
    reverse = coalesce(edge_index.flip(0), data.num_nodes)[0]
    assert torch.equal(coalesce(edge_index, data.num_nodes)[0], reverse), "both directions"


def assert_split(data: GraphData, train: int, val: int, test: int) -> None:
    masks = (data.train_mask, data.val_mask, data.test_mask)
    assert [int(m.sum()) for m in masks] == [train, val, test]
    assert int(torch.stack(masks).sum(0).max()) == 1, "the masks must not overlap"


@pytest.fixture(scope="module")
def cora() -> GraphData:
    return load_planetoid("cora", root=ROOT)


# --- Planetoid -------------------------------------------------------------------------------


@needs_planetoid
def test_cora(cora):
    assert (cora.num_nodes, cora.num_features, cora.num_classes) == (2708, 1433, 7)
    assert cora.num_edges == 10556 and cora.name == "Cora"
    assert_split(cora, 140, 500, 1000)
    assert_undirected_simple(cora)
    assert torch.equal(torch.bincount(cora.y[cora.train_mask]), torch.full((7,), 20))
    assert torch.allclose(cora.x.sum(1), torch.ones(2708))  # row-normalised bag of words
    raw = load_planetoid("cora", root=ROOT, normalize_features=False)
    assert set(raw.x.unique().tolist()) == {0.0, 1.0}


@needs_planetoid
def test_citeseer_with_its_missing_test_nodes():
    data = load_planetoid("citeseer", root=ROOT, normalize_features=False)
    assert (data.num_nodes, data.num_features, data.num_classes) == (3327, 3703, 6)
    assert data.num_edges == 9104
    assert_split(data, 120, 500, 1000)
    assert_undirected_simple(data)
    test_ids = data.test_mask.nonzero().flatten()
    in_range = torch.zeros_like(data.test_mask)
    in_range[test_ids.min() : test_ids.max() + 1] = True
    gaps = in_range & ~data.test_mask
    assert int(gaps.sum()) == 15
    assert (data.x[gaps] == 0).all() and (data.y[gaps] == 0).all()


@needs_planetoid
@pytest.mark.parametrize("name", ["cora", "citeseer"])
def test_planetoid_matches_pyg(name):
    pyg = pytest.importorskip("torch_geometric.io.planetoid")
    ours = load_planetoid(name, root=ROOT, normalize_features=False)
    theirs = pyg.read_planetoid_data(str(ROOT / "planetoid"), name)
    for key in ("x", "y", "train_mask", "val_mask", "test_mask"):
        assert torch.equal(getattr(ours, key), getattr(theirs, key)), key
    assert torch.equal(ours.edge_index, coalesce(theirs.edge_index, ours.num_nodes)[0])


def test_missing_files_are_named(tmp_path):
    folder = tmp_path / "planetoid"
    folder.mkdir()
    if ROOT is not None:
        for part in PLANETOID_PARTS:
            if part != "allx":
                shutil.copy(ROOT / f"planetoid/ind.cora.{part}", folder)
    with pytest.raises(FileNotFoundError, match=r"ind\.cora\.allx") as error:
        load_planetoid("cora", root=tmp_path)
    if ROOT is not None:
        assert "ind.cora.graph" not in str(error.value)
    with pytest.raises(ValueError, match="unknown Planetoid"):
        load_planetoid("reddit", root=tmp_path)


@needs_planetoid
def test_pubmed_without_allx_says_so():
    if (ROOT / "planetoid/ind.pubmed.allx").exists():
        pytest.skip("this data folder has ind.pubmed.allx")
    with pytest.raises(FileNotFoundError, match=r"ind\.pubmed\.allx"):
        load_planetoid("pubmed", root=ROOT)


def test_root_comes_from_the_environment(tmp_path, monkeypatch):
    monkeypatch.setenv(DATA_ENV, str(tmp_path))
    with pytest.raises(FileNotFoundError, match=re.escape(str(tmp_path / "planetoid"))):
        load_planetoid("cora")


@needs_planetoid
def test_download_fetches_only_the_missing_files(tmp_path, cora):
    mirror = tmp_path / "mirror"
    mirror.mkdir()
    for part in PLANETOID_PARTS:
        shutil.copy(ROOT / f"planetoid/ind.cora.{part}", mirror)
    target = tmp_path / "data"
    (target / "planetoid").mkdir(parents=True)
    shutil.copy(ROOT / "planetoid/ind.cora.graph", target / "planetoid")
    (mirror / "ind.cora.graph").unlink()  # would fail if it were fetched again
    data = load_planetoid("cora", root=target, download=True, base_url=mirror.as_uri())
    assert sorted(p.name for p in (target / "planetoid").iterdir()) == sorted(
        f"ind.cora.{p}" for p in PLANETOID_PARTS
    )
    for key in ("x", "y", "edge_index", "train_mask", "val_mask", "test_mask"):
        assert torch.equal(getattr(data, key), getattr(cora, key)), key


def test_failed_download_leaves_no_file(tmp_path):
    with pytest.raises(OSError, match="could not download"):
        load_planetoid("cora", root=tmp_path, download=True, base_url=(tmp_path / "x").as_uri())
    assert list((tmp_path / "planetoid").iterdir()) == []


# --- synthetic graph and karate club ---------------------------------------------------------


def test_synthetic_citation_graph():
    data = synthetic_citation_graph(generator=make_generator(0))
    assert (data.num_nodes, data.num_features, data.num_classes) == (2708, 1433, 7)
    assert_split(data, 140, 500, 1000)
    assert torch.equal(torch.bincount(data.y[data.train_mask]), torch.full((7,), 20))
    assert_undirected_simple(data)
    source, target = data.edge_index
    homophily = (data.y[source] == data.y[target]).float().mean()
    expected_in = 0.008 * 2708 / 7  # expected same-class neighbours per node ~ 3.1
    expected_out = 0.0003 * 2708 * 6 / 7  # ~ 0.7
    assert homophily == pytest.approx(expected_in / (expected_in + expected_out), abs=0.05)
    assert data.num_edges / 2708 == pytest.approx(expected_in + expected_out, rel=0.1)
    # Words of a node's own topic are over-represented.
    raw = (data.x > 0).float()
    own_topic = torch.arange(1433)[None, :] % 7 == data.y[:, None]
    assert (raw * own_topic).sum() / raw.sum() > 0.3
    again = synthetic_citation_graph(generator=make_generator(0))
    assert torch.equal(again.edge_index, data.edge_index) and torch.equal(again.x, data.x)
    with pytest.raises(ValueError, match="too few"):
        synthetic_citation_graph(num_nodes=1000)


def test_synthetic_graph_scales_with_edges_not_nodes_squared():
    data = synthetic_citation_graph(
        num_nodes=20000, num_features=16, p_in=0.01, p_out=0.0005, generator=make_generator(1)
    )
    expected = 20000 * (0.01 * 20000 / 7 + 0.0005 * 20000 * 6 / 7)  # ~ 2.3e5 directed edges
    assert data.num_edges == pytest.approx(expected, rel=0.05)


def test_karate_club():
    data = karate_club()
    assert (data.num_nodes, data.num_edges, data.num_classes) == (34, 156, 2)
    assert_undirected_simple(data)
    assert torch.bincount(data.y).tolist() == [17, 17]
    assert data.y[0] == 0 and data.y[33] == 1  # Mr. Hi and the officer
    assert data.train_mask.nonzero().flatten().tolist() == [0, 33]
    assert_split(data, 2, 0, 32)


def test_graph_data_to_device(device):
    data = karate_club().to(device)
    for value in (data.x, data.y, data.edge_index, data.train_mask, data.val_mask):
        assert value.device.type == device.type
    assert data.num_classes == 2 and "34 nodes" in repr(data)
