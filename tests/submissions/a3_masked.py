"""A class of a3_masked submissions (see tests/submissions/__init__.py)."""

import torch

A3_MASKING_SCATTER = """
def random_masking(x, mask_ratio, noise=None):
    # a correct solution in another style: the inverse permutation and the mask by scatter
    B, N, D = x.shape
    keep = round(N * (1 - mask_ratio))
    if noise is None:
        noise = torch.rand_like(x[..., 0])
    ids_shuffle = noise.argsort(dim=1)
    ranks = torch.arange(N, device=x.device).repeat(B, 1)
    ids_restore = torch.zeros_like(ids_shuffle).scatter(1, ids_shuffle, ranks)
    x_kept = x[torch.arange(B, device=x.device)[:, None], ids_shuffle[:, :keep]]
    mask = (ids_restore >= keep).to(x.dtype)
    return x_kept, mask, ids_restore
"""

A3_LOSS_BOOLEAN_INDEX = """
def masked_patch_loss(pred, target, mask):
    # a correct solution in another style: boolean indexing
    return ((pred - target) ** 2).mean(dim=-1)[mask.bool()].mean()
"""

A3_UNSHUFFLE_WHERE = """
def unshuffle(x_kept, mask_token, ids_restore):
    # a correct solution in another style: gather the visible tokens, fill the rest by where
    K = x_kept.shape[1]
    index = ids_restore.clamp(max=K - 1).unsqueeze(-1).expand(-1, -1, x_kept.shape[-1])
    visible = torch.gather(x_kept, 1, index)
    return torch.where((ids_restore < K).unsqueeze(-1), visible, mask_token)
"""

A3_BERT_BERNOULLI = """
def bert_mask(ids, vocab_size, mask_prob=0.15):
    # a correct solution in another style: a chain of Bernoulli draws
    def coin(p):
        return torch.bernoulli(torch.full(ids.shape, p, device=ids.device)).bool()

    chosen = coin(mask_prob) & (ids != PAD_ID)
    to_mask = chosen & coin(0.8)
    to_random = chosen & ~to_mask & coin(0.5)
    words = torch.randint(FIRST_WORD_ID, vocab_size, ids.shape, device=ids.device)
    inputs = torch.where(to_mask, torch.full_like(ids, MASK_ID), ids)
    inputs = torch.where(to_random, words, inputs)
    return inputs, torch.where(chosen, ids, torch.full_like(ids, IGNORE_INDEX))
"""

_MASKING = """
def random_masking(x, mask_ratio, noise=None):
    B, N, D = x.shape
    keep = {keep}
    if noise is None:
        noise = {noise}
    ids_shuffle = torch.argsort(noise, dim=1)
    ids_restore = torch.argsort(ids_shuffle, dim=1)
    x_kept = torch.gather(x, 1, ids_shuffle[:, :keep].unsqueeze(-1).expand(B, keep, D))
    mask = torch.ones(B, N, dtype=x.dtype, device=x.device)
    mask[:, :keep] = 0.0
    mask = torch.gather(mask, 1, {restore})
    return x_kept, mask, {restore}
"""
ROUND, NOISE, RESTORE = (
    "round(N * (1 - mask_ratio))",
    "torch.rand(B, N, device=x.device)",
    "ids_restore",
)

# one noise row for the whole batch: every sample hides the same patches
A3_MASKING_SHARED_NOISE = _MASKING.format(
    keep=ROUND, noise="torch.rand(1, N, device=x.device).expand(B, N)", restore=RESTORE
)
# returns (and uses) the shuffle itself instead of its inverse
A3_MASKING_NOT_INVERSE = _MASKING.format(keep=ROUND, noise=NOISE, restore="ids_shuffle")
# floor instead of round: int(10 * (1 - 0.9)) = 0
A3_MASKING_FLOOR = _MASKING.format(keep="int(N * (1 - mask_ratio))", noise=NOISE, restore=RESTORE)
# noise drawn on the CPU whatever the input's device: fails (only) on a GPU
A3_MASKING_CPU_NOISE = _MASKING.format(keep=ROUND, noise="torch.rand(B, N)", restore=RESTORE)

A3_LOSS_ALL_PATCHES = """
def masked_patch_loss(pred, target, mask):
    return ((pred - target) ** 2).mean()  # averages over the visible patches too
"""

A3_LOSS_PER_SAMPLE = """
def masked_patch_loss(pred, target, mask):
    per_patch = ((pred - target) ** 2).mean(dim=-1)
    # the mean of each sample's mean: a different weighting when samples hide different numbers
    return ((per_patch * mask).sum(dim=1) / mask.sum(dim=1)).mean()
"""

A3_UNSHUFFLE_WRONG_PERMUTATION = """
def unshuffle(x_kept, mask_token, ids_restore):
    B, K, D = x_kept.shape
    N = ids_restore.shape[1]
    shuffled = torch.cat([x_kept, mask_token.expand(B, N - K, D)], dim=1)
    ids_shuffle = torch.argsort(ids_restore, dim=1)  # the wrong way round
    return torch.gather(shuffled, 1, ids_shuffle.unsqueeze(-1).expand(B, N, D))
"""

