r"""Graphs as edge lists and as matrices: adjacency, degree, Laplacians, the GCN propagation
matrix, and the Laplacian's eigenvectors as a Fourier basis.

Conventions (shared by :mod:`vislearn.gnn` and :mod:`vislearn.data`):

- **Edge list.** ``edge_index`` is a ``(2, E)`` long tensor ``[source; target]``, as in
  PyTorch Geometric (PyG). Messages flow from source to target: an edge ``j -> i`` lets node
  ``i`` read node ``j``. An undirected graph stores every edge in both directions.
- **Adjacency.** :math:`\mathbf{A}[i, j] = 1` for an edge :math:`i \to j`, so an undirected
  graph has a symmetric :math:`\mathbf{A}`.
- **Lecture notation.** Node features are the *columns* of :math:`\mathbf{H}` (``D x N``) and a
  graph layer is :math:`\mathbf{H}_{k+1} = \mathbf{a}[\boldsymbol\beta_k \mathbf{1}^T +
  \boldsymbol\Omega_k \mathbf{H}_k \tilde{\mathbf{A}}]`. Column :math:`n` of
  :math:`\mathbf{H}\tilde{\mathbf{A}}` is :math:`\sum_m \mathbf{H}[:, m]\,
  \tilde{\mathbf{A}}[m, n]`: node :math:`n` sums over the sources :math:`m` of its edges
  :math:`m \to n`, which is exactly the source -> target flow above. Code stores features
  row-wise, ``x = H^T`` of shape ``(N, F)``, where :math:`\mathbf{H}\tilde{\mathbf{A}}` becomes
  :math:`\tilde{\mathbf{A}}^T \mathbf{x}`.
- **Degree.** The matrix functions use the lecture's :math:`\mathbf{D}` = diagonal of the *row
  sums* of :math:`\mathbf{A}`, the out-degree. For an undirected graph row and column sums are
  equal; for a directed one (like the lecture's example) they are not, and
  :func:`gcn_propagation_matrix` lets you choose. PyG's ``gcn_norm``, matched by
  :func:`gcn_norm` here, uses the in-degree (column sums): see its docstring.
- **Isolated nodes.** A node of degree 0 gets :math:`d^{-1/2} = d^{-1} = 0`, never inf or NaN.
- **Duplicate edges.** :func:`to_dense_adjacency` without weights writes 1 however often an edge
  is listed (the adjacency of a simple graph); with weights, duplicates are parallel edges and
  their weights add, as in :func:`coalesce`. Edge-list functions (:func:`degree`,
  :func:`gcn_norm`) count every listed edge, as PyG does; :func:`coalesce` first if the list
  may hold duplicates.
"""

from __future__ import annotations

from typing import Literal

import torch

Direction = Literal["out", "in"]


# ---------------------------------------------------------------------------------------------
# Edge lists
# ---------------------------------------------------------------------------------------------


def edge_index_from_networkx(graph) -> torch.Tensor:
    """The ``(2, E)`` edge list of a networkx graph, nodes numbered in ``graph.nodes`` order.

    An undirected graph gives each edge in both directions (a self-loop once); a directed
    graph gives its edges as they are.
    """
    index = {node: i for i, node in enumerate(graph.nodes)}
    edges = [(index[u], index[v]) for u, v in graph.edges()]
    if not graph.is_directed():
        edges += [(v, u) for u, v in edges if u != v]
    if not edges:
        return torch.empty(2, 0, dtype=torch.long)
    return torch.tensor(edges, dtype=torch.long).t().contiguous()  # (2, E)


def to_dense_adjacency(
    edge_index: torch.Tensor,
    num_nodes: int,
    edge_weight: torch.Tensor | None = None,
    dtype: torch.dtype | None = None,
) -> torch.Tensor:
    """The ``(N, N)`` adjacency matrix with ``A[i, j]`` for the edge ``i -> j``.

    Without ``edge_weight`` every listed edge gives 1, duplicates included (so ``A`` is the
    0/1 adjacency of the simple graph). With ``edge_weight`` (shape ``(E,)``) the weights of
    duplicate edges are added. ``dtype`` defaults to the weights' dtype, else float32.
    """
    dtype = dtype or (edge_weight.dtype if edge_weight is not None else torch.float32)
    A = torch.zeros(num_nodes, num_nodes, dtype=dtype, device=edge_index.device)  # (N, N)
    source, target = edge_index
    if edge_weight is None:
        A[source, target] = 1
    else:
        A.index_put_((source, target), edge_weight.to(dtype), accumulate=True)
    return A


