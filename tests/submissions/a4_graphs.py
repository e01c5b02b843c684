"""A class of a4_graphs submissions (see tests/submissions/__init__.py)."""

A4_LAPLACIAN_LOOPS = """
def normalized_laplacian(A, self_loops=False):
    # a correct solution in another style: entry by entry, with torch.where for empty rows
    n = A.shape[0]
    if self_loops:
        A = A + torch.eye(n, dtype=A.dtype, device=A.device)
    d = A.sum(dim=1)
    s = torch.where(d > 0, 1 / torch.sqrt(torch.where(d > 0, d, torch.ones_like(d))), 0 * d)
    L = torch.zeros_like(A)
    for i in range(n):
        for j in range(n):
            L[i, j] = s[i] * ((d[i] if i == j else 0) - A[i, j]) * s[j]
    return L
"""

A4_GCN_SPARSE = """
def gcn_layer(x, edge_index, weight, bias):
    # a correct solution in another style: a torch.sparse matrix built from the edge list
    n = x.shape[0]
    loops = torch.arange(n, device=x.device).repeat(2, 1)
    edges = torch.cat([edge_index, loops], dim=1)
    deg = torch.bincount(edges[1], minlength=n).to(x.dtype)
    values = deg[edges[0]].rsqrt() * deg[edges[1]].rsqrt()
    # row = target, column = source: (A~^T x)[i] = sum_j A~[j, i] x_j
    propagation = torch.sparse_coo_tensor(edges.flip(0), values, (n, n), check_invariants=True)
    return torch.sparse.mm(propagation, x @ weight.T) + bias
"""

A4_GAT_DENSE = """
def gat_attention(x, edge_index, omega, phi):
    # a correct solution in another style: dense scores, masked, softmax per receiving node
    n = x.shape[0]
    width = omega.shape[1]
    z = torch.stack([x @ w.T for w in omega])  # (K, N, F')
    receiver = z @ phi[:, :width, None]  # (K, N, 1)
    sender = z @ phi[:, width:, None]  # (K, N, 1)
    scores = F.leaky_relu(receiver + sender.transpose(1, 2), 0.2)  # (K, i, j)
    allowed = torch.eye(n, dtype=torch.bool, device=x.device)
    allowed[edge_index[1], edge_index[0]] = True  # row i: the sources j of edges j -> i
    weights = torch.softmax(scores.masked_fill(~allowed, float("-inf")), dim=2)
    nodes = torch.arange(n, device=x.device)
    rows = torch.cat([edge_index[1], nodes])
    cols = torch.cat([edge_index[0], nodes])
    return weights[:, rows, cols].T
"""

A4_LAPLACIAN_RANDOM_WALK = """
def normalized_laplacian(A, self_loops=False):
    if self_loops:
        A = A + torch.eye(A.shape[0], dtype=A.dtype, device=A.device)
    d = A.sum(dim=1)
    inv = torch.where(d > 0, 1 / d.clamp(min=1e-30), 0 * d)
    return torch.diag((d > 0).to(A.dtype)) - inv[:, None] * A  # I - D^-1 A
"""

A4_LAPLACIAN_NAN = """
def normalized_laplacian(A, self_loops=False):
    if self_loops:
        A = A + torch.eye(A.shape[0], dtype=A.dtype, device=A.device)
    d = A.sum(dim=1)
    inv_sqrt = d.pow(-0.5)  # inf for a node without edges
    return inv_sqrt[:, None] * (torch.diag(d) - A) * inv_sqrt[None, :]
"""

A4_LAPLACIAN_COLUMN_SUMS = """
def normalized_laplacian(A, self_loops=False):
    if self_loops:
        A = A + torch.eye(A.shape[0], dtype=A.dtype, device=A.device)
    d = A.sum(dim=0)  # column sums: the in-degrees
    inv_sqrt = torch.where(d > 0, d.clamp(min=1e-30).rsqrt(), 0 * d)
    return inv_sqrt[:, None] * (torch.diag(d) - A) * inv_sqrt[None, :]
"""

