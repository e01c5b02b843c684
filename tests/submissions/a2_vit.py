"""A class of a2_vit submissions (see tests/submissions/__init__.py)."""

A2_PATCHIFY_UNFOLD = """
def patchify(images, patch_size):
    # a correct solution in another style: unfold, then channels last
    B, C, H, W = images.shape
    P = patch_size
    x = images.unfold(2, P, P).unfold(3, P, P)  # (B, C, h, w, P, P)
    x = x.permute(0, 2, 3, 4, 5, 1)  # (B, h, w, P, P, C)
    return x.reshape(B, -1, P * P * C)
"""

A2_EMBED_REPEAT = """
def embed(patch_tokens, cls_token, pos_embed):
    # a correct solution in another style: positions split between the class token and patches
    cls = cls_token.repeat(patch_tokens.shape[0], 1, 1) + pos_embed[:, :1]
    return torch.cat([cls, patch_tokens + pos_embed[:, 1:]], dim=1)
"""

A2_ROLLOUT_REDUCE = """
def attention_rollout(attentions):
    # a correct solution in another style: stack the layers, then fold from the first layer up
    A = torch.stack(list(attentions)).mean(dim=2)  # (L, B, T, T)
    A = A + torch.eye(A.shape[-1], dtype=A.dtype, device=A.device)
    A = A / A.sum(dim=-1, keepdim=True)
    rollout = A[0]
    for layer in A[1:]:
        rollout = torch.bmm(layer, rollout)
    return rollout
"""

A2_BLOCKWISE_TWO_PASSES = """
def blockwise_attention(q, k, v, block_size):
    # a correct solution in another style: one pass over the blocks for the maximum, a second
    # for the sums
    scale = q.shape[-1] ** -0.5
    spans = [slice(s, s + block_size) for s in range(0, k.shape[-2], block_size)]
    m = torch.stack(
        [(q @ k[..., b, :].transpose(-1, -2) * scale).amax(dim=-1) for b in spans]
    ).amax(dim=0)[..., None]
    num, den = 0.0, 0.0
    for b in spans:
        p = torch.exp(q @ k[..., b, :].transpose(-1, -2) * scale - m)
        num = num + p @ v[..., b, :]
        den = den + p.sum(dim=-1, keepdim=True)
    return num / den
"""

A2_PATCHIFY_COLUMN_MAJOR = """
def patchify(images, patch_size):
    B, C, H, W = images.shape
    P = patch_size
    x = images.reshape(B, C, H // P, P, W // P, P)
    x = x.permute(0, 4, 2, 3, 5, 1)  # (B, w, h, P, P, C): patches in column-major order
    return x.reshape(B, -1, P * P * C)
"""

A2_PATCHIFY_CHANNELS_FIRST = """
def patchify(images, patch_size):
    B, C, H, W = images.shape
    P = patch_size
    x = images.reshape(B, C, H // P, P, W // P, P)
    x = x.permute(0, 2, 4, 1, 3, 5)  # (B, h, w, C, P, P): flattened in (C, P, P) order
    return x.reshape(B, -1, P * P * C)
"""

A2_EMBED_APPENDED = """
def embed(patch_tokens, cls_token, pos_embed):
    cls = cls_token.expand(patch_tokens.shape[0], -1, -1)
    return torch.cat([patch_tokens, cls], dim=1) + pos_embed  # class token last
"""

A2_EMBED_POSITIONS_FIRST = """
def embed(patch_tokens, cls_token, pos_embed):
    x = patch_tokens + pos_embed[:, : patch_tokens.shape[1]]  # positions before the class token
    cls = cls_token.expand(patch_tokens.shape[0], -1, -1)
    return torch.cat([cls, x], dim=1)
"""

A2_ROLLOUT_NO_IDENTITY = """
def attention_rollout(attentions):
    rollout = None
    for layer in attentions:
        A = layer.mean(dim=1)  # no residual identity
        rollout = A if rollout is None else A @ rollout
    return rollout
"""

A2_ROLLOUT_NO_RENORMALISATION = """
def attention_rollout(attentions):
    rollout = None
    for layer in attentions:
        A = layer.mean(dim=1) + torch.eye(layer.shape[-1], dtype=layer.dtype, device=layer.device)
        rollout = A if rollout is None else A @ rollout  # rows sum to 2 ** L
    return rollout
"""