A3_UNSHUFFLE_TOKENS_FIRST = """
def unshuffle(x_kept, mask_token, ids_restore):
    B, K, D = x_kept.shape
    N = ids_restore.shape[1]
    shuffled = torch.cat([mask_token.expand(B, N - K, D), x_kept], dim=1)  # mask tokens first
    return torch.gather(shuffled, 1, ids_restore.unsqueeze(-1).expand(B, N, D))
"""

_BERT = """
def bert_mask(ids, vocab_size, mask_prob=0.15):
    u = torch.rand(ids.shape, device=ids.device)
    v = torch.rand(ids.shape, device=ids.device)
    chosen = (u < mask_prob){pad}
    words = torch.randint({low}, vocab_size, ids.shape, device=ids.device)
    inputs = ids.clone()
    inputs[chosen & (v < {mask_share})] = MASK_ID
    random_word = chosen & (v >= 0.8) & (v < {random_end})
    inputs[random_word] = words[random_word]
    labels = torch.full_like(ids, IGNORE_INDEX)
    labelled = {labelled}
    labels[labelled] = ids[labelled]
    return inputs, labels
"""
BERT = {
    "pad": " & (ids != PAD_ID)",
    "low": "FIRST_WORD_ID",
    "mask_share": "0.8",
    "random_end": "0.9",
    "labelled": "chosen",
}

A3_BERT_ALL_MASK = _BERT.format(**{**BERT, "mask_share": "1.0"})  # no 10% random, 10% kept
A3_BERT_TWO_PERCENT_RANDOM = _BERT.format(**{**BERT, "random_end": "0.82"})  # 10% of the 20%
A3_BERT_SPECIAL_WORDS = _BERT.format(**{**BERT, "low": "0"})  # may draw [PAD] or [MASK]
A3_BERT_LABELS_ONLY_AT_MASK = _BERT.format(**{**BERT, "labelled": "chosen & (v < 0.8)"})
A3_BERT_CHOOSES_PAD = _BERT.format(**{**BERT, "pad": ""})
A3_BERT_CPU_NOISE = _BERT.format(**BERT).replace(", device=ids.device)", ")")  # GPU only

A3_MASKING = [
    "test_masking_visible",
    "test_masking_keep_count_hidden",
    "test_masking_inverse_hidden",
    "test_masking_per_sample_hidden",
]
A3_LOSS = ["test_loss_visible", "test_loss_hidden"]
A3_UNSHUFFLE = ["test_unshuffle_visible", "test_unshuffle_hidden"]
A3_BERT = ["test_bert_visible", "test_bert_hidden"]
ON_GPU = torch.cuda.is_available()  # a tensor left on the CPU only fails next to a GPU

CLASS = {
    "alice": ({}, []),
    "amir": (
        {
            "random_masking": A3_MASKING_SCATTER,
            "masked_patch_loss": A3_LOSS_BOOLEAN_INDEX,
            "unshuffle": A3_UNSHUFFLE_WHERE,
            "bert_mask": A3_BERT_BERNOULLI,
        },
        [],
    ),
    "bea": ({"random_masking": A3_MASKING_SHARED_NOISE}, ["test_masking_per_sample_hidden"]),
    "chen": (
        {"random_masking": A3_MASKING_NOT_INVERSE},
        ["test_masking_visible", "test_masking_inverse_hidden", "test_masking_per_sample_hidden"],
    ),
    "dara": ({"random_masking": A3_MASKING_FLOOR}, ["test_masking_keep_count_hidden"]),
    "eli": (
        {"random_masking": A3_MASKING_CPU_NOISE},
        ["test_masking_per_sample_hidden"] if ON_GPU else [],
    ),
    "fay": ({"masked_patch_loss": A3_LOSS_ALL_PATCHES}, A3_LOSS),
    "gus": ({"masked_patch_loss": A3_LOSS_PER_SAMPLE}, A3_LOSS),
    "hana": ({"unshuffle": A3_UNSHUFFLE_WRONG_PERMUTATION}, A3_UNSHUFFLE),
    "ivo": ({"unshuffle": A3_UNSHUFFLE_TOKENS_FIRST}, A3_UNSHUFFLE),
    "jun": ({"bert_mask": A3_BERT_ALL_MASK}, A3_BERT),
    "kim": ({"bert_mask": A3_BERT_TWO_PERCENT_RANDOM}, A3_BERT),
    "lee": ({"bert_mask": A3_BERT_SPECIAL_WORDS}, ["test_bert_hidden"]),
    "mia": ({"bert_mask": A3_BERT_LABELS_ONLY_AT_MASK}, A3_BERT),
    "noor": ({"bert_mask": A3_BERT_CHOOSES_PAD}, ["test_bert_hidden"]),
    "omar": ({"bert_mask": A3_BERT_CPU_NOISE}, A3_BERT if ON_GPU else []),
}
