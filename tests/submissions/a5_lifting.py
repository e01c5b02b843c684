"""A class of a5_lifting submissions (see tests/submissions/__init__.py)."""

A5_KABSCH_EINSUM = """
def kabsch(P, Q):
    # a correct solution in another style: einsum, and the fix as a sign on V's last column
    p_bar, q_bar = P.mean(-2), Q.mean(-2)
    H = torch.einsum("...ni,...nj->...ij", P - p_bar[..., None, :], Q - q_bar[..., None, :])
    U, S, Vh = torch.linalg.svd(H)
    V = Vh.transpose(-1, -2).clone()
    V[..., :, 2] *= torch.sign(torch.det(V @ U.transpose(-1, -2)))[..., None]
    R = V @ U.transpose(-1, -2)
    t = q_bar - torch.einsum("...ij,...j->...i", R, p_bar)
    return R, t
"""

A5_PA_LOOP = """
def pa_mpjpe(pred, target, mask=None):
    # a correct solution in another style: one sample at a time, reusing the student's kabsch
    if mask is None:
        mask = torch.ones(pred.shape[:-1], dtype=torch.bool, device=pred.device)
    lead, N = pred.shape[:-2], pred.shape[-2]
    P, Q, M = pred.reshape(-1, N, 3), target.reshape(-1, N, 3), mask.reshape(-1, N)
    errors = []
    for p, q, m in zip(P, Q, M):
        p, q = p[m], q[m]  # the observed points only
        pc, qc = p - p.mean(0), q - q.mean(0)
        R, _ = kabsch(pc, qc)
        s = (qc * (pc @ R.T)).sum() / (pc ** 2).sum()  # the best scale for this rotation
        errors.append((s * pc @ R.T - qc).norm(dim=-1).mean())
    return torch.stack(errors).reshape(lead)
"""

A5_KABSCH_NO_REFLECTION_FIX = """
def kabsch(P, Q):
    p_bar, q_bar = P.mean(dim=-2, keepdim=True), Q.mean(dim=-2, keepdim=True)
    U, S, Vh = torch.linalg.svd((P - p_bar).mT @ (Q - q_bar))
    R = Vh.mT @ U.mT  # may be a reflection
    return R, (q_bar - p_bar @ R.mT).squeeze(-2)
"""

A5_KABSCH_NOT_CENTRED = """
def kabsch(P, Q):
    U, S, Vh = torch.linalg.svd(P.mT @ Q)  # the centroids were never subtracted
    d = torch.linalg.det(Vh.mT @ U.mT)
    D = torch.diag_embed(torch.stack([torch.ones_like(d), torch.ones_like(d), d], dim=-1))
    R = Vh.mT @ D @ U.mT
    t = Q.mean(dim=-2) - (P.mean(dim=-2, keepdim=True) @ R.mT).squeeze(-2)
    return R, t
"""

A5_KABSCH_POINTS_AS_COLUMNS = """
def kabsch(P, Q):
    # reads the points as columns (3, N), as in some textbooks
    p_bar, q_bar = P.mean(dim=-1, keepdim=True), Q.mean(dim=-1, keepdim=True)
    U, S, Vh = torch.linalg.svd((P - p_bar) @ (Q - q_bar).mT)
    d = torch.linalg.det(Vh.mT @ U.mT)
    D = torch.ones_like(S)
    D[..., -1] = d
    R = Vh.mT @ torch.diag_embed(D) @ U.mT
    return R, (q_bar - R @ p_bar).squeeze(-1)
"""

A5_KABSCH_TRANSPOSED = """
def kabsch(P, Q):
    p_bar, q_bar = P.mean(dim=-2, keepdim=True), Q.mean(dim=-2, keepdim=True)
    U, S, Vh = torch.linalg.svd((P - p_bar).mT @ (Q - q_bar))
    d = torch.linalg.det(U @ Vh)
    D = torch.diag_embed(torch.stack([torch.ones_like(d), torch.ones_like(d), d], dim=-1))
    R = U @ D @ Vh  # the inverse rotation: it maps Q onto P
    return R, (q_bar - p_bar @ R.mT).squeeze(-2)
"""

A5_KABSCH_CENTRED_OVER_COORDINATES = """
def kabsch(P, Q):
    p_bar, q_bar = P.mean(dim=-1, keepdim=True), Q.mean(dim=-1, keepdim=True)  # wrong axis
    U, S, Vh = torch.linalg.svd((P - p_bar).mT @ (Q - q_bar))
    d = torch.linalg.det(Vh.mT @ U.mT)
    D = torch.diag_embed(torch.stack([torch.ones_like(d), torch.ones_like(d), d], dim=-1))
    R = Vh.mT @ D @ U.mT
    t = Q.mean(dim=-2) - (P.mean(dim=-2, keepdim=True) @ R.mT).squeeze(-2)
    return R, t
"""

