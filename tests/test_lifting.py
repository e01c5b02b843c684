"""vislearn.lifting: the data, Procrustes alignment and the metrics, and the lifting models'
symmetries (permutation equivariance, padding and occluded points change nothing)."""

import math

import pytest
import torch

from vislearn.lifting import (
    CENTRE,
    HELD_OUT_CATEGORIES,
    LEFT,
    RIGHT,
    SKELETONS,
    TRAIN_CATEGORIES,
    FlatLifter,
    LiftingTransformer,
    MLPLifter,
    evaluate_lifter,
    load_lifter,
    make_categories,
    mpjpe,
    pa_mpjpe,
    procrustes,
    procrustes_align,
    procrustes_loss,
    random_rotations,
    sample_batch,
    train_lifter,
)
from vislearn.testing import assert_close, make_generator, random_tensor


def random_rotation(lead: tuple[int, ...], generator, device, dtype=torch.float64):
    """Uniformly random rotations ``(*lead, 3, 3)`` (QR of a Gaussian, signs fixed)."""
    Q, R = torch.linalg.qr(torch.randn(*lead, 3, 3, generator=generator, dtype=torch.float64))
    Q = Q * torch.sign(torch.diagonal(R, dim1=-2, dim2=-1))[..., None, :]
    Q[..., :, 0] *= torch.linalg.det(Q)[..., None]  # det +1
    return Q.to(device=device, dtype=dtype)


