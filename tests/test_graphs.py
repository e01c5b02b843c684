"""Graph matrices and edge lists: Laplacian identities, the lecture's example and its slip,
isolated nodes, directed and duplicate edges, and agreement with networkx and PyG."""

import networkx as nx
import pytest
import torch

from vislearn.graphs import (
    add_self_loops,
    coalesce,
    degree,
    edge_index_from_networkx,
    gcn_norm,
    gcn_propagation_matrix,
    graph_fourier_project,
    graph_fourier_reconstruct,
    grid_graph,
    laplacian,
    laplacian_eigenbasis,
    lecture_example,
    normalized_laplacian,
    random_walk_laplacian,
    remove_self_loops,
    slide_l_norm,
    to_dense_adjacency,
    triangle_mesh_graph,
)
from vislearn.testing import assert_close, make_generator

F64 = torch.float64


def random_undirected_graph(seed: int, num_nodes: int = 12, p: float = 0.25) -> nx.Graph:
    """An Erdős–Rényi graph; with p = 0.25 on 12 nodes it often has isolated nodes."""
    return nx.gnp_random_graph(num_nodes, p, seed=seed)


def dense(graph: nx.Graph, device) -> torch.Tensor:
    edge_index = edge_index_from_networkx(graph).to(device)
    return to_dense_adjacency(edge_index, graph.number_of_nodes(), dtype=F64)


def random_edges(seed: int, num_nodes: int, num_edges: int, device) -> torch.Tensor:
    """Directed edges with duplicates and self-loops possible; the last two nodes isolated."""
    g = make_generator(seed)
    return torch.randint(num_nodes - 2, (2, num_edges), generator=g).to(device)


# --- the lecture's example -------------------------------------------------------------------


def test_slide_l_norm_reproduces_the_printed_matrix(device):
    A, printed = lecture_example()
    assert_close(slide_l_norm(A.to(device)), printed.to(device), atol=5e-5, rtol=0)


def test_lecture_example_is_directed_and_its_l_norm_is_no_laplacian(device):
    A, printed = lecture_example()
    A, printed = A.to(device, F64), printed.to(device, F64)
    assert not torch.equal(A, A.T)
    edge_index = A.nonzero().T
    out_degree, in_degree = (
        degree(edge_index, 5, "out", dtype=F64),
        degree(edge_index, 5, "in", dtype=F64),
    )
    assert out_degree.tolist() == [3, 3, 2, 1, 2] == A.sum(1).tolist()
    assert in_degree.tolist() == [2, 1, 3, 2, 3] == A.sum(0).tolist()
    # What the slide meant: neither matches the printed numbers.
    for intended in (normalized_laplacian(A), gcn_propagation_matrix(A)):
        assert (intended - printed).abs().max() > 0.5
    L = normalized_laplacian(A)
    assert_close(torch.diagonal(L), torch.ones(5, dtype=F64, device=device))
    d = A.sum(1)
    assert_close(L[0, 2], -1 / torch.sqrt(d[0] * d[2]))


# --- Laplacian identities on random undirected graphs ------------------------------------------


@pytest.mark.parametrize("seed", range(4))
def test_laplacians_match_networkx_and_their_identities(device, seed):
    graph = random_undirected_graph(seed)
    A = dense(graph, device)
    n = A.shape[0]
    L, L_sym, L_rw = laplacian(A), normalized_laplacian(A), random_walk_laplacian(A)
    expected_L = torch.as_tensor(nx.laplacian_matrix(graph).toarray(), dtype=F64)
    expected_sym = torch.as_tensor(nx.normalized_laplacian_matrix(graph).toarray(), dtype=F64)
    assert_close(L, expected_L.to(device))
    assert_close(L_sym, expected_sym.to(device))
    zeros = torch.zeros(n, dtype=F64, device=device)
    assert_close(L.sum(dim=1), zeros)  # rows of L and L_rw sum to zero
    assert_close(L_rw.sum(dim=1), zeros)
    eig_L = torch.linalg.eigvalsh(L)
    eig_sym = torch.linalg.eigvalsh(L_sym)
    assert eig_L.min() > -1e-10, "L must be positive semi-definite"
    assert eig_sym.min() > -1e-10 and eig_sym.max() < 2 + 1e-10
    # One zero eigenvalue per connected component (isolated nodes included) for both.
    components = nx.number_connected_components(graph)
    assert int((eig_L.abs() < 1e-9).sum()) == components
    assert int((eig_sym.abs() < 1e-9).sum()) == components
    # L_rw = D^-1/2 L_sym D^1/2 on nodes with edges: the same spectrum.
    eig_rw = torch.linalg.eigvals(L_rw).real.sort().values
    assert_close(eig_rw, eig_sym)
    # x^T L x = sum over undirected edges of (x_i - x_j)^2.
    x = torch.randn(n, dtype=F64, generator=make_generator(seed)).to(device)
    i, j = torch.tensor(list(graph.edges), dtype=torch.long).reshape(-1, 2).T.to(device)
    assert_close(x @ L @ x, ((x[i] - x[j]) ** 2).sum())