A5_KABSCH_NEGATED_REFLECTION = """
def kabsch(P, Q):
    p_bar, q_bar = P.mean(dim=-2, keepdim=True), Q.mean(dim=-2, keepdim=True)
    U, S, Vh = torch.linalg.svd((P - p_bar).mT @ (Q - q_bar))
    R = Vh.mT @ U.mT
    R = R * torch.linalg.det(R)[..., None, None]  # -R is a rotation, but not the best one
    return R, (q_bar - p_bar @ R.mT).squeeze(-2)
"""

A5_KABSCH_FLIPS_LARGEST = """
def kabsch(P, Q):
    p_bar, q_bar = P.mean(dim=-2, keepdim=True), Q.mean(dim=-2, keepdim=True)
    U, S, Vh = torch.linalg.svd((P - p_bar).mT @ (Q - q_bar))
    d = torch.linalg.det(Vh.mT @ U.mT)
    D = torch.diag_embed(torch.stack([d, torch.ones_like(d), torch.ones_like(d)], dim=-1))
    R = Vh.mT @ D @ U.mT  # flips the largest singular direction, not the smallest
    return R, (q_bar - p_bar @ R.mT).squeeze(-2)
"""


def _pa(body: str) -> str:
    """A pa_mpjpe whose alignment is the instructor's, with ``body`` computing the result
    from ``w``, ``count``, ``p_bar``, ``q_bar``, ``P``, ``Q``, ``U``, ``S``, ``Vh``, ``D``."""
    return (
        """
def pa_mpjpe(pred, target, mask=None):
    if mask is None:
        mask = torch.ones(pred.shape[:-1], dtype=torch.bool, device=pred.device)
    w = mask.to(pred.dtype)[..., None]
    count = w.sum(dim=-2, keepdim=True)
    p_bar = (w * pred).sum(dim=-2, keepdim=True) / count
    q_bar = (w * target).sum(dim=-2, keepdim=True) / count
    P, Q = w * (pred - p_bar), w * (target - q_bar)
    U, S, Vh = torch.linalg.svd(P.mT @ Q)
    d = torch.where(torch.linalg.det(Vh.mT @ U.mT) < 0, -1.0, 1.0).to(pred.dtype)
    D = torch.stack([torch.ones_like(d), torch.ones_like(d), d], dim=-1)
"""
        + body
    )


A5_PA_MASK_IGNORED = """
def pa_mpjpe(pred, target, mask=None):
    # the mask is accepted, then forgotten: every point counts
    p_bar, q_bar = pred.mean(dim=-2, keepdim=True), target.mean(dim=-2, keepdim=True)
    P, Q = pred - p_bar, target - q_bar
    U, S, Vh = torch.linalg.svd(P.mT @ Q)
    d = torch.where(torch.linalg.det(Vh.mT @ U.mT) < 0, -1.0, 1.0).to(pred.dtype)
    D = torch.stack([torch.ones_like(d), torch.ones_like(d), d], dim=-1)
    R = Vh.mT @ torch.diag_embed(D) @ U.mT
    s = (S * D).sum(dim=-1) / P.pow(2).sum(dim=(-2, -1))
    return (s[..., None, None] * P @ R.mT - Q).norm(dim=-1).mean(dim=-1)
"""

A5_PA_NO_SCALE = _pa(
    """    R = Vh.mT @ torch.diag_embed(D) @ U.mT
    aligned = (pred - p_bar) @ R.mT + q_bar  # rotation and translation only
    return (w[..., 0] * (aligned - target).norm(dim=-1)).sum(-1) / count[..., 0, 0]
"""
)

A5_PA_NO_REFLECTION_FIX = _pa(
    """    R = Vh.mT @ U.mT  # may be a reflection
    s = S.sum(dim=-1) / P.pow(2).sum(dim=(-2, -1))
    aligned = s[..., None, None] * (pred - p_bar) @ R.mT + q_bar
    return (w[..., 0] * (aligned - target).norm(dim=-1)).sum(-1) / count[..., 0, 0]
"""
)