@pytest.fixture
def one_thread():
    """Small tensors: threads only wait for one another, badly so on a busy machine."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def cost(R, s, t, P, Q, mask=None):
    """The weighted squared distance that procrustes minimises."""
    w = torch.ones(P.shape[:-1], dtype=P.dtype, device=P.device) if mask is None else mask
    residual = s[..., None, None] * P @ R.mT + t[..., None, :] - Q
    return (w * residual.pow(2).sum(-1)).sum(-1)


# --- alignment and metrics -------------------------------------------------------------------


@pytest.mark.parametrize("lead", [(), (5,), (2, 3)])
def test_procrustes_recovers_a_known_rotation_scale_and_translation(device, lead):
    g = make_generator(0)
    P = random_tensor((*lead, 7, 3), g, device=device, dtype=torch.float64)  # N = 7 rows
    R_true = random_rotation(lead, g, device)
    s_true = torch.full(lead, 1.7, dtype=torch.float64, device=device)
    t_true = random_tensor((*lead, 3), g, scale=3.0, device=device, dtype=torch.float64)
    Q = s_true[..., None, None] * P @ R_true.mT + t_true[..., None, :]
    R, s, t = procrustes(P, Q)
    assert_close(R, R_true, name="R")
    assert_close(s, s_true, name="s")
    assert_close(t, t_true, name="t")
    assert_close(procrustes_align(P, Q), Q, name="aligned points")
    R, s, t = procrustes(P, Q, scale=False)  # rigid fit: the right rotation, scale 1
    assert_close(R, R_true, name="R of the rigid fit")
    assert (s == 1).all()


def test_procrustes_never_returns_a_reflection(device):
    """Q is a mirror image of P: the best orthogonal fit is a reflection (det -1). procrustes
    must return the best *rotation*, which flips the axis of the smallest singular value."""
    g = make_generator(1)
    P = random_tensor((64, 9, 3), g, device=device, dtype=torch.float64)
    mirror = torch.diag(torch.tensor([1.0, 1.0, -1.0], dtype=torch.float64, device=device))
    Q = P @ (random_rotation((64,), g, device) @ mirror).mT
    Q = Q + 0.05 * random_tensor(Q.shape, g, device=device, dtype=torch.float64)
    U, _, Vh = torch.linalg.svd(P.mT @ Q)  # P and Q are about centred; the sign test holds
    assert (torch.linalg.det(Vh.mT @ U.mT) < 0).all(), "the best orthogonal fit should reflect"
    R, s, t = procrustes(P, Q)
    assert_close(torch.linalg.det(R), torch.ones(64, dtype=torch.float64, device=device))
    assert_close(R.mT @ R, torch.eye(3, dtype=torch.float64, device=device).expand(64, 3, 3))
    # Optimal among rotations: no small rotation of R lowers the cost (s, t refitted).
    best = cost(R, s, t, P, Q)
    for _ in range(20):
        axis = random_tensor((64, 3), g, scale=0.05, device=device, dtype=torch.float64)
        K = torch.zeros(64, 3, 3, dtype=torch.float64, device=device)
        K[:, 0, 1], K[:, 0, 2], K[:, 1, 2] = -axis[:, 2], axis[:, 1], -axis[:, 0]
        R_near = torch.linalg.matrix_exp(K - K.mT) @ R
        mu_p, mu_q = P.mean(-2), Q.mean(-2)
        Pc, Qc = P - mu_p[:, None], Q - mu_q[:, None]
        s_near = (Qc * (Pc @ R_near.mT)).sum((-2, -1)) / Pc.pow(2).sum((-2, -1))
        t_near = mu_q - s_near[:, None] * (mu_p[:, None] @ R_near.mT)[:, 0]
        assert (cost(R_near, s_near, t_near, P, Q) >= best - 1e-9).all()


def test_procrustes_ignores_unobserved_points(device):
    g = make_generator(2)
    P = random_tensor((4, 10, 3), g, device=device, dtype=torch.float64)
    Q = P @ random_rotation((4,), g, device).mT * 0.8 + 1.0
    Q = Q + 0.02 * random_tensor(Q.shape, g, device=device, dtype=torch.float64)
    mask = torch.rand(4, 10, generator=g).to(device) < 0.6
    mask[:, :4] = True
    garbage = torch.where(mask[..., None], P, float("nan"))  # nothing there, not even a number
    for b in range(4):
        expected = procrustes(P[b][mask[b]], Q[b][mask[b]])
        for got, want, name in zip(procrustes(garbage, Q, mask), expected, "Rst", strict=True):
            assert_close(got[b], want, name=name, inputs=f"sample {b} with a mask")
        assert_close(
            pa_mpjpe(garbage, Q, mask)[b], pa_mpjpe(P[b][mask[b]], Q[b][mask[b]]), name="PA"
        )


def test_procrustes_is_differentiable():
    g = make_generator(3)
    P = random_tensor((2, 6, 3), g, dtype=torch.float64, requires_grad=True)
    Q = random_tensor((2, 6, 3), g, dtype=torch.float64)
    torch.autograd.gradcheck(lambda p: procrustes_align(p, Q), (P,))


def test_procrustes_loss_gradient_is_exact_without_differentiating_the_rotation(device):
    """The envelope theorem: detaching the optimal rotation leaves the gradient unchanged."""
    g = make_generator(4)
    pred = random_tensor((8, 11, 3), g, device=device, dtype=torch.float64, requires_grad=True)
    target = random_tensor((8, 11, 3), g, device=device, dtype=torch.float64)
    mask = (torch.rand(8, 11, generator=g) < 0.8).to(device)
    (grad,) = torch.autograd.grad(procrustes_loss(pred, target, mask), pred)
    aligned = procrustes_align(pred, target, mask, scale=False)  # gradient through the SVD
    squared = (mask * (aligned - target).pow(2).sum(-1)).sum(-1) / mask.sum(-1)
    (expected,) = torch.autograd.grad(squared.mean(), pred)
    assert_close(grad, expected)


def test_pa_mpjpe_is_invariant_to_rotating_scaling_and_moving_the_prediction(device):
    g = make_generator(5)
    target = random_tensor((16, 12, 3), g, device=device)
    pred = target + 0.1 * random_tensor(target.shape, g, device=device)
    mask = (torch.rand(16, 12, generator=g) < 0.7).to(device)
    mask[:, :4] = True
    error = pa_mpjpe(pred, target, mask)
    R = random_rotation((16,), g, device, dtype=torch.float32)
    moved = 2.5 * pred @ R.mT + torch.tensor([3.0, -1.0, 2.0], device=device)
    assert_close(pa_mpjpe(moved, target, mask), error, atol=1e-5, rtol=1e-4)
    # ... while the plain MPJPE changes, and the PA error is never larger.
    assert (mpjpe(moved, target, mask) > 10 * error).all()
    assert (error <= mpjpe(pred, target, mask) + 1e-6).all()


def test_mpjpe_averages_distances_over_observed_points(device):
    target = torch.zeros(2, 4, 3, device=device)
    pred = torch.zeros(2, 4, 3, device=device)
    pred[0, :, 0] = torch.tensor([3.0, 1.0, 2.0, float("inf")], device=device)
    pred[1, :, 1] = torch.tensor([4.0, 0.0, 0.0, 0.0], device=device)
    mask = torch.tensor([[True, True, True, False], [True] * 4], device=device)
    assert_close(mpjpe(pred, target, mask), torch.tensor([2.0, 1.0], device=device))
    assert_close(mpjpe(pred[1:], target[1:]), torch.tensor([1.0], device=device))


# --- data ------------------------------------------------------------------------------------


def test_categories_are_normalised_with_sides_and_simple_skeletons():
    for category in make_categories():
        T = category.template
        assert_close(T.mean(0), torch.zeros(3), atol=1e-6, name=category.name)
        assert math.isclose(T.pow(2).sum(1).mean().item(), 1.0, rel_tol=1e-5)
        assert category.keypoints == tuple(SKELETONS[category.name][0])
        a, b = category.bones
        assert (a != b).all(), f"{category.name}: a bone from a point to itself"
        pairs = {frozenset(p) for p in category.bones.T.tolist()}
        assert len(pairs) == category.bones.shape[1], f"{category.name}: a bone listed twice"
        left, right = category.side == LEFT, category.side == RIGHT
        assert (T[left, 0] > 0).all() and (T[right, 0] < 0).all()
        assert (T[category.side == CENTRE, 0].abs() < 1e-6).all()
        assert left.sum() == right.sum()
        # Deformations keep the centroid, and shapes vary by ~10-30% of the size.
        shapes = category.shapes(500, make_generator(0))
        assert_close(shapes.mean(1), torch.zeros(500, 3), atol=1e-5, name=category.name)
        spread = (shapes - T).pow(2).sum(-1).mean().sqrt().item()
        assert 0.1 < spread < 0.4, (category.name, spread)
    assert not set(TRAIN_CATEGORIES) & set(HELD_OUT_CATEGORIES)


def test_random_rotations_are_rotations():
    R = random_rotations(1000, make_generator(0))
    assert_close(R @ R.mT, torch.eye(3).expand(1000, 3, 3), atol=1e-5)
    assert_close(torch.linalg.det(R), torch.ones(1000), atol=1e-5)
    up = R[:, :, 1]  # where the object's "up" ends up in the camera frame
    assert (up[:, 1] > 0).all(), "the cameras never look at an object upside down"


def test_sample_batch_pads_masks_and_lists_edges_between_observed_points():
    categories = make_categories(TRAIN_CATEGORIES)
    batch = sample_batch(categories, 64, make_generator(0), missing_rate=0.3, noise_std=0.0)
    B, N = 64, max(c.num_points for c in categories)
    assert batch.points2d.shape == (B, N, 2) and batch.points3d.shape == (B, N, 3)
    assert batch.visible.shape == batch.valid.shape == batch.side.shape == (B, N)
    assert batch.rotation.shape == (B, 3, 3) and batch.category.shape == (B,)
    counts = torch.tensor([categories[c].num_points for c in batch.category])
    assert (batch.num_points == counts).all()
    assert (batch.valid == (torch.arange(N) < counts[:, None])).all()  # padding at the end
    assert not (batch.visible & ~batch.valid).any(), "a padded point is marked observed"
    assert (batch.visible.sum(1) >= 4).all() and (~batch.visible & batch.valid).any()
    assert (batch.points2d[~batch.visible] == 0).all()
    assert_close(batch.points2d[batch.visible], batch.points3d[..., :2][batch.visible])
    assert (batch.points3d[~batch.valid] == 0).all()
    # Each sample's points are a rotated shape of its category.
    for b in range(B):
        category, n = categories[batch.category[b]], counts[b]
        shape = batch.points3d[b, :n] @ batch.rotation[b]  # back to the object frame
        assert (batch.side[b, :n] == category.side).all()
        assert (shape - category.template).norm(dim=-1).mean() < 0.6
    # Edges: both directions, within a sample, between observed points, only bones.
    source, target = batch.edge_index
    assert (source // N == target // N).all()
    assert batch.visible.flatten()[source].all() and batch.visible.flatten()[target].all()
    edges = set(zip(source.tolist(), target.tolist(), strict=True))
    assert edges == {(t, s) for s, t in edges}
    for b in range(B):
        bones = categories[batch.category[b]].edge_index
        seen = batch.visible[b]
        expected = {
            (b * N + i, b * N + j)
            for i, j in bones.T.tolist()
            if seen[i] and seen[j]  # a bone survives when both its ends are observed
        }
        assert {e for e in edges if e[0] // N == b} == expected
    again = sample_batch(categories, 64, make_generator(0), missing_rate=0.3, noise_std=0.0)
    assert (again.points3d == batch.points3d).all(), "the same seed gives the same batch"


def test_batch_permute_and_pad_keep_the_samples(device):
    batch = sample_batch(make_categories(TRAIN_CATEGORIES), 8, make_generator(1)).to(device)
    g = make_generator(2)
    perm = torch.argsort(torch.rand(batch.visible.shape, generator=g), dim=1).to(device)
    shuffled = batch.permute(perm)
    assert (shuffled.points2d == batch.points2d.gather(1, perm[..., None].expand(-1, -1, 2))).all()
    N = batch.visible.shape[1]
    edges = lambda b: {tuple(e) for e in b.edge_index.T.tolist()}  # noqa: E731
    old_index = (perm + N * torch.arange(8, device=device)[:, None]).flatten()  # new -> old
    assert {(old_index[s].item(), old_index[t].item()) for s, t in edges(shuffled)} == edges(batch)
    padded = batch.pad(N + 5)
    assert padded.points2d.shape == (8, N + 5, 2) and not padded.visible[:, N:].any()
    assert (padded.points2d[:, :N] == batch.points2d).all()
    n2 = N + 5
    assert {(s // n2 * N + s % n2, t // n2 * N + t % n2) for s, t in edges(padded)} == edges(batch)


# --- models ----------------------------------------------------------------------------------


def small_transformer(**kwargs) -> LiftingTransformer:
    torch.manual_seed(0)
    return LiftingTransformer(dim=32, depth=2, num_heads=4, graph_heads=2, **kwargs)


def test_lifting_transformer_is_permutation_equivariant(device, one_thread):
    model = small_transformer().to(device=device, dtype=torch.float64).eval()
    batch = sample_batch(make_categories(), 16, make_generator(3)).to(device)
    points2d = batch.points2d.double()
    g = make_generator(4)
    perm = torch.argsort(torch.rand(batch.visible.shape, generator=g), dim=1).to(device)
    shuffled = batch.permute(perm)
    with torch.no_grad():
        out = model(points2d, batch.visible, batch.edge_index, batch.side)
        out_shuffled = model(shuffled.points2d.double(), *shuffled.inputs()[1:])
    assert_close(out_shuffled, out.gather(1, perm[..., None].expand(-1, -1, 3)))
    assert (out[~batch.visible] == 0).all()


def test_padding_and_unobserved_points_change_no_other_output(device, one_thread):
    model = small_transformer().to(device=device, dtype=torch.float64).eval()
    categories = make_categories()
    batch = sample_batch(categories, 12, make_generator(5), missing_rate=0.3).to(device)
    N = batch.visible.shape[1]
    padded = batch.pad(N + 7)
    g = make_generator(6)
    # Garbage where nothing is observed: padding and occluded points.
    noise = random_tensor(padded.points2d.shape, g, scale=50.0, device=device)
    garbage = torch.where(padded.visible[..., None], padded.points2d, noise).double()
    with torch.no_grad():
        out = model(batch.points2d.double(), batch.visible, batch.edge_index, batch.side)
        out_padded = model(garbage, padded.visible, padded.edge_index, padded.side)
    assert_close(out_padded[:, :N], out)
    # Even NaN and inf where nothing is observed change nothing.
    nonfinite = torch.tensor([float("nan"), float("inf")], device=device).double()
    hidden = ~padded.visible[..., None].expand_as(garbage)
    poisoned = garbage.masked_scatter(hidden, nonfinite.repeat(int(hidden.sum()) // 2 + 1))
    with torch.no_grad():
        out_poisoned = model(poisoned, padded.visible, padded.edge_index, padded.side)
    assert_close(out_poisoned[:, :N], out, inputs="NaN and inf at unobserved points")
    # A sample alone (no padding at all) gives the same output as inside the batch.
    for b in range(3):
        n = int(batch.num_points[b])
        alone = sample_batch(
            [categories[batch.category[b]]], 1, make_generator(5), missing_rate=0.0
        ).to(device)
        alone.points2d = batch.points2d[b : b + 1, :n]
        alone.visible, alone.side = batch.visible[b : b + 1, :n], batch.side[b : b + 1, :n]
        keep = (batch.edge_index[0] // N) == b
        alone.edge_index = batch.edge_index[:, keep] - b * N
        with torch.no_grad():
            single = model(alone.points2d.double(), *alone.inputs()[1:])
        assert_close(single[0], out[b, :n], inputs=f"sample {b} alone")


def test_mlp_lifter_takes_a_fixed_order_and_any_count_up_to_its_size(device):
    model = MLPLifter(22, hidden=64).to(device)
    batch = sample_batch(make_categories(TRAIN_CATEGORIES), 8, make_generator(7)).to(device)
    out = model(*batch.inputs())
    assert out.shape == (8, 22, 3) and (out[~batch.visible] == 0).all()
    assert model(batch.points2d[:, :10], batch.visible[:, :10]).shape == (8, 10, 3)
    with pytest.raises(ValueError, match="at most 22"):
        model(torch.zeros(1, 23, 2, device=device), torch.ones(1, 23, dtype=torch.bool))
    flat = FlatLifter()(*batch.inputs())
    assert (flat[..., :2] == batch.points2d).all() and (flat[..., 2] == 0).all()


def test_a_short_training_run_lowers_the_loss_and_resumes_exactly(tmp_path, one_thread):
    categories = make_categories(["human", "chair"])
    options = dict(batch_size=32, lr=3e-3, progress=False)
    model = small_transformer()
    history = train_lifter(model, categories, 100, **options)
    first, last = sum(history.loss[:10]) / 10, sum(history.loss[-10:]) / 10
    assert last < 0.75 * first, (first, last)  # from the flat guess's loss, ~0.16 here
    # In two parts through a checkpoint: the same weights and losses.
    path = tmp_path / "lifter.pt"
    part = small_transformer()
    train_lifter(part, categories, 100, checkpoint=path, stop_at=40, **options)
    resumed = small_transformer()
    rest = train_lifter(resumed, categories, 100, checkpoint=path, resume=True, **options)
    assert rest.steps == 100 and len(rest.loss) == 100
    assert rest.loss == pytest.approx(history.loss, rel=1e-4, abs=1e-6)
    loaded = load_lifter(path)
    for name, value in model.state_dict().items():
        assert_close(loaded.state_dict()[name], value, atol=1e-5, rtol=1e-4, name=name)
    errors = evaluate_lifter(loaded, categories, samples=32)
    assert set(errors) == {"human", "chair"}
    assert all(0 < e["pa_mpjpe"] <= e["mpjpe"] for e in errors.values())


def test_the_command_line_trains_checkpoints_and_resumes(tmp_path, one_thread, capsys):
    from vislearn.train_lifting import main

    path = tmp_path / "cli.pt"
    common = ["--dim", "16", "--depth", "1", "--batch-size", "8", "--samples", "4"]
    errors = main([*common, "--steps", "6", "--checkpoint", str(path), "--device", "cpu"])
    assert path.exists() and set(errors) == {"flat", "LiftingTransformer"}
    assert set(errors["flat"]) == set(TRAIN_CATEGORIES) | set(HELD_OUT_CATEGORIES)
    main([*common, "--steps", "8", "--checkpoint", str(path), "--resume", "--device", "cpu"])
    assert torch.load(path, weights_only=False)["step"] == 8
    assert "held out of training" in capsys.readouterr().out
