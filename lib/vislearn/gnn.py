r"""Graph neural networks: the graph convolution of Kipf and Welling (2017) and the graph
attention of Veličković et al. (2018), on edge lists, plus the node-classification loop.

Graph conventions are those of :mod:`vislearn.graphs`: ``edge_index`` is ``(2, E)``
``[source; target]``, messages flow source -> target, node features are rows of ``x``
``(N, F)``, which is :math:`\mathbf{H}^T` in the lecture's notation (nodes as columns).

The layers are written like PyTorch Geometric's ``GCNConv`` and ``GATConv`` and use the same
parameter names and shapes, so weights copy across; they gather node rows per edge and sum
them back per node (:func:`scatter_sum`), so memory grows with ``E``, never with ``N^2``.
"""

from __future__ import annotations

import copy
import time
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import nn

from vislearn.graphs import Direction, add_self_loops, gcn_norm, gcn_propagation_matrix

# ---------------------------------------------------------------------------------------------
# Graph convolution
# ---------------------------------------------------------------------------------------------


def scatter_sum(src: torch.Tensor, index: torch.Tensor, num_nodes: int) -> torch.Tensor:
    """Sum the rows of ``src`` ``(E, ...)`` into ``num_nodes`` rows: row ``index[e]`` gets
    ``src[e]``. Nodes that no edge points to get zeros.

    Uses ``scatter_add_`` with a broadcast (not copied) index: its backward is a gather that
    keeps only the index, while ``index_add_``'s backward also keeps ``src`` (an ``(E, F)``
    tensor) alive until the backward pass.
    """
    expanded = index.view(-1, *([1] * (src.dim() - 1))).expand_as(src)  # (E, ...), no copy
    return src.new_zeros(num_nodes, *src.shape[1:]).scatter_add_(0, expanded, src)


def gcn_dense(
    x: torch.Tensor,
    A: torch.Tensor,
    weight: torch.Tensor,
    bias: torch.Tensor | None = None,
    direction: Direction = "out",
) -> torch.Tensor:
    r"""One graph convolution written as in the lecture, with dense matrices:
    :math:`\boldsymbol\beta\mathbf{1}^T + \boldsymbol\Omega\mathbf{H}\tilde{\mathbf{A}}`.

    ``x`` ``(N, F)`` is :math:`\mathbf{H}^T`, ``A`` ``(N, N)`` the adjacency, ``weight``
    ``(F', F)`` is :math:`\boldsymbol\Omega`, ``bias`` ``(F',)`` is :math:`\boldsymbol\beta`,
    and :math:`\tilde{\mathbf{A}}` = :func:`~vislearn.graphs.gcn_propagation_matrix` with the
    given ``direction``. Returns the pre-activation transposed back to rows, ``(N, F')``.
    ``O(N^2)`` memory: a reference for small graphs; :class:`GCNLayer` computes the same
    (with ``direction="in"`` on directed graphs) from the edge list.
    """
    H = x.mT  # (F, N): nodes are columns
    out = weight @ H @ gcn_propagation_matrix(A, direction)  # (F', N)
    if bias is not None:
        out = out + bias[:, None]  # beta 1^T
    return out.mT  # (N, F')


class GCNLayer(nn.Module):
    r"""Graph convolution (Kipf and Welling, ICLR 2017) on an edge list.

    .. math:: \mathbf{H}' = \boldsymbol\beta\mathbf{1}^T + \boldsymbol\Omega\mathbf{H}
              \tilde{\mathbf{A}},\qquad \mathbf{h}'_i = \boldsymbol\beta + \sum_{j \to i
              \text{ or } j = i} \frac{\boldsymbol\Omega\mathbf{h}_j}{\sqrt{\tilde d_j
              \tilde d_i}}

    with :math:`\tilde{\mathbf{A}}` from :func:`~vislearn.graphs.gcn_norm` (self-loops added,
    in-degrees, as PyG). Only :math:`\boldsymbol\Omega` (``lin.weight``, ``(out_dim,
    in_dim)``) and :math:`\boldsymbol\beta` (``bias``) are learned; no activation here.

    ``cached=True`` computes the normalised edge weights on the first call and reuses them:
    only for a graph that never changes (transductive training), as PyG's ``cached``.
    """

    def __init__(self, in_dim: int, out_dim: int, bias: bool = True, cached: bool = False):
        super().__init__()
        self.lin = nn.Linear(in_dim, out_dim, bias=False)
        self.bias = nn.Parameter(torch.zeros(out_dim)) if bias else None
        self.cached = cached
        # Normalised graph, when cached; buffers so that .to(device) moves them too.
        self.register_buffer("_cached_edge_index", None, persistent=False)
        self.register_buffer("_cached_edge_weight", None, persistent=False)
        nn.init.xavier_uniform_(self.lin.weight)  # Glorot, as in the paper

    def forward(
        self,
        x: torch.Tensor,
        edge_index: torch.Tensor,
        edge_weight: torch.Tensor | None = None,
    ) -> torch.Tensor:
        num_nodes = x.shape[0]
        if self._cached_edge_index is not None:
            edge_index, weight = self._cached_edge_index, self._cached_edge_weight
        else:
            edge_index, weight = gcn_norm(
                edge_index, num_nodes, edge_weight=edge_weight, dtype=x.dtype
            )
            if self.cached:
                self._cached_edge_index, self._cached_edge_weight = edge_index, weight
        source, target = edge_index  # (E,), (E,); weight (E,)
        h = self.lin(x)  # (N, F') = Omega h_j for every node
        messages = h.index_select(0, source) * weight[:, None]  # (E, F')
        out = scatter_sum(messages, target, num_nodes)  # (N, F')
        return out if self.bias is None else out + self.bias

    def extra_repr(self) -> str:
        return f"cached={self.cached}"