A4_LAPLACIAN_IGNORES_SELF_LOOPS = """
def normalized_laplacian(A, self_loops=False):
    d = A.sum(dim=1)  # self_loops is never used
    inv_sqrt = torch.where(d > 0, d.clamp(min=1e-30).rsqrt(), 0 * d)
    return inv_sqrt[:, None] * (torch.diag(d) - A) * inv_sqrt[None, :]
"""

A4_LAPLACIAN_SLIDE_DEGREES = """
def normalized_laplacian(A, self_loops=False):
    d = A.sum(dim=1)  # degrees of A, even when the self-loops are added
    inv_sqrt = torch.where(d > 0, d.clamp(min=1e-30).rsqrt(), 0 * d)
    eye = torch.eye(A.shape[0], dtype=A.dtype, device=A.device)
    if self_loops:
        A = A + eye
    return eye - inv_sqrt[:, None] * A * inv_sqrt[None, :]
"""

A4_LAPLACIAN_ISOLATED_ONE = """
def normalized_laplacian(A, self_loops=False):
    eye = torch.eye(A.shape[0], dtype=A.dtype, device=A.device)
    if self_loops:
        A = A + eye
    d = A.sum(dim=1)
    inv_sqrt = torch.where(d > 0, d.clamp(min=1e-30).rsqrt(), 0 * d)
    return eye - inv_sqrt[:, None] * A * inv_sqrt[None, :]  # 1, not 0, on an isolated node
"""

A4_GCN_NO_SELF_LOOPS = """
def gcn_layer(x, edge_index, weight, bias):
    n = x.shape[0]
    src, dst = edge_index
    deg = torch.zeros(n, dtype=x.dtype, device=x.device).index_add(
        0, dst, torch.ones(len(dst), dtype=x.dtype, device=x.device))
    coef = (deg[src] * deg[dst]).rsqrt()
    h = x @ weight.T
    out = torch.zeros(n, h.shape[1], dtype=x.dtype, device=x.device)
    return out.index_add(0, dst, h[src] * coef[:, None]) + bias
"""

A4_GCN_OUT_DEGREE = """
def gcn_layer(x, edge_index, weight, bias):
    n = x.shape[0]
    nodes = torch.arange(n, device=x.device)
    src = torch.cat([edge_index[0], nodes])
    dst = torch.cat([edge_index[1], nodes])
    deg = torch.zeros(n, dtype=x.dtype, device=x.device).index_add(
        0, src, torch.ones(len(src), dtype=x.dtype, device=x.device))  # counts sent messages
    coef = (deg[src] * deg[dst]).rsqrt()
    h = x @ weight.T
    out = torch.zeros(n, h.shape[1], dtype=x.dtype, device=x.device)
    return out.index_add(0, dst, h[src] * coef[:, None]) + bias
"""

A4_GCN_MEAN = """
def gcn_layer(x, edge_index, weight, bias):
    n = x.shape[0]
    nodes = torch.arange(n, device=x.device)
    src = torch.cat([edge_index[0], nodes])
    dst = torch.cat([edge_index[1], nodes])
    deg = torch.zeros(n, dtype=x.dtype, device=x.device).index_add(
        0, dst, torch.ones(len(dst), dtype=x.dtype, device=x.device))
    h = x @ weight.T
    out = torch.zeros(n, h.shape[1], dtype=x.dtype, device=x.device)
    return out.index_add(0, dst, h[src] / deg[dst][:, None]) + bias  # D~^-1 (A + I): a mean
"""

A4_GCN_SYMMETRISED = """
def gcn_layer(x, edge_index, weight, bias):
    n = x.shape[0]
    both = torch.unique(torch.cat([edge_index, edge_index.flip(0)], dim=1), dim=1)  # undirected
    nodes = torch.arange(n, device=x.device)
    src = torch.cat([both[0], nodes])
    dst = torch.cat([both[1], nodes])
    deg = torch.zeros(n, dtype=x.dtype, device=x.device).index_add(
        0, dst, torch.ones(len(dst), dtype=x.dtype, device=x.device))
    coef = (deg[src] * deg[dst]).rsqrt()
    h = x @ weight.T
    out = torch.zeros(n, h.shape[1], dtype=x.dtype, device=x.device)
    return out.index_add(0, dst, h[src] * coef[:, None]) + bias
"""