A5_PA_MASK_ONLY_IN_THE_MEAN = """
def pa_mpjpe(pred, target, mask=None):
    if mask is None:
        mask = torch.ones(pred.shape[:-1], dtype=torch.bool, device=pred.device)
    p_bar, q_bar = pred.mean(dim=-2, keepdim=True), target.mean(dim=-2, keepdim=True)
    P, Q = pred - p_bar, target - q_bar  # fitted on every point, observed or not
    U, S, Vh = torch.linalg.svd(P.mT @ Q)
    d = torch.where(torch.linalg.det(Vh.mT @ U.mT) < 0, -1.0, 1.0).to(pred.dtype)
    D = torch.stack([torch.ones_like(d), torch.ones_like(d), d], dim=-1)
    R = Vh.mT @ torch.diag_embed(D) @ U.mT
    s = (S * D).sum(dim=-1) / P.pow(2).sum(dim=(-2, -1))
    error = (s[..., None, None] * P @ R.mT - Q).norm(dim=-1)
    return (error * mask).sum(dim=-1) / mask.sum(dim=-1)
"""

A5_PA_SQUARED = _pa(
    """    R = Vh.mT @ torch.diag_embed(D) @ U.mT
    s = (S * D).sum(dim=-1) / P.pow(2).sum(dim=(-2, -1))
    aligned = s[..., None, None] * (pred - p_bar) @ R.mT + q_bar
    squared = (aligned - target).pow(2).sum(dim=-1)  # a mean squared error, no square root
    return (w[..., 0] * squared).sum(-1) / count[..., 0, 0]
"""
)

A5_PA_BATCH_MEAN = _pa(
    """    R = Vh.mT @ torch.diag_embed(D) @ U.mT
    s = (S * D).sum(dim=-1) / P.pow(2).sum(dim=(-2, -1))
    aligned = s[..., None, None] * (pred - p_bar) @ R.mT + q_bar
    error = (w[..., 0] * (aligned - target).norm(dim=-1)).sum(-1) / count[..., 0, 0]
    return error.mean()  # one number for the whole batch
"""
)

A5_PA_DIVIDES_BY_N = _pa(
    """    R = Vh.mT @ torch.diag_embed(D) @ U.mT
    s = (S * D).sum(dim=-1) / P.pow(2).sum(dim=(-2, -1))
    aligned = s[..., None, None] * (pred - p_bar) @ R.mT + q_bar
    return (w[..., 0] * (aligned - target).norm(dim=-1)).mean(dim=-1)  # / N, not / observed
"""
)

KABSCH = ["test_kabsch_visible", "test_kabsch_hidden", "test_kabsch_reflection_hidden"]
PA = ["test_pa_mpjpe_visible", "test_pa_mpjpe_hidden", "test_pa_mpjpe_mask_hidden"]

CLASS = {
    "alice": ({}, []),
    "amir": ({"kabsch": A5_KABSCH_EINSUM, "pa_mpjpe": A5_PA_LOOP}, []),
    "bea": ({"kabsch": A5_KABSCH_NO_REFLECTION_FIX}, ["test_kabsch_reflection_hidden"]),
    "chen": ({"kabsch": A5_KABSCH_NOT_CENTRED}, KABSCH),
    "dara": ({"kabsch": A5_KABSCH_POINTS_AS_COLUMNS}, KABSCH),
    "eli": ({"kabsch": A5_KABSCH_TRANSPOSED}, KABSCH),
    "fay": ({"kabsch": A5_KABSCH_CENTRED_OVER_COORDINATES}, KABSCH),
    "gus": ({"kabsch": A5_KABSCH_NEGATED_REFLECTION}, ["test_kabsch_reflection_hidden"]),
    "hana": ({"kabsch": A5_KABSCH_FLIPS_LARGEST}, ["test_kabsch_reflection_hidden"]),
    "ivo": (
        {"pa_mpjpe": A5_PA_MASK_IGNORED},
        ["test_pa_mpjpe_visible", "test_pa_mpjpe_mask_hidden"],
    ),
    "jun": ({"pa_mpjpe": A5_PA_NO_SCALE}, PA),
    "kai": (
        {"pa_mpjpe": A5_PA_NO_REFLECTION_FIX},
        ["test_pa_mpjpe_hidden", "test_pa_mpjpe_mask_hidden"],
    ),
    "lea": (
        {"pa_mpjpe": A5_PA_MASK_ONLY_IN_THE_MEAN},
        ["test_pa_mpjpe_visible", "test_pa_mpjpe_mask_hidden"],
    ),
    "max": ({"pa_mpjpe": A5_PA_SQUARED}, PA),
    "noa": ({"pa_mpjpe": A5_PA_BATCH_MEAN}, PA),
    "omar": (
        {"pa_mpjpe": A5_PA_DIVIDES_BY_N},
        ["test_pa_mpjpe_visible", "test_pa_mpjpe_mask_hidden"],
    ),
}