class GINLayer(nn.Module):
    r"""Graph isomorphism network layer (Xu et al., ICLR 2019) on an edge list:

    .. math:: \mathbf{h}'_i = \mathrm{MLP}\Big((1 + \epsilon)\,\mathbf{h}_i
              + \sum_{j \to i} \mathbf{h}_j\Big)

    a *sum* over the neighbours (no normalisation, so the degree is visible to the layer)
    plus the node's own features weighted by :math:`1 + \epsilon`, then a two-layer MLP
    (``in_dim -> hidden_dim -> out_dim``, ReLU). ``train_eps=True`` learns
    :math:`\epsilon`. Parameter names as PyTorch Geometric's ``GINConv`` with that MLP.
    """

    def __init__(
        self,
        in_dim: int,
        out_dim: int,
        hidden_dim: int | None = None,
        eps: float = 0.0,
        train_eps: bool = False,
    ):
        super().__init__()
        hidden_dim = out_dim if hidden_dim is None else hidden_dim
        self.nn = nn.Sequential(
            nn.Linear(in_dim, hidden_dim), nn.ReLU(), nn.Linear(hidden_dim, out_dim)
        )
        eps_value = torch.tensor([float(eps)])
        if train_eps:
            self.eps = nn.Parameter(eps_value)
        else:
            self.register_buffer("eps", eps_value)

    def forward(self, x: torch.Tensor, edge_index: torch.Tensor) -> torch.Tensor:
        source, target = edge_index  # (E,), (E,)
        neighbours = scatter_sum(x.index_select(0, source), target, x.shape[0])  # (N, F)
        return self.nn((1 + self.eps) * x + neighbours)  # (N, out_dim)


# ---------------------------------------------------------------------------------------------
# Graph attention
# ---------------------------------------------------------------------------------------------


def segment_softmax(scores: torch.Tensor, index: torch.Tensor, num_segments: int) -> torch.Tensor:
    r"""Softmax of ``scores`` ``(E, ...)`` over the entries that share ``index`` ``(E,)``.

    For GAT, ``index`` is each edge's target: the weights of the edges arriving at a node sum
    to 1. Stable like :func:`vislearn.softmax.softmax`: each segment's maximum (a running
    ``amax`` per node via ``scatter_reduce``) is subtracted first. A segment whose scores are
    all ``-inf`` gets zeros, not NaN. Memory ``O(E)``.
    """
    shape = (num_segments, *scores.shape[1:])
    expanded = index.view(-1, *([1] * (scores.dim() - 1))).expand_as(scores)  # (E, ...)
    peak = scores.new_full(shape, float("-inf"))
    peak = peak.scatter_reduce(0, expanded, scores.detach(), reduce="amax")  # (N, ...)
    peak = peak.masked_fill(peak == float("-inf"), 0.0)
    e = torch.exp(scores - peak.index_select(0, index))  # (E, ...) each at most 1
    total = scatter_sum(e, index, num_segments)  # (N, ...)
    total = total.masked_fill(total == 0, 1.0)
    return e / total.index_select(0, index)