# The GAT bugs share the correct body and change one line each.
GAT_TEMPLATE = """
def gat_attention(x, edge_index, omega, phi):
    n = x.shape[0]
    heads, width, _ = omega.shape
    nodes = torch.arange(n, device=x.device)
    src = torch.cat([edge_index[0], nodes])
    dst = torch.cat([edge_index[1], nodes])
    z = torch.einsum("kof,nf->nko", omega, x)
    a_i = (z * phi[:, :width]).sum(dim=-1)
    a_j = (z * phi[:, width:]).sum(dim=-1)
    e = SCORE
    top = torch.full((n, heads), float("-inf"), dtype=e.dtype, device=e.device)
    top = top.scatter_reduce(0, dst[:, None].expand(-1, heads), e, reduce="amax")
    w = EXP
    total = torch.zeros(n, heads, dtype=e.dtype, device=e.device).index_add(0, dst, w)
    return w / total[dst]
"""
CORRECT_SCORE = "F.leaky_relu(a_i[dst] + a_j[src], 0.2)"
CORRECT_EXP = "torch.exp(e - top[dst])"


def gat(score=CORRECT_SCORE, exp=CORRECT_EXP):
    return GAT_TEMPLATE.replace("SCORE", score).replace("EXP", exp)


A4_GAT_DEFAULT_SLOPE = gat(score="F.leaky_relu(a_i[dst] + a_j[src])  # slope 0.01")
A4_GAT_NO_MAX = gat(exp="torch.exp(e)  # overflows for large scores")
A4_GAT_SWAPPED_PHI = gat(score="F.leaky_relu(a_j[dst] + a_i[src], 0.2)  # halves of phi swapped")

A4_GAT_ALL_NODES = """
def gat_attention(x, edge_index, omega, phi):
    n = x.shape[0]
    width = omega.shape[1]
    z = torch.einsum("kof,nf->kno", omega, x)  # (K, N, F')
    receiver, sender = z @ phi[:, :width, None], z @ phi[:, width:, None]  # (K, N, 1) each
    scores = F.leaky_relu(receiver + sender.transpose(1, 2), 0.2)  # (K, i, j)
    weights = torch.softmax(scores, dim=2)  # over all N nodes, not the neighbourhood
    nodes = torch.arange(n, device=x.device)
    rows, cols = torch.cat([edge_index[1], nodes]), torch.cat([edge_index[0], nodes])
    return weights[:, rows, cols].T
"""

A4_GAT_OUT_NEIGHBOURS = """
def gat_attention(x, edge_index, omega, phi):
    n = x.shape[0]
    width = omega.shape[1]
    z = torch.einsum("kof,nf->kno", omega, x)  # (K, N, F')
    receiver, sender = z @ phi[:, :width, None], z @ phi[:, width:, None]  # (K, N, 1) each
    scores = F.leaky_relu(receiver + sender.transpose(1, 2), 0.2)  # (K, i, j)
    adjacency = torch.eye(n, dtype=torch.bool, device=x.device)
    adjacency[edge_index[0], edge_index[1]] = True  # A[i, j] for i -> j: the out-neighbours
    weights = torch.softmax(scores.masked_fill(~adjacency, float("-inf")), dim=2)
    nodes = torch.arange(n, device=x.device)
    rows, cols = torch.cat([edge_index[1], nodes]), torch.cat([edge_index[0], nodes])
    return weights[:, rows, cols].T
"""

A4_GAT_NO_SELF_LOOPS = """
def gat_attention(x, edge_index, omega, phi):
    n = x.shape[0]
    heads, width, _ = omega.shape
    src, dst = edge_index  # the nodes do not attend to themselves
    z = torch.einsum("kof,nf->nko", omega, x)
    e = F.leaky_relu((z * phi[:, :width]).sum(-1)[dst] + (z * phi[:, width:]).sum(-1)[src], 0.2)
    top = torch.full((n, heads), float("-inf"), dtype=e.dtype, device=e.device)
    top = top.scatter_reduce(0, dst[:, None].expand(-1, heads), e, reduce="amax")
    w = torch.exp(e - top[dst])
    total = torch.zeros(n, heads, dtype=e.dtype, device=e.device).index_add(0, dst, w)
    return w / total[dst]
"""