A2_ROLLOUT_WRONG_ORDER = """
def attention_rollout(attentions):
    rollout = None
    for layer in attentions:
        A = layer.mean(dim=1) + torch.eye(layer.shape[-1], dtype=layer.dtype, device=layer.device)
        A = A / A.sum(dim=-1, keepdim=True)
        rollout = A if rollout is None else rollout @ A  # first layer on the left
    return rollout
"""

A2_BLOCKWISE_NO_RESCALE = """
def blockwise_attention(q, k, v, block_size):
    m = q.new_full((*q.shape[:-1], 1), float("-inf"))
    l = q.new_zeros((*q.shape[:-1], 1))
    o = q.new_zeros((*q.shape[:-1], v.shape[-1]))
    for start in range(0, k.shape[-2], block_size):
        s = q @ k[..., start:start + block_size, :].transpose(-1, -2) / math.sqrt(q.shape[-1])
        m_new = torch.maximum(m, s.amax(dim=-1, keepdim=True))
        p = torch.exp(s - m_new)
        l = torch.exp(m - m_new) * l + p.sum(dim=-1, keepdim=True)
        o = o + p @ v[..., start:start + block_size, :]  # the numerator is not rescaled
        m = m_new
    return o / l
"""

A2_BLOCKWISE_NO_RUNNING_MAX = """
def blockwise_attention(q, k, v, block_size):
    l = q.new_zeros((*q.shape[:-1], 1))
    o = q.new_zeros((*q.shape[:-1], v.shape[-1]))
    for start in range(0, k.shape[-2], block_size):
        s = q @ k[..., start:start + block_size, :].transpose(-1, -2) / math.sqrt(q.shape[-1])
        p = torch.exp(s)  # overflows for large logits
        l = l + p.sum(dim=-1, keepdim=True)
        o = o + p @ v[..., start:start + block_size, :]
    return o / l
"""

A2_TRAIN_RETURNS_THE_MODEL = """
class DigitViT(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.head = torch.nn.Linear(64, 10)

    def forward(self, images):
        return self.head(images.flatten(1))


def train_vit(images, labels):
    model = DigitViT()
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-2)
    for _ in range(20):
        loss = torch.nn.functional.cross_entropy(model(images), labels)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    return model  # the module itself, not its state_dict()
"""

A2_PATCHIFY = ["test_patchify_visible", "test_patchify_hidden"]
A2_EMBED = ["test_embed_visible", "test_embed_hidden"]
A2_ROLLOUT = ["test_rollout_visible", "test_rollout_hidden"]

CLASS = {
    "alice": ({}, []),
    "amir": (
        {
            "patchify": A2_PATCHIFY_UNFOLD,
            "embed": A2_EMBED_REPEAT,
            "attention_rollout": A2_ROLLOUT_REDUCE,
            "blockwise_attention": A2_BLOCKWISE_TWO_PASSES,
        },
        [],
    ),
    "bea": ({"patchify": A2_PATCHIFY_COLUMN_MAJOR}, A2_PATCHIFY),
    "chen": ({"patchify": A2_PATCHIFY_CHANNELS_FIRST}, A2_PATCHIFY),
    "dara": ({"embed": A2_EMBED_APPENDED}, A2_EMBED),
    "eli": ({"embed": A2_EMBED_POSITIONS_FIRST}, A2_EMBED),
    "fay": ({"attention_rollout": A2_ROLLOUT_NO_IDENTITY}, A2_ROLLOUT),
    "gus": ({"attention_rollout": A2_ROLLOUT_NO_RENORMALISATION}, A2_ROLLOUT),
    "hana": ({"attention_rollout": A2_ROLLOUT_WRONG_ORDER}, A2_ROLLOUT),
    "ivo": (
        {"blockwise_attention": A2_BLOCKWISE_NO_RESCALE},
        ["test_blockwise_visible", "test_blockwise_hidden", "test_blockwise_large_logits_hidden"],
    ),
    "jun": (
        {"blockwise_attention": A2_BLOCKWISE_NO_RUNNING_MAX},
        ["test_blockwise_large_logits_hidden"],
    ),
    "kai": (
        {"train_vit": A2_TRAIN_RETURNS_THE_MODEL},
        ["test_train_vit_visible", "test_digit_vit_module_hidden", "test_train_vit_hidden"],
    ),
}