class GATLayer(nn.Module):
    r"""Graph attention (Veličković et al., ICLR 2018) on an edge list.

    For every edge :math:`j \to i` and head :math:`k`, with
    :math:`\mathbf{z}_j = \boldsymbol\Omega_k\mathbf{h}_j`:

    .. math:: e_{ij} = \mathrm{LeakyReLU}\big(\boldsymbol\phi_k^T[\mathbf{z}_i \,\|\,
              \mathbf{z}_j]\big), \qquad \alpha_{ij} = \mathrm{softmax}_{j \in \mathcal{N}(i)
              \cup \{i\}}(e_{ij}), \qquad \mathbf{h}'_i = \sum_j \alpha_{ij}\mathbf{z}_j

    then the heads are concatenated (``concat=True``) or averaged, and :math:`\boldsymbol\beta`
    is added. This is masked self-attention: node :math:`i`'s query only sees its incoming
    neighbours and itself. Splitting :math:`\boldsymbol\phi_k = [\boldsymbol\phi_k^{\rm dst};
    \boldsymbol\phi_k^{\rm src}]` gives :math:`e_{ij} = \mathrm{LeakyReLU}(\boldsymbol\phi^{\rm
    dst\,T}_k\mathbf{z}_i + \boldsymbol\phi^{\rm src\,T}_k\mathbf{z}_j)`: the two dot products
    are taken once per node and added per edge, so the scores take ``O(E * heads)`` memory
    (the messages ``O(E * heads * out_dim)``), and nothing grows with ``N^2``.

    Parameters (PyG ``GATConv`` names): ``lin.weight`` ``(heads * out_dim, in_dim)`` stacks the
    :math:`\boldsymbol\Omega_k`; ``att_dst`` and ``att_src`` ``(1, heads, out_dim)`` are the
    halves of :math:`\boldsymbol\phi`; ``bias`` is :math:`\boldsymbol\beta`. ``dropout`` drops
    attention weights in training, as in the paper. With ``add_self_loops`` existing
    self-loops are replaced by exactly one per node (as PyG).
    """

    def __init__(
        self,
        in_dim: int,
        out_dim: int,
        heads: int = 1,
        concat: bool = True,
        negative_slope: float = 0.2,
        dropout: float = 0.0,
        add_self_loops: bool = True,
        bias: bool = True,
    ):
        super().__init__()
        self.heads, self.out_dim, self.concat = heads, out_dim, concat
        self.negative_slope, self.dropout = negative_slope, dropout
        self.add_self_loops = add_self_loops
        self.lin = nn.Linear(in_dim, heads * out_dim, bias=False)
        self.att_src = nn.Parameter(torch.empty(1, heads, out_dim))
        self.att_dst = nn.Parameter(torch.empty(1, heads, out_dim))
        self.bias = (
            nn.Parameter(torch.zeros(heads * out_dim if concat else out_dim)) if bias else None
        )
        for weight in (self.lin.weight, self.att_src, self.att_dst):
            nn.init.xavier_uniform_(weight)

    def forward(
        self, x: torch.Tensor, edge_index: torch.Tensor, return_attention: bool = False
    ) -> torch.Tensor | tuple[torch.Tensor, tuple[torch.Tensor, torch.Tensor]]:
        """``x`` ``(N, in_dim)`` -> ``(N, heads * out_dim)`` (concat) or ``(N, out_dim)``.

        With ``return_attention=True`` also returns ``(edge_index, alpha)``: the edges used
        (self-loops included) and their weights ``(E, heads)`` before dropout.
        """
        num_nodes = x.shape[0]
        if self.add_self_loops:
            edge_index, _ = add_self_loops(edge_index, num_nodes)  # exactly one per node
        source, target = edge_index  # (E,), (E,)
        z = self.lin(x).view(num_nodes, self.heads, self.out_dim)  # (N, heads, C)
        score_src = (z * self.att_src).sum(dim=-1)  # (N, heads): phi_src^T z_j
        score_dst = (z * self.att_dst).sum(dim=-1)  # (N, heads): phi_dst^T z_i
        e = score_dst.index_select(0, target) + score_src.index_select(0, source)  # (E, heads)
        e = F.leaky_relu(e, self.negative_slope)
        alpha = segment_softmax(e, target, num_nodes)  # (E, heads)
        weights = F.dropout(alpha, p=self.dropout, training=self.training)
        messages = z.index_select(0, source) * weights[..., None]  # (E, heads, C)
        out = scatter_sum(messages, target, num_nodes)  # (N, heads, C)
        out = out.flatten(1) if self.concat else out.mean(dim=1)  # (N, heads*C) or (N, C)
        if self.bias is not None:
            out = out + self.bias
        return (out, (edge_index, alpha)) if return_attention else out

    def extra_repr(self) -> str:
        return f"heads={self.heads}, concat={self.concat}, dropout={self.dropout}"