A4_GATCONV_REUSES_PART_3 = """
class GATConv(torch.nn.Module):
    # a correct solution in another style: part 3's weights, then a dense sum over the edges
    def __init__(self, in_dim, out_dim, heads=1, concat=True):
        super().__init__()
        self.heads, self.out_dim, self.concat = heads, out_dim, concat
        self.lin = torch.nn.Linear(in_dim, heads * out_dim, bias=False)
        self.att_dst = torch.nn.Parameter(0.1 * torch.randn(1, heads, out_dim))
        self.att_src = torch.nn.Parameter(0.1 * torch.randn(1, heads, out_dim))
        self.bias = torch.nn.Parameter(torch.zeros(heads * out_dim if concat else out_dim))

    def forward(self, x, edge_index):
        n = x.shape[0]
        omega = self.lin.weight.view(self.heads, self.out_dim, -1)
        phi = torch.cat([self.att_dst[0], self.att_src[0]], dim=1)
        alpha = gat_attention(x, edge_index, omega, phi)
        nodes = torch.arange(n, device=x.device)
        src, dst = torch.cat([edge_index[0], nodes]), torch.cat([edge_index[1], nodes])
        weights = torch.zeros(self.heads, n, n, dtype=x.dtype, device=x.device)
        weights[:, dst, src] = alpha.T  # (K, i, j)
        out = weights @ self.lin(x).view(n, self.heads, self.out_dim).transpose(0, 1)  # (K, N, F')
        out = out.transpose(0, 1).flatten(1) if self.concat else out.mean(dim=0)
        return out + self.bias
"""

# The layer bugs start from the instructor's layer; each also breaks the weights train_gat
# returns (another key, another shape), so both graders fail the training cells too.
A4_GATCONV_ONE_ATTENTION_VECTOR = """
class GATConv(torch.nn.Module):
    def __init__(self, in_dim, out_dim, heads=1, concat=True):
        super().__init__()
        self.heads, self.out_dim, self.concat = heads, out_dim, concat
        self.lin = torch.nn.Linear(in_dim, heads * out_dim, bias=False)
        self.att = torch.nn.Parameter(0.1 * torch.randn(1, heads, 2 * out_dim))  # phi, whole
        self.bias = torch.nn.Parameter(torch.zeros(heads * out_dim if concat else out_dim))

    def forward(self, x, edge_index):
        n = x.shape[0]
        omega = self.lin.weight.view(self.heads, self.out_dim, -1)
        alpha = gat_attention(x, edge_index, omega, self.att[0])
        nodes = torch.arange(n, device=x.device)
        src, dst = torch.cat([edge_index[0], nodes]), torch.cat([edge_index[1], nodes])
        z = self.lin(x).view(n, self.heads, self.out_dim)
        out = torch.zeros_like(z).index_add(0, dst, alpha[..., None] * z[src])
        out = out.flatten(1) if self.concat else out.mean(dim=1)
        return out + self.bias
"""

A4_GATCONV_ALWAYS_MEAN = """
class GATConv(torch.nn.Module):
    def __init__(self, in_dim, out_dim, heads=1, concat=True):
        super().__init__()
        self.heads, self.out_dim = heads, out_dim
        self.lin = torch.nn.Linear(in_dim, heads * out_dim, bias=False)
        self.att_dst = torch.nn.Parameter(0.1 * torch.randn(1, heads, out_dim))
        self.att_src = torch.nn.Parameter(0.1 * torch.randn(1, heads, out_dim))
        self.bias = torch.nn.Parameter(torch.zeros(heads * out_dim if concat else out_dim))

    def forward(self, x, edge_index):
        n = x.shape[0]
        omega = self.lin.weight.view(self.heads, self.out_dim, -1)
        phi = torch.cat([self.att_dst[0], self.att_src[0]], dim=1)
        alpha = gat_attention(x, edge_index, omega, phi)
        nodes = torch.arange(n, device=x.device)
        src, dst = torch.cat([edge_index[0], nodes]), torch.cat([edge_index[1], nodes])
        z = self.lin(x).view(n, self.heads, self.out_dim)
        out = torch.zeros_like(z).index_add(0, dst, alpha[..., None] * z[src])
        return out.mean(dim=1) + self.bias[: self.out_dim]  # the heads averaged, even to concat
"""

