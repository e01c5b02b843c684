"""Function bodies shared by the corpus: a correct softmax and a wrong one."""

CORRECT_SOFTMAX = """
    work = x.float() if x.dtype in (torch.float16, torch.bfloat16) else x
    m = work.amax(dim=dim, keepdim=True)
    m = torch.where(torch.isfinite(m), m, torch.zeros_like(m))
    e = (work - m).exp()
    s = e.sum(dim=dim, keepdim=True)
    return (e / torch.where(s > 0, s, torch.ones_like(s))).to(x.dtype)
"""

# Right shape, dtype and device, wrong values: what a cheat would hand in.
UNIFORM_SOFTMAX = """
def softmax(x, dim=-1):
    return torch.full_like(x, 1.0 / x.shape[dim])
"""