@pytest.mark.parametrize("seed", range(3))
def test_gcn_propagation_matrix_of_an_undirected_graph(device, seed):
    A = dense(random_undirected_graph(seed), device)
    n = A.shape[0]
    P = gcn_propagation_matrix(A)
    assert_close(P, P.T)
    assert_close(P, gcn_propagation_matrix(A, direction="in"))
    d = A.sum(1) + 1
    expected = (A + torch.eye(n, dtype=F64, device=device)) / torch.sqrt(d[:, None] * d[None, :])
    assert_close(P, expected)
    eigenvalues = torch.linalg.eigvalsh(P)  # renormalisation: spectrum in (-1, 1]
    assert eigenvalues.max() < 1 + 1e-10 and eigenvalues.min() > -1
    # The edge list form gives the same matrix.
    edge_index, weight = gcn_norm(A.nonzero().T, n, dtype=F64)
    assert_close(to_dense_adjacency(edge_index, n, weight), P)


def test_isolated_nodes_give_finite_values_and_gradients(device):
    A = torch.zeros(6, 6, dtype=F64, device=device)
    A[0, 1] = A[1, 0] = A[1, 2] = A[2, 1] = 1.0  # nodes 3, 4, 5 isolated
    A.requires_grad_(True)
    for f in (laplacian, normalized_laplacian, random_walk_laplacian, gcn_propagation_matrix):
        M = f(A)
        assert torch.isfinite(M).all(), f.__name__
        (grad,) = torch.autograd.grad(M.square().sum(), A)
        assert torch.isfinite(grad).all(), f.__name__
    L = normalized_laplacian(A).detach()
    assert (L[3:] == 0).all() and (L[:, 3:] == 0).all()  # Chung's convention
    P = gcn_propagation_matrix(A).detach()
    assert_close(torch.diagonal(P)[3:], torch.ones(3, dtype=F64, device=device))
    _, weight = gcn_norm(A.detach().nonzero().T, 6)
    assert torch.isfinite(weight).all()
    assert_close(slide_l_norm(A.detach())[3:, :], torch.ones(3, 6, dtype=F64, device=device))


# --- directed and duplicate edges ------------------------------------------------------------


def test_directed_edges_orientation_and_degrees(device):
    edge_index = torch.tensor([[0, 0, 1, 3], [1, 2, 2, 0]], device=device)  # 0->1, 0->2, ...
    A = to_dense_adjacency(edge_index, 4)
    assert A[0, 1] == 1 and A[1, 0] == 0
    assert degree(edge_index, 4, "out").tolist() == [2, 1, 0, 1] == A.sum(1).tolist()
    assert degree(edge_index, 4, "in").tolist() == [1, 1, 2, 0] == A.sum(0).tolist()
    with pytest.raises(ValueError, match="direction"):
        degree(edge_index, 4, "both")
    # gcn_norm normalises by in-degree (PyG); the dense form agrees with direction="in" only.
    edge_index_n, weight = gcn_norm(edge_index, 4, dtype=F64)
    P = to_dense_adjacency(edge_index_n, 4, weight)
    assert_close(P, gcn_propagation_matrix(A.double(), direction="in"))
    assert (P - gcn_propagation_matrix(A.double(), direction="out")).abs().max() > 0.1


def test_duplicate_edges(device):
    edge_index = torch.tensor([[0, 0, 0, 2, 2], [1, 1, 2, 1, 1]], device=device)
    weight = torch.tensor([0.5, 1.5, 1.0, 2.0, 3.0], device=device)
    assert to_dense_adjacency(edge_index, 3).tolist() == [[0, 1, 1], [0, 0, 0], [0, 1, 0]]
    assert to_dense_adjacency(edge_index, 3, weight)[0, 1] == 2.0  # weights add
    merged, merged_weight = coalesce(edge_index, 3, weight)
    assert merged.tolist() == [[0, 0, 2], [1, 2, 1]]
    assert merged_weight.tolist() == [2.0, 1.0, 5.0]
    assert coalesce(edge_index, 3)[1] is None
    assert degree(edge_index, 3, "out").tolist() == [3, 0, 2]  # every listed edge counts
    assert degree(merged, 3, "out").tolist() == [2, 0, 1]


def test_self_loops(device):
    edge_index = torch.tensor([[0, 1, 1], [1, 1, 2]], device=device)
    weight = torch.tensor([1.0, 5.0, 1.0], device=device)
    looped, looped_weight = add_self_loops(edge_index, 4, weight, fill_value=2.0)
    assert looped.tolist() == [[0, 1, 0, 1, 2, 3], [1, 2, 0, 1, 2, 3]]
    assert looped_weight.tolist() == [1.0, 1.0, 2.0, 5.0, 2.0, 2.0]  # node 1 keeps its loop
    twice = torch.tensor([[1, 1, 0], [1, 1, 1]], device=device)  # a loop listed twice
    looped, looped_weight = add_self_loops(twice, 2, torch.tensor([3.0, 4.0, 1.0], device=device))
    assert looped.tolist() == [[0, 0, 1], [1, 0, 1]] and looped_weight.tolist() == [1, 1, 4]
    assert add_self_loops(twice, 2)[1] is None
    removed, removed_weight = remove_self_loops(edge_index, weight)
    assert removed.tolist() == [[0, 1], [1, 2]] and removed_weight.tolist() == [1.0, 1.0]