def coalesce(
    edge_index: torch.Tensor, num_nodes: int, edge_weight: torch.Tensor | None = None
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Sort edges by (source, target) and merge duplicates, adding their weights.

    Returns ``(edge_index, edge_weight)``; ``edge_weight`` stays ``None`` if none was given.
    """
    key = edge_index[0] * num_nodes + edge_index[1]  # (E,) one integer per (source, target)
    unique, inverse = torch.unique(key, sorted=True, return_inverse=True)
    merged = torch.stack([unique // num_nodes, unique % num_nodes])  # (2, E')
    if edge_weight is None:
        return merged, None
    weight = edge_weight.new_zeros(unique.numel()).index_add_(0, inverse, edge_weight)
    return merged, weight


def remove_self_loops(
    edge_index: torch.Tensor, edge_weight: torch.Tensor | None = None
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Drop every edge ``i -> i``. Returns ``(edge_index, edge_weight)``."""
    keep = edge_index[0] != edge_index[1]  # (E,)
    return edge_index[:, keep], None if edge_weight is None else edge_weight[keep]


def add_self_loops(
    edge_index: torch.Tensor,
    num_nodes: int,
    edge_weight: torch.Tensor | None = None,
    fill_value: float = 1.0,
) -> tuple[torch.Tensor, torch.Tensor | None]:
    r"""Give every node exactly one self-loop ``i -> i``, listed after the other edges in node
    order. Returns ``(edge_index, edge_weight)``.

    A node that already had a loop keeps its weight (the last one listed, if several); the
    others get ``fill_value``. So a graph with self-loops is not counted twice, and for one
    without, this is the edge list of :math:`\mathbf{A} + \mathbf{I}`. Same edges, order and
    weights as PyG's ``add_remaining_self_loops``.
    """
    is_loop = edge_index[0] == edge_index[1]  # (E,)
    loops = torch.arange(num_nodes, device=edge_index.device).expand(2, -1)  # (2, N)
    merged = torch.cat([edge_index[:, ~is_loop], loops], dim=1)  # (2, E' + N)
    if edge_weight is None:
        return merged, None
    position = torch.arange(edge_index.shape[1], device=edge_index.device)[is_loop]
    last = torch.full((num_nodes,), -1, dtype=torch.long, device=edge_index.device)
    last = last.scatter_reduce(0, edge_index[0, is_loop], position, reduce="amax")  # (N,)
    loop_weight = torch.where(
        last >= 0, edge_weight[last.clamp(min=0)], edge_weight.new_full((num_nodes,), fill_value)
    )
    return merged, torch.cat([edge_weight[~is_loop], loop_weight])


def degree(
    edge_index: torch.Tensor,
    num_nodes: int,
    direction: Direction = "out",
    edge_weight: torch.Tensor | None = None,
    dtype: torch.dtype = torch.float32,
) -> torch.Tensor:
    """Out-degree (edges leaving each node, the row sums of ``A``) or in-degree (edges
    arriving, the column sums), shape ``(N,)``. Every listed edge counts, with its weight."""
    if direction not in ("out", "in"):
        raise ValueError(f"direction must be 'out' or 'in', got {direction!r}")
    node = edge_index[0] if direction == "out" else edge_index[1]
    weight = (
        torch.ones(node.shape, dtype=dtype, device=node.device)
        if edge_weight is None
        else edge_weight.to(dtype)
    )
    return torch.zeros(num_nodes, dtype=dtype, device=node.device).index_add_(0, node, weight)


def gcn_norm(
    edge_index: torch.Tensor,
    num_nodes: int,
    add_self_loops: bool = True,
    edge_weight: torch.Tensor | None = None,
    dtype: torch.dtype = torch.float32,
) -> tuple[torch.Tensor, torch.Tensor]:
    r"""The GCN propagation matrix as an edge list: ``(edge_index, edge_weight)``.

    The weight of the edge :math:`j \to i` is :math:`\tilde a_{ji} / \sqrt{\tilde d_j \tilde
    d_i}`, with self-loops added (:func:`add_self_loops`) and :math:`\tilde d` the weighted
    **in-degree**, i.e. the column sums of :math:`\mathbf{A} + \mathbf{I}`. This is exactly
    PyG's ``gcn_norm`` (default ``flow="source_to_target"``): the node that receives messages
    is normalised by how many it receives. For a graph without self-loops it equals
    :func:`gcn_propagation_matrix` with ``direction="in"``; for an undirected graph in- and
    out-degree agree and it equals the lecture's :math:`\mathbf{D}^{-1/2}(\mathbf{A} +
    \mathbf{I})\mathbf{D}^{-1/2}`. Memory is ``O(E)``: nothing of size ``N x N`` is formed.
    """
    if add_self_loops:
        edge_index, edge_weight = _add_self_loops(edge_index, num_nodes, edge_weight)
    if edge_weight is None:
        edge_weight = torch.ones(edge_index.shape[1], dtype=dtype, device=edge_index.device)
    edge_weight = edge_weight.to(dtype)
    d = degree(edge_index, num_nodes, "in", edge_weight, dtype)  # (N,)
    d_inv_sqrt = _inverse_sqrt(d)
    source, target = edge_index
    return edge_index, d_inv_sqrt[source] * edge_weight * d_inv_sqrt[target]


_add_self_loops = add_self_loops  # gcn_norm's argument of the same name shadows it there


# ---------------------------------------------------------------------------------------------
# Dense matrices: Laplacians and the GCN propagation matrix
# ---------------------------------------------------------------------------------------------


def _inverse_sqrt(d: torch.Tensor) -> torch.Tensor:
    """:math:`d^{-1/2}` where :math:`d > 0`, else 0 (finite values and gradients)."""
    positive = d > 0
    return torch.where(positive, torch.where(positive, d, 1).rsqrt(), 0)


def _degrees(A: torch.Tensor, direction: Direction) -> torch.Tensor:
    if direction not in ("out", "in"):
        raise ValueError(f"direction must be 'out' or 'in', got {direction!r}")
    return A.sum(dim=-1) if direction == "out" else A.sum(dim=-2)  # (N,)


def laplacian(A: torch.Tensor) -> torch.Tensor:
    r"""The graph Laplacian :math:`\mathbf{L} = \mathbf{D} - \mathbf{A}`, ``D`` = row sums.

    :math:`\mathbf{L}[i, i] = |\mathcal{N}(i)|` and :math:`\mathbf{L}[i, j] = -1` for a
    neighbour :math:`j`, as on the slide. Every row sums to zero. For a symmetric
    :math:`\mathbf{A}` it is positive semi-definite: :math:`\mathbf{x}^T\mathbf{L}\mathbf{x} =
    \tfrac12\sum_{ij} A_{ij}(x_i - x_j)^2`.
    """
    return torch.diag_embed(_degrees(A, "out")) - A


def normalized_laplacian(A: torch.Tensor) -> torch.Tensor:
    r"""The symmetric normalised Laplacian :math:`\mathbf{I} - \mathbf{D}^{-1/2}\mathbf{A}
    \mathbf{D}^{-1/2}`, ``D`` = row sums.

    Computed as :math:`\mathbf{D}^{-1/2}(\mathbf{D} - \mathbf{A})\mathbf{D}^{-1/2}`, which is
    the same matrix on every node with an edge and gives an isolated node a zero row and column
    (Chung's convention, also networkx's). Each connected component, isolated nodes included,
    then adds one zero eigenvalue, and for a symmetric :math:`\mathbf{A}` every eigenvalue lies
    in :math:`[0, 2]`.
    """
    d_inv_sqrt = _inverse_sqrt(_degrees(A, "out"))  # (N,)
    return d_inv_sqrt[:, None] * laplacian(A) * d_inv_sqrt[None, :]


def random_walk_laplacian(A: torch.Tensor) -> torch.Tensor:
    r"""The random-walk Laplacian :math:`\mathbf{I} - \mathbf{D}^{-1}\mathbf{A}`, ``D`` = row
    sums: one minus the transition matrix of a random walk. An isolated node gets a zero row.
    """
    d = _degrees(A, "out")
    d_inv = torch.where(d > 0, 1 / torch.where(d > 0, d, 1), 0)  # (N,)
    return d_inv[:, None] * laplacian(A)


def gcn_propagation_matrix(A: torch.Tensor, direction: Direction = "out") -> torch.Tensor:
    r"""The GCN propagation matrix :math:`\tilde{\mathbf{A}} = \tilde{\mathbf{D}}^{-1/2}
    (\mathbf{A} + \mathbf{I})\tilde{\mathbf{D}}^{-1/2}`, :math:`\tilde{\mathbf{D}}` the degrees
    of :math:`\mathbf{A} + \mathbf{I}`.

    This is the slide's :math:`\mathbf{L}'` ("renormalisation trick", Kipf and Welling 2017),
    with the degrees taken *after* adding self-loops so that no degree is zero.
    ``direction="out"`` (default) uses row sums, the lecture's :math:`\mathbf{D}`;
    ``direction="in"`` uses column sums and matches :func:`gcn_norm` and PyG on directed
    graphs. Undirected graphs give the same matrix either way. ``A + I`` is taken literally:
    a node that already has a self-loop gets 2 on the diagonal (:func:`gcn_norm` keeps its
    weight, see :func:`add_self_loops`).
    """
    A_hat = A + torch.eye(A.shape[-1], dtype=A.dtype, device=A.device)
    d_inv_sqrt = _inverse_sqrt(_degrees(A_hat, direction))  # (N,)
    return d_inv_sqrt[:, None] * A_hat * d_inv_sqrt[None, :]


def slide_l_norm(A: torch.Tensor) -> torch.Tensor:
    r"""The matrix printed as ``L_norm`` on the lecture's "Normalized Graph Laplacian" slide:
    :math:`1 - \mathbf{D}^{-1/2}\mathbf{A}\mathbf{D}^{-1/2}` taken *element by element*.

    A slip, kept so the book can show it: every entry is subtracted from one, so non-edges
    become 1 instead of 0. The intended matrices are :func:`normalized_laplacian` and
    :func:`gcn_propagation_matrix`. ``D`` is the row sums of ``A``, no self-loops.
    """
    d_inv_sqrt = _inverse_sqrt(_degrees(A, "out"))
    return 1 - d_inv_sqrt[:, None] * A * d_inv_sqrt[None, :]


def lecture_example() -> tuple[torch.Tensor, torch.Tensor]:
    """The 5-node ``A`` and the ``L_norm`` printed on the "Normalized Graph Laplacian" slide.

    ``A`` is not symmetric (a directed graph: row sums 3, 3, 2, 1, 2; column sums 2, 1, 3, 2,
    3). The printed ``L_norm`` (4 decimals) is ``slide_l_norm(A)``, not a Laplacian.
    """
    A = torch.tensor(
        [
            [0.0, 0.0, 1.0, 1.0, 1.0],
            [1.0, 0.0, 1.0, 0.0, 1.0],
            [1.0, 0.0, 0.0, 0.0, 1.0],
            [0.0, 1.0, 0.0, 0.0, 0.0],
            [0.0, 0.0, 1.0, 1.0, 0.0],
        ]
    )
    printed_l_norm = torch.tensor(
        [
            [1.0000, 1.0000, 0.5918, 0.4226, 0.5918],
            [0.6667, 1.0000, 0.5918, 1.0000, 0.5918],
            [0.5918, 1.0000, 1.0000, 1.0000, 0.5000],
            [1.0000, 0.4226, 1.0000, 1.0000, 1.0000],
            [1.0000, 1.0000, 0.5000, 0.2929, 1.0000],
        ]
    )
    return A, printed_l_norm


# ---------------------------------------------------------------------------------------------
# The Laplacian's eigenvectors: a smooth basis and the graph Fourier transform
# ---------------------------------------------------------------------------------------------


def laplacian_eigenbasis(
    L: torch.Tensor, k: int | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    r"""The ``k`` smallest eigenvalues ``(k,)`` and their orthonormal eigenvectors ``(N, k)``
    (as columns) of a symmetric Laplacian, eigenvalues ascending (all ``N`` if ``k`` is None).

    Small eigenvalues belong to smooth vectors: :math:`\mathbf{u}^T\mathbf{L}\mathbf{u} =
    \lambda` measures how much :math:`\mathbf{u}` changes across edges. Each eigenvector's sign
    is fixed so that its largest-magnitude entry is positive, so plots do not flip between
    runs or devices (eigenvectors of repeated eigenvalues are still only defined up to a
    rotation).
    """
    if not torch.allclose(L, L.mT):
        raise ValueError("laplacian_eigenbasis needs a symmetric L (an undirected graph)")
    eigenvalues, eigenvectors = torch.linalg.eigh(L)  # ascending, (N,) and (N, N)
    if k is not None:
        eigenvalues, eigenvectors = eigenvalues[:k], eigenvectors[:, :k]
    peak = eigenvectors.gather(0, eigenvectors.abs().argmax(dim=0, keepdim=True))  # (1, k)
    return eigenvalues, eigenvectors * torch.where(peak < 0, -1.0, 1.0).to(eigenvectors.dtype)


def graph_fourier_project(signal: torch.Tensor, basis: torch.Tensor) -> torch.Tensor:
    r"""Coefficients :math:`\mathbf{U}^T\mathbf{x}` of a node signal ``(N,)`` or ``(N, C)`` in
    an orthonormal basis ``(N, k)``, e.g. from :func:`laplacian_eigenbasis`; shape ``(k,)``
    or ``(k, C)``."""
    return basis.mT @ signal


def graph_fourier_reconstruct(coefficients: torch.Tensor, basis: torch.Tensor) -> torch.Tensor:
    r"""The signal :math:`\mathbf{U}\mathbf{c}` with coefficients ``(k,)`` or ``(k, C)``: with
    the first ``k`` eigenvectors, the smoothest approximation (exact for ``k = N``)."""
    return basis @ coefficients


# ---------------------------------------------------------------------------------------------
# Example graphs with positions
# ---------------------------------------------------------------------------------------------


def _both_directions(source: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    return torch.stack([torch.cat([source, target]), torch.cat([target, source])])  # (2, 2E)


def grid_graph(h: int, w: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The ``h x w`` pixel grid as a graph: 4-neighbours, both directions.

    Node ``r * w + c`` is pixel ``(r, c)`` (row-major, as ``image.flatten()``). Returns
    ``edge_index`` ``(2, E)`` and positions ``(N, 2)`` as ``(x, y) = (c, r)``.
    """
    ids = torch.arange(h * w).view(h, w)
    source = torch.cat([ids[:, :-1].flatten(), ids[:-1, :].flatten()])  # right and down
    target = torch.cat([ids[:, 1:].flatten(), ids[1:, :].flatten()])
    rows, cols = torch.meshgrid(torch.arange(h), torch.arange(w), indexing="ij")
    pos = torch.stack([cols.flatten(), rows.flatten()], dim=1).float()  # (N, 2)
    return _both_directions(source, target), pos


def triangle_mesh_graph(h: int, w: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """A flat triangle mesh on an ``h x w`` grid of vertices: each square cell is cut along its
    down-right diagonal into two triangles.

    Returns ``edge_index`` ``(2, E)`` (the triangles' sides, both directions), vertex
    positions ``(N, 2)`` as in :func:`grid_graph`, and faces ``(F, 3)`` (vertex ids, all faces
    with the same orientation, e.g. for ``matplotlib``'s ``tripcolor``).
    """
    ids = torch.arange(h * w).view(h, w)
    a, b = ids[:-1, :-1].flatten(), ids[:-1, 1:].flatten()  # top-left, top-right
    c, d = ids[1:, :-1].flatten(), ids[1:, 1:].flatten()  # bottom-left, bottom-right
    faces = torch.cat([torch.stack([a, d, b], dim=1), torch.stack([a, c, d], dim=1)])  # (F, 3)
    sides = torch.cat([faces[:, [0, 1]], faces[:, [1, 2]], faces[:, [2, 0]]]).T  # (2, 3F)
    undirected, _ = coalesce(torch.sort(sides, dim=0).values, h * w)  # each side once
    _, pos = grid_graph(h, w)
    return _both_directions(*undirected), pos, faces
