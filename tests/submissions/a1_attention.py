"""A class of a1_attention submissions (see tests/submissions/__init__.py)."""

A1_SA_LOOPS = """
def self_attention(X, omega_q, beta_q, omega_k, beta_k, omega_v, beta_v):
    # a correct solution in another style: one query (column) at a time
    Q = omega_q @ X + beta_q.unsqueeze(1)
    K = omega_k @ X + beta_k.unsqueeze(1)
    V = omega_v @ X + beta_v.unsqueeze(1)
    columns = []
    for n in range(X.shape[1]):
        a = torch.softmax(K.T @ Q[:, n] / Q.shape[0] ** 0.5, dim=0)  # (N keys,)
        columns.append(V @ a)
    return torch.stack(columns, dim=1)
"""

A1_MHA_HEAD_LOOP = """
def multi_head_attention(x, w_q, b_q, w_k, b_k, w_v, b_v, w_o, b_o, num_heads):
    # a correct solution in another style: a loop over heads, reusing the student's kernel
    q, k, v = x @ w_q.T + b_q, x @ w_k.T + b_k, x @ w_v.T + b_v
    d = x.shape[-1] // num_heads
    heads = [scaled_dot_product_attention(q[..., j * d:(j + 1) * d], k[..., j * d:(j + 1) * d],
                                          v[..., j * d:(j + 1) * d]) for j in range(num_heads)]
    return torch.cat(heads, dim=-1) @ w_o.T + b_o
"""

A1_SA_WRONG_AXIS = """
def self_attention(X, omega_q, beta_q, omega_k, beta_k, omega_v, beta_v):
    Q = omega_q @ X + beta_q[:, None]
    K = omega_k @ X + beta_k[:, None]
    V = omega_v @ X + beta_v[:, None]
    return V @ torch.softmax(K.T @ Q / math.sqrt(Q.shape[0]), dim=1)  # over the queries
"""

A1_SA_NO_SCALE = """
def self_attention(X, omega_q, beta_q, omega_k, beta_k, omega_v, beta_v):
    Q = omega_q @ X + beta_q[:, None]
    K = omega_k @ X + beta_k[:, None]
    V = omega_v @ X + beta_v[:, None]
    return V @ torch.softmax(K.T @ Q, dim=0)  # no 1/sqrt(D_q)
"""

A1_SDPA_WRONG_AXIS = """
def scaled_dot_product_attention(q, k, v, mask=None):
    scores = q @ k.transpose(-1, -2) / math.sqrt(q.shape[-1])
    if mask is not None:
        scores = scores.masked_fill(~mask, float("-inf"))
    return torch.softmax(scores, dim=-2) @ v  # over the queries
"""

A1_SDPA_NO_SCALE = """
def scaled_dot_product_attention(q, k, v, mask=None):
    scores = q @ k.transpose(-1, -2)  # no 1/sqrt(d)
    if mask is not None:
        scores = scores.masked_fill(~mask, float("-inf"))
    return torch.softmax(scores, dim=-1) @ v
"""

A1_SDPA_MASK_AFTER_SOFTMAX = """
def scaled_dot_product_attention(q, k, v, mask=None):
    weights = torch.softmax(q @ k.transpose(-1, -2) / math.sqrt(q.shape[-1]), dim=-1)
    if mask is not None:
        weights = weights * mask  # rows no longer sum to one
    return weights @ v
"""

A1_SDPA_NO_MAX_SUBTRACTION = """
def scaled_dot_product_attention(q, k, v, mask=None):
    exps = (q @ k.transpose(-1, -2) / math.sqrt(q.shape[-1])).exp()  # overflows
    if mask is not None:
        exps = exps * mask
    return exps / exps.sum(dim=-1, keepdim=True) @ v
"""

A1_MHA_NO_TRANSPOSE = """
def multi_head_attention(x, w_q, b_q, w_k, b_k, w_v, b_v, w_o, b_o, num_heads):
    B, N, D = x.shape
    d = D // num_heads

    def heads(t):  # wrong: reshapes (B, N, D) straight to (B, h, N, d), mixing tokens
        return t.reshape(B, num_heads, N, d)

    q, k, v = heads(x @ w_q.T + b_q), heads(x @ w_k.T + b_k), heads(x @ w_v.T + b_v)
    weights = torch.softmax(q @ k.transpose(-1, -2) / math.sqrt(d), dim=-1)
    return (weights @ v).reshape(B, N, D) @ w_o.T + b_o
"""

A1_PE_CONCATENATED = """
def sinusoidal_position_encoding(num_positions, dim):
    pos = torch.arange(num_positions, dtype=torch.float64)[:, None]
    freq = 10000.0 ** (-torch.arange(0, dim, 2, dtype=torch.float64) / dim)
    return torch.cat([torch.sin(pos * freq), torch.cos(pos * freq)], dim=1)[:, :dim].float()
"""