A4_LAPLACIAN = [
    "test_laplacian_visible",
    "test_laplacian_hidden",
    "test_laplacian_directed_hidden",
    "test_laplacian_isolated_hidden",
]
A4_GCN = [
    "test_gcn_visible",
    "test_gcn_hidden",
    "test_gcn_directed_hidden",
    "test_gcn_isolated_hidden",
]
A4_GAT = [
    "test_gat_visible",
    "test_gat_hidden",
    "test_gat_directed_hidden",
    "test_gat_large_hidden",
]
A4_GATCONV_AND_TRAINING = [
    "test_gat_module_visible",
    "test_gat_module_hidden",
    "test_gat_module_object_hidden",
    "test_train_gat_visible",
    "test_train_gat_hidden",
]

CLASS = {
    "alice": ({}, []),
    "amir": (
        {
            "normalized_laplacian": A4_LAPLACIAN_LOOPS,
            "gcn_layer": A4_GCN_SPARSE,
            "gat_attention": A4_GAT_DENSE,
        },
        [],
    ),
    "bea": ({"normalized_laplacian": A4_LAPLACIAN_RANDOM_WALK}, A4_LAPLACIAN),
    "chen": ({"normalized_laplacian": A4_LAPLACIAN_NAN}, ["test_laplacian_isolated_hidden"]),
    "dara": (
        {"normalized_laplacian": A4_LAPLACIAN_COLUMN_SUMS},
        ["test_laplacian_directed_hidden"],
    ),
    "eli": ({"normalized_laplacian": A4_LAPLACIAN_IGNORES_SELF_LOOPS}, A4_LAPLACIAN),
    "fay": ({"normalized_laplacian": A4_LAPLACIAN_SLIDE_DEGREES}, A4_LAPLACIAN),
    "gus": (
        {"normalized_laplacian": A4_LAPLACIAN_ISOLATED_ONE},
        ["test_laplacian_isolated_hidden"],
    ),
    "hana": ({"gcn_layer": A4_GCN_NO_SELF_LOOPS}, A4_GCN),
    "ivo": ({"gcn_layer": A4_GCN_OUT_DEGREE}, ["test_gcn_directed_hidden"]),
    "jun": ({"gcn_layer": A4_GCN_MEAN}, A4_GCN),
    "kai": ({"gcn_layer": A4_GCN_SYMMETRISED}, ["test_gcn_directed_hidden"]),
    "lea": ({"gat_attention": A4_GAT_ALL_NODES}, A4_GAT),
    "max": ({"gat_attention": A4_GAT_OUT_NEIGHBOURS}, ["test_gat_directed_hidden"]),
    "nia": ({"gat_attention": A4_GAT_NO_SELF_LOOPS}, A4_GAT),
    "oli": ({"gat_attention": A4_GAT_DEFAULT_SLOPE}, A4_GAT),
    "pia": ({"gat_attention": A4_GAT_NO_MAX}, ["test_gat_large_hidden"]),
    "quin": ({"gat_attention": A4_GAT_SWAPPED_PHI}, A4_GAT),
    "tom": ({"GATConv": A4_GATCONV_REUSES_PART_3}, []),
    "rui": ({"GATConv": A4_GATCONV_ONE_ATTENTION_VECTOR}, A4_GATCONV_AND_TRAINING),
    "sam": ({"GATConv": A4_GATCONV_ALWAYS_MEAN}, A4_GATCONV_AND_TRAINING),
}