# ---------------------------------------------------------------------------------------------
# Models
# ---------------------------------------------------------------------------------------------


def input_dropout(x: torch.Tensor, p: float, training: bool = True) -> torch.Tensor:
    """``F.dropout`` for sparse input features such as the Planetoid bag-of-words.

    Dropping a zero changes nothing, so only the non-zero entries draw a random number (about
    1% of Cora's ``(N, F)``): the same distribution as ``F.dropout(x, p, training)``, each
    kept entry scaled by ``1 / (1 - p)``, several times faster on the CPU, where drawing the
    random numbers dominates a GCN epoch. Differentiable in ``x``.
    """
    if not 0.0 <= p <= 1.0:
        raise ValueError(f"dropout probability has to be between 0 and 1, but got {p}")
    if not training or p == 0.0:
        return x
    if p == 1.0:
        return x * 0.0
    nonzero = x.nonzero(as_tuple=True)  # indices of the (nnz,) non-zero entries
    keep = torch.empty(nonzero[0].numel(), dtype=x.dtype, device=x.device).bernoulli_(1 - p)
    scale = torch.zeros_like(x).index_put_(nonzero, keep / (1 - p))  # (N, F)
    return x * scale


class GCN(nn.Module):
    """Kipf and Welling's two-layer GCN: dropout, GCN, ReLU, dropout, GCN -> class logits.

    The input dropout is :func:`input_dropout` (same distribution as ``F.dropout``, cheaper on
    sparse features).

    Paper settings: ``hidden_dim=16``, ``dropout=0.5`` (with Adam, lr 0.01, weight decay 5e-4,
    200 epochs).
    """

    def __init__(
        self,
        in_dim: int,
        num_classes: int,
        hidden_dim: int = 16,
        dropout: float = 0.5,
        cached: bool = False,
    ):
        super().__init__()
        self.dropout = dropout
        self.conv1 = GCNLayer(in_dim, hidden_dim, cached=cached)
        self.conv2 = GCNLayer(hidden_dim, num_classes, cached=cached)

    def forward(self, x: torch.Tensor, edge_index: torch.Tensor) -> torch.Tensor:
        x = input_dropout(x, self.dropout, self.training)  # (N, F)
        x = F.relu(self.conv1(x, edge_index))  # (N, hidden)
        x = F.dropout(x, self.dropout, self.training)
        return self.conv2(x, edge_index)  # (N, classes)


class GAT(nn.Module):
    """Veličković et al.'s two-layer GAT for transductive node classification.

    Dropout (:func:`input_dropout` on the input), ``heads`` x ``hidden_dim`` attention heads
    concatenated, ELU, dropout, then an output attention layer with ``out_heads`` heads
    averaged. Paper settings: 8 heads x 8 hidden, dropout 0.6 on inputs and attention
    weights, ``out_heads=1`` (PubMed: 8).
    """

    def __init__(
        self,
        in_dim: int,
        num_classes: int,
        hidden_dim: int = 8,
        heads: int = 8,
        out_heads: int = 1,
        dropout: float = 0.6,
    ):
        super().__init__()
        self.dropout = dropout
        self.conv1 = GATLayer(in_dim, hidden_dim, heads=heads, dropout=dropout)
        self.conv2 = GATLayer(
            heads * hidden_dim, num_classes, heads=out_heads, concat=False, dropout=dropout
        )

    def forward(self, x: torch.Tensor, edge_index: torch.Tensor) -> torch.Tensor:
        x = input_dropout(x, self.dropout, self.training)  # (N, F)
        x = F.elu(self.conv1(x, edge_index))  # (N, heads * hidden)
        x = F.dropout(x, self.dropout, self.training)
        return self.conv2(x, edge_index)  # (N, classes)


# ---------------------------------------------------------------------------------------------
# Training
# ---------------------------------------------------------------------------------------------


@dataclass
class TrainingResult:
    """What :func:`train_node_classifier` returns.

    ``history`` has one entry per epoch for ``"loss"`` (training loss, dropout on),
    ``"val_loss"``, ``"train_acc"``, ``"val_acc"`` and ``"test_acc"`` (evaluated with dropout
    off). ``test_acc`` is the test accuracy at ``best_epoch``, the epoch of best validation
    accuracy (ties: lower validation loss).
    """

    history: dict[str, list[float]] = field(default_factory=dict)
    best_epoch: int = -1
    val_acc: float = float("nan")
    test_acc: float = float("nan")
    seconds: float = 0.0


def _accuracy(logits: torch.Tensor, y: torch.Tensor, mask: torch.Tensor) -> float:
    if not mask.any():
        return float("nan")
    return (logits[mask].argmax(dim=-1) == y[mask]).float().mean().item()