@pytest.mark.parametrize("seed", range(3))
def test_gcn_norm_matches_pyg(device, seed):
    pyg = pytest.importorskip("torch_geometric.nn.conv.gcn_conv")
    edge_index = random_edges(seed, 10, 25, device)  # duplicates, self-loops, isolated nodes
    weight = torch.rand(25, generator=make_generator(seed)).to(device)
    for w in (None, weight):
        ours = gcn_norm(edge_index, 10, edge_weight=w)
        theirs = pyg.gcn_norm(edge_index, w, 10, add_self_loops=True)
        assert torch.equal(ours[0], theirs[0])
        assert_close(ours[1], theirs[1])
    ours = gcn_norm(edge_index, 10, add_self_loops=False)
    theirs = pyg.gcn_norm(edge_index, None, 10, add_self_loops=False)
    assert_close(ours[1], theirs[1])


# --- edge lists from networkx and example graphs ---------------------------------------------


def test_edge_index_from_networkx():
    undirected = nx.Graph([("a", "b"), ("b", "c"), ("c", "c")])
    edge_index = edge_index_from_networkx(undirected)
    assert edge_index.shape == (2, 5)  # two edges both ways, the self-loop once
    A = to_dense_adjacency(edge_index, 3)
    assert torch.equal(A, torch.as_tensor(nx.to_numpy_array(undirected), dtype=torch.float32))
    directed = nx.DiGraph([(0, 1), (2, 1)])
    assert edge_index_from_networkx(directed).tolist() == [[0, 2], [1, 1]]
    assert edge_index_from_networkx(nx.empty_graph(3)).shape == (2, 0)


def test_grid_graph_matches_networkx():
    edge_index, pos = grid_graph(3, 4)
    assert edge_index.shape == (2, 2 * (3 * 3 + 2 * 4))
    expected = nx.grid_2d_graph(3, 4)  # nodes (row, col) in row-major order
    A = to_dense_adjacency(edge_index, 12)
    assert torch.equal(A, torch.as_tensor(nx.to_numpy_array(expected), dtype=torch.float32))
    assert pos[5].tolist() == [1.0, 1.0] and pos[7].tolist() == [3.0, 1.0]  # (x, y) = (c, r)


def test_triangle_mesh_graph():
    h, w = 4, 5
    edge_index, pos, faces = triangle_mesh_graph(h, w)
    num_edges = edge_index.shape[1] // 2
    assert faces.shape == (2 * (h - 1) * (w - 1), 3)
    assert len(pos) - num_edges + len(faces) == 1  # Euler characteristic of a disk
    A = to_dense_adjacency(edge_index, h * w)
    assert torch.equal(A, A.T) and torch.diagonal(A).sum() == 0
    for a, b, c in faces.tolist():  # every side of every face is an edge
        assert A[a, b] == A[b, c] == A[c, a] == 1
    p = pos[faces]  # (F, 3, 2): all faces share one orientation
    cross = (p[:, 1, 0] - p[:, 0, 0]) * (p[:, 2, 1] - p[:, 0, 1]) - (p[:, 1, 1] - p[:, 0, 1]) * (
        p[:, 2, 0] - p[:, 0, 0]
    )
    assert (cross > 0).all() or (cross < 0).all()


# --- eigenbasis and graph Fourier transform --------------------------------------------------


def test_laplacian_eigenbasis_and_fourier_round_trip(device):
    edge_index, _ = grid_graph(4, 6)
    L = laplacian(to_dense_adjacency(edge_index.to(device), 24, dtype=F64))
    values, U = laplacian_eigenbasis(L)
    assert (values[1:] >= values[:-1]).all()
    assert_close(U.T @ U, torch.eye(24, dtype=F64, device=device))
    assert_close(L @ U, U * values)
    assert_close(values[0], torch.tensor(0.0, dtype=F64, device=device))
    assert_close(U[:, 0], torch.full((24,), 24**-0.5, dtype=F64, device=device))  # constant
    peaks = U.gather(0, U.abs().argmax(dim=0, keepdim=True))
    assert (peaks > 0).all()
    signal = torch.randn(24, 3, dtype=F64, generator=make_generator(0)).to(device)
    assert_close(graph_fourier_reconstruct(graph_fourier_project(signal, U), U), signal)
    # A truncated basis gives the least-squares smooth approximation; energy never grows.
    values_k, U_k = laplacian_eigenbasis(L, k=5)
    assert U_k.shape == (24, 5) and torch.equal(values_k, values[:5])
    smooth = graph_fourier_reconstruct(graph_fourier_project(signal, U_k), U_k)
    assert (smooth.T @ L @ smooth).diagonal().sum() <= (signal.T @ L @ signal).diagonal().sum()


def test_laplacian_eigenbasis_rejects_a_directed_graph():
    A, _ = lecture_example()
    with pytest.raises(ValueError, match="symmetric"):
        laplacian_eigenbasis(laplacian(A))