A1_PE_EVEN_WIDTH_ONLY = """
def sinusoidal_position_encoding(num_positions, dim):
    pos = torch.arange(num_positions, dtype=torch.float64)[:, None]
    freq = 10000.0 ** (-torch.arange(0, dim, 2, dtype=torch.float64) / dim)
    P = torch.zeros(num_positions, dim)
    P[:, 0::2] = torch.sin(pos * freq)
    P[:, 1::2] = torch.cos(pos * freq)  # shape mismatch when dim is odd
    return P
"""

A1_MODULE_CALLS_PART_3 = """
class MultiHeadSelfAttention(torch.nn.Module):
    # a correct solution in another style: the Linear layers hold the weights, part 3 computes
    def __init__(self, dim, num_heads):
        super().__init__()
        self.num_heads = num_heads
        for name in ("q_proj", "k_proj", "v_proj", "out_proj"):
            setattr(self, name, torch.nn.Linear(dim, dim))

    def forward(self, x):
        layers = (self.q_proj, self.k_proj, self.v_proj, self.out_proj)
        weights = [t for layer in layers for t in (layer.weight, layer.bias)]
        return multi_head_attention(x, *weights, num_heads=self.num_heads)
"""

# The module bugs share the correct class and change one part each.
MODULE_TEMPLATE = """
class MultiHeadSelfAttention(torch.nn.Module):
    def __init__(self, dim, num_heads):
        super().__init__()
        self.num_heads = num_heads
        self.Q, self.K = torch.nn.Linear(dim, dim), torch.nn.Linear(dim, dim)
        self.V, self.O = torch.nn.Linear(dim, dim), torch.nn.Linear(dim, dim)

    def forward(self, x):
        B, N, D = x.shape
        d = D // self.num_heads
        q, k, v = (SPLIT for p in (self.Q, self.K, self.V))
        weights = torch.softmax(q @ k.transpose(-1, -2) / SCALE, dim=-1)
        return self.O((weights @ v).transpose(1, 2).reshape(B, N, D))
"""
CORRECT_NAMES = {"Q": "q_proj", "K": "k_proj", "V": "v_proj", "O": "out_proj"}


def module(split="p(x).view(B, N, self.num_heads, d).transpose(1, 2)", scale="math.sqrt(d)",
           names=CORRECT_NAMES):  # fmt: skip
    source = MODULE_TEMPLATE.replace("SPLIT", split).replace("SCALE", scale)
    for placeholder, name in names.items():
        source = source.replace(f"self.{placeholder}", f"self.{name}")
    return source


A1_MODULE_WIDTH_SCALE = module(scale="math.sqrt(D)")  # the model width, not the head size
A1_MODULE_NO_TRANSPOSE = module(split="p(x).view(B, self.num_heads, N, d)")  # heads mixed up
A1_MODULE_RENAMED = module(names={"Q": "query", "K": "key", "V": "value", "O": "out"})

A1_SA = ["test_self_attention_visible", "test_self_attention_hidden"]
A1_SDPA = ["test_sdpa_visible", "test_sdpa_hidden", "test_sdpa_mask_hidden"]
A1_MHA = ["test_mha_visible", "test_mha_hidden"]
A1_PE = ["test_pe_visible", "test_pe_hidden"]
A1_MODULE = ["test_mha_module_visible", "test_mha_module_hidden", "test_mha_module_object_hidden"]

CLASS = {
    "alice": ({}, []),
    "amir": (
        {
            "self_attention": A1_SA_LOOPS,
            "multi_head_attention": A1_MHA_HEAD_LOOP,
            "MultiHeadSelfAttention": A1_MODULE_CALLS_PART_3,
        },
        [],
    ),
    "bea": ({"self_attention": A1_SA_WRONG_AXIS}, A1_SA),
    "chen": ({"self_attention": A1_SA_NO_SCALE}, A1_SA),
    "dara": ({"scaled_dot_product_attention": A1_SDPA_WRONG_AXIS}, A1_SDPA),
    "eli": ({"scaled_dot_product_attention": A1_SDPA_NO_SCALE}, A1_SDPA),
    "fay": (
        {"scaled_dot_product_attention": A1_SDPA_MASK_AFTER_SOFTMAX},
        ["test_sdpa_visible", "test_sdpa_mask_hidden"],
    ),
    "gus": ({"scaled_dot_product_attention": A1_SDPA_NO_MAX_SUBTRACTION}, ["test_sdpa_hidden"]),
    "hana": ({"multi_head_attention": A1_MHA_NO_TRANSPOSE}, A1_MHA),
    "ivo": ({"sinusoidal_position_encoding": A1_PE_CONCATENATED}, A1_PE),
    "jun": ({"sinusoidal_position_encoding": A1_PE_EVEN_WIDTH_ONLY}, ["test_pe_hidden"]),
    "kai": ({"MultiHeadSelfAttention": A1_MODULE_WIDTH_SCALE}, A1_MODULE),
    "lea": ({"MultiHeadSelfAttention": A1_MODULE_NO_TRANSPOSE}, A1_MODULE),
    "max": ({"MultiHeadSelfAttention": A1_MODULE_RENAMED}, A1_MODULE),
}