@torch.no_grad()
def node_accuracy(model: nn.Module, data, mask: torch.Tensor) -> float:
    """The accuracy of ``model`` on the nodes of ``mask``, in eval mode (no dropout).

    ``data`` has ``x``, ``edge_index`` and ``y`` (a :class:`vislearn.data.GraphData`); the
    model's train/eval mode is restored afterwards.
    """
    was_training = model.training
    model.eval()
    logits = model(data.x, data.edge_index)  # (N, classes)
    model.train(was_training)
    return _accuracy(logits, data.y, mask)


def train_node_classifier(
    model: nn.Module,
    data,
    epochs: int = 200,
    lr: float = 0.01,
    weight_decay: float = 5e-4,
    patience: int | None = None,
    device: torch.device | str | None = None,
    seed: int | None = None,
    stop_on: str = "accuracy_or_loss",
) -> TrainingResult:
    """Full-batch semi-supervised training: cross-entropy on ``data.train_mask`` with Adam.

    ``data`` is a :class:`vislearn.data.GraphData` (anything with ``x``, ``y``,
    ``edge_index`` and the three masks). Each epoch takes one gradient step, then evaluates
    the whole graph with dropout off. With ``patience``, training stops once validation
    accuracy has not reached a new maximum and validation loss has not reached a new minimum
    for ``patience`` epochs in a row (``stop_on="accuracy_or_loss"``, the rule of the GAT
    paper's code), or, with ``stop_on="accuracy"``, once the accuracy alone has not (what the
    GAT authors used for CiteSeer, PetarV-/GAT issue 14). "New" includes ties. At the end
    the model holds the weights of the best epoch (see :class:`TrainingResult`); without
    validation nodes that is the last epoch.

    ``weight_decay`` applies to all parameters (Kipf and Welling regularised only the first
    layer; the difference is within seed noise on Cora). ``seed`` seeds PyTorch's global
    generator, which draws the dropout masks: ``F.dropout`` takes no generator. ``device``
    defaults to the device of the model's parameters.
    """
    if stop_on not in ("accuracy_or_loss", "accuracy"):
        raise ValueError(f"stop_on must be 'accuracy_or_loss' or 'accuracy', got {stop_on!r}")
    device = torch.device(device) if device is not None else next(model.parameters()).device
    if seed is not None:
        torch.manual_seed(seed)
    model = model.to(device)
    data = data.to(device)
    optimizer = torch.optim.Adam(model.parameters(), lr=lr, weight_decay=weight_decay)
    keys = ("loss", "val_loss", "train_acc", "val_acc", "test_acc")
    result = TrainingResult(history={key: [] for key in keys})
    has_val = bool(data.val_mask.any())
    best_state, best_key = None, (float("-inf"), float("-inf"))
    max_val_acc, min_val_loss, waited = float("-inf"), float("inf"), 0
    start = time.perf_counter()
    for epoch in range(epochs):
        model.train()
        optimizer.zero_grad()
        logits = model(data.x, data.edge_index)  # (N, classes)
        loss = F.cross_entropy(logits[data.train_mask], data.y[data.train_mask])
        loss.backward()
        optimizer.step()

        model.eval()
        with torch.no_grad():
            logits = model(data.x, data.edge_index)
        row = {
            "loss": loss.item(),
            "val_loss": (
                F.cross_entropy(logits[data.val_mask], data.y[data.val_mask]).item()
                if has_val
                else float("nan")
            ),
            "train_acc": _accuracy(logits, data.y, data.train_mask),
            "val_acc": _accuracy(logits, data.y, data.val_mask),
            "test_acc": _accuracy(logits, data.y, data.test_mask),
        }
        for key in keys:
            result.history[key].append(row[key])

        key = (row["val_acc"], -row["val_loss"]) if has_val else (epoch, 0.0)
        if key > best_key:
            best_key, result.best_epoch = key, epoch
            result.val_acc, result.test_acc = row["val_acc"], row["test_acc"]
            best_state = copy.deepcopy(model.state_dict())
        if patience is not None and has_val:
            improved = row["val_acc"] >= max_val_acc or (
                stop_on == "accuracy_or_loss" and row["val_loss"] <= min_val_loss
            )
            max_val_acc = max(max_val_acc, row["val_acc"])
            min_val_loss = min(min_val_loss, row["val_loss"])
            waited = 0 if improved else waited + 1
            if waited >= patience:
                break
    result.seconds = time.perf_counter() - start
    if best_state is not None:
        model.load_state_dict(best_state)
    return result
