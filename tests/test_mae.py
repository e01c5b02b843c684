"""Masked autoencoders: per-sample masking, unshuffling, the masked loss, the model, its
pre-training entry point on one and on two processes, and exact resumption."""

import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from vislearn.mae import (
    MaskedAutoencoder,
    keep_count,
    masked_patch_loss,
    patch_targets,
    random_masking,
    stratified_subset,
    unshuffle,
)
from vislearn.testing import assert_close, make_generator, random_tensor
from vislearn.train_mae import epoch_noise, main

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(autouse=True)
def _one_cpu_thread():
    """Tiny tensors: threads only add waiting on a busy machine."""
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


# --- masking ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("n", "ratio", "keep"),
    [(16, 0.75, 4), (10, 0.9, 1), (49, 0.9, 5), (7, 0.5, 4), (10, 0.25, 8), (5, 0.0, 5)],
)
def test_keep_count_rounds(n, ratio, keep):
    """round, not int(): int(10 * (1 - 0.9)) = int(0.999...) = 0 and int(49 * 0.1) = 4."""
    assert keep_count(n, ratio) == keep


def test_keep_count_rejects_ratios_outside_0_1():
    for ratio in (-0.1, 1.0, 1.5):
        with pytest.raises(ValueError, match="mask_ratio"):
            keep_count(16, ratio)
    with pytest.raises(ValueError, match="no visible patch"):
        keep_count(2, 0.75)  # round(0.5) = 0: nothing left for the encoder


@pytest.mark.parametrize(("n", "ratio"), [(49, 0.9), (16, 0.75), (10, 0.25)])
def test_random_masking_keeps_round_n_tokens_per_sample_and_masks_differ(device, n, ratio):
    x = random_tensor((32, n, 6), make_generator(0), device=device)
    x_kept, mask, ids_restore = random_masking(x, ratio, make_generator(1))
    keep = keep_count(n, ratio)
    assert x_kept.shape == (32, keep, 6)
    assert mask.shape == ids_restore.shape == (32, n)
    assert {x_kept.device, mask.device, ids_restore.device} == {x.device}
    assert mask.dtype == x.dtype and ((mask == 0) | (mask == 1)).all()
    assert (mask.sum(dim=1) == n - keep).all(), "every sample hides the same number"
    assert len(torch.unique(mask, dim=0)) > 16, "each sample gets its own mask"


def test_ids_restore_inverts_the_shuffle(device):
    x = random_tensor((8, 20, 5), make_generator(2), device=device)
    x_kept, mask, ids_restore = random_masking(x, 0.6, make_generator(3))
    keep = x_kept.shape[1]
    assert (ids_restore.sort(dim=1).values == torch.arange(20, device=device)).all()
    assert torch.equal(mask.bool(), ids_restore >= keep)
    for b in range(8):
        visible = (mask[b] == 0).nonzero().flatten()  # original positions, ascending
        # visible token n sits at shuffled position ids_restore[b, n] of x_kept
        assert torch.equal(x_kept[b, ids_restore[b, visible]], x[b, visible])
    token = random_tensor((5,), make_generator(4), device=device)
    full = unshuffle(x_kept, token, ids_restore)  # (B, N, D)
    hidden = mask.bool()
    assert torch.equal(full[~hidden], x[~hidden]), "visible tokens back in their place"
    assert torch.equal(full[hidden], token.expand(int(hidden.sum()), 5))


def test_given_noise_decides_and_a_cpu_generator_is_device_independent(device):
    x = random_tensor((4, 9, 3), make_generator(5), device=device)
    noise = torch.rand(4, 9, generator=make_generator(6))
    _, mask, _ = random_masking(x, 0.5, noise=noise)
    kept = torch.argsort(noise, dim=1)[:, :4]  # the smallest noise values stay
    expected = torch.ones(4, 9).scatter_(1, kept, 0.0)
    assert torch.equal(mask.cpu(), expected)
    on_cpu = random_masking(x.cpu(), 0.5, make_generator(7))
    on_device = random_masking(x, 0.5, make_generator(7))
    for a, b in zip(on_cpu, on_device, strict=True):
        assert torch.equal(a, b.cpu())
    assert random_masking(x, 0.5)[1].device == x.device


# --- loss ------------------------------------------------------------------------------------


def test_loss_ignores_visible_patches(device):
    g = make_generator(8)
    pred = random_tensor((6, 16, 4), g, device=device, requires_grad=True)
    target = random_tensor((6, 16, 4), g, device=device)
    _, mask, _ = random_masking(target, 0.75, g)
    loss = masked_patch_loss(pred, target, mask)
    hidden = mask.bool()
    expected = (pred - target)[hidden].pow(2).mean()
    assert_close(loss, expected)
    perturbed = pred.detach().clone()
    perturbed[~hidden] += 100.0  # visible patches' predictions: arbitrary
    assert_close(masked_patch_loss(perturbed, target, mask), loss.detach())
    perturbed[hidden] += 0.1
    assert (masked_patch_loss(perturbed, target, mask) - loss).abs() > 1e-3
    loss.backward()
    assert (pred.grad[~hidden] == 0).all() and (pred.grad[hidden] != 0).any()
    with pytest.raises(ValueError, match="hides no patch"):  # the model refuses ratio 0
        small_mae().to(device)(random_tensor((2, 3, 8, 12), g, device=device), mask_ratio=0.0)


def test_normalised_pixel_targets(device):
    images = random_tensor((3, 2, 8, 12), make_generator(9), device=device)
    target = patch_targets(images, 4, norm_pix=True)  # (3, 6, 32)
    assert target.shape == (3, 6, 32)
    assert_close(target.mean(-1), torch.zeros(3, 6, device=device), atol=1e-5)
    assert_close(target.var(-1), torch.ones(3, 6, device=device), atol=1e-4, rtol=1e-4)


# --- the model -------------------------------------------------------------------------------


def small_mae(**kwargs):
    torch.manual_seed(0)
    config = dict(dim=32, depth=2, num_heads=4, decoder_dim=16, decoder_depth=1)
    return MaskedAutoencoder((8, 12), 2, 3, **config, decoder_num_heads=2, **kwargs)


def test_encoder_sees_only_visible_patches_and_equals_the_vit_without_masking(device):
    mae = small_mae().to(device)
    images = random_tensor((3, 3, 8, 12), make_generator(10), device=device)
    latent, mask, ids_restore = mae.forward_encoder(images, 0.75, make_generator(11))
    assert latent.shape == (3, 1 + 6, 32), "class token and 6 of 24 patches"
    loss, pred, mask = mae(images, generator=make_generator(11))
    assert pred.shape == (3, 24, 12) and loss.ndim == 0
    # Ratio 0: every patch, shuffled; unshuffled, it is exactly the ViT's own forward pass.
    latent, mask, ids_restore = mae.forward_encoder(images, 0.0, make_generator(12))
    assert (mask == 0).all()
    full = mae.vit.forward_features(images)  # (B, 1 + N, D)
    assert_close(latent[:, 0], full[:, 0], atol=1e-5)
    patches = unshuffle(latent[:, 1:], torch.zeros(32, device=device), ids_restore)
    assert_close(patches, full[:, 1:], atol=1e-5)


def test_the_order_of_the_visible_patches_does_not_matter(device):
    """Two noises that keep the same patches in different orders: the encoder is
    permutation-equivariant and the decoder puts every token back by ids_restore, so the
    prediction of every patch must be the same. A missing or wrong unshuffle fails this."""
    mae = small_mae().to(device).eval()
    images = random_tensor((2, 3, 8, 12), make_generator(14), device=device)
    noise = torch.rand(2, 24, generator=make_generator(15)).to(device)
    kept = noise.argsort(dim=1)[:, :6]  # the 6 kept patches, in the order the encoder sees
    reordered = noise.clone()
    reordered.scatter_(1, kept, noise.gather(1, kept).flip(1))  # same set, reversed order
    with torch.no_grad():
        loss, pred, mask = mae(images, noise=noise)
        loss_r, pred_r, mask_r = mae(images, noise=reordered)
    assert torch.equal(mask, mask_r)
    assert_close(pred_r, pred, atol=1e-5)
    assert_close(loss_r, loss, atol=1e-6)


def test_norm_pix_loss_trains_on_standardised_patches_and_reconstructs_pixels(device):
    mae = small_mae(norm_pix_loss=True).to(device)
    images = random_tensor((2, 3, 8, 12), make_generator(16), device=device)
    loss, pred, mask = mae(images, generator=make_generator(17))
    target = patch_targets(images, 2, norm_pix=True)
    assert_close(loss, masked_patch_loss(pred, target, mask))
    # reconstruct maps predictions back with each true patch's mean and std: a perfect
    # prediction of the standardised target gives back the image's pixels.
    mae.forward_decoder = lambda latent, ids_restore: target
    out = mae.reconstruct(images, generator=make_generator(17))
    assert_close(out.prediction, images, atol=1e-5)


def test_classifier_copies_the_encoder(device):
    mae = small_mae().to(device)
    vit = mae.classifier(num_classes=5)
    images = random_tensor((2, 3, 8, 12), make_generator(13), device=device)
    assert_close(vit.forward_features(images), mae.vit.forward_features(images))
    assert vit(images).shape == (2, 5)
    assert vit.cls_token.data_ptr() != mae.vit.cls_token.data_ptr(), "a copy"


def test_reconstructions_improve_over_a_short_run():
    from vislearn.images import load_digits

    images = load_digits().x_train[:512]
    torch.manual_seed(0)
    mae = MaskedAutoencoder(8, 2, 1, 32, 2, 4, 32, 1, 4, mask_ratio=0.5)
    g = make_generator(14)
    optimizer = torch.optim.AdamW(mae.parameters(), lr=3e-3, betas=(0.9, 0.95))
    probe = make_generator(15)
    before = mae(images, generator=probe)[0].item()
    for _ in range(40):
        loss = mae(images[torch.randint(512, (64,), generator=g)], generator=g)[0]
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    after = mae(images, generator=make_generator(15))[0].item()
    assert after < 0.5 * before, (before, after)
    shown = mae.reconstruct(images[:4], generator=make_generator(16))
    assert shown.prediction.shape == shown.pasted.shape == (4, 1, 8, 8)
    visible = shown.mask == 0
    assert torch.equal(shown.pasted[visible], images[:4][visible])
    assert (shown.masked[~visible] == 0).all()


def test_stratified_subset_keeps_every_class():
    labels = torch.arange(10).repeat_interleave(torch.arange(20, 30))  # 245 labels, 10 classes
    index = stratified_subset(labels, 0.01, make_generator(17))
    assert sorted(labels[index].tolist()) == list(range(10)), "one of each class at 1%"
    index = stratified_subset(labels, 0.5, make_generator(17))
    assert len(index) == sum(round(0.5 * n) for n in range(20, 30))
    assert len(index.unique()) == len(index)


# --- the pre-training entry point ------------------------------------------------------------

TINY = [
    "--dim",
    "16",
    "--depth",
    "1",
    "--heads",
    "2",
    "--decoder-dim",
    "16",
    "--decoder-depth",
    "1",
    "--decoder-heads",
    "2",
    "--no-progress",
    "--seed",
    "3",
]


def test_masking_noise_is_a_table_fixed_by_seed_and_epoch():
    """Every process draws the same table (a function of seed and epoch only, whatever was
    drawn before) and looks its samples up by index; that processes then agree is
    test_two_processes_match_one_process."""
    table = epoch_noise(0, 1, 100, 16)
    assert table.shape == (100, 16)
    torch.rand(5)  # the global random state plays no part
    assert torch.equal(epoch_noise(0, 1, 100, 16), table)
    assert not torch.equal(epoch_noise(0, 2, 100, 16), table), "a new mask every epoch"
    assert not torch.equal(epoch_noise(1, 1, 100, 16), table), "another seed, other masks"
    assert len({tuple(row.argsort().tolist()) for row in table}) == 100, "rows differ"


def test_resuming_continues_exactly(tmp_path):
    args = [*TINY, "--batch-size", "256", "--device", "cpu", "--warmup-epochs", "1"]
    straight = tmp_path / "straight.pt"
    main([*args, "--epochs", "2", "--checkpoint", str(straight)])
    resumed = tmp_path / "resumed.pt"
    main([*args, "--epochs", "2", "--max-steps", "7", "--checkpoint", str(resumed)])
    main([*args, "--epochs", "2", "--checkpoint", str(resumed), "--resume"])
    a, b = (torch.load(p, weights_only=True) for p in (straight, resumed))
    assert a["step"] == b["step"] == 10
    assert a["history"]["loss"] == b["history"]["loss"]
    for key, value in a["model"].items():
        assert torch.equal(value, b["model"][key]), key


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.slow
def test_two_processes_match_one_process(tmp_path):
    """torchrun with 2 CPU processes (Gloo) and the same global batch: the same losses and
    weights as one process, up to the order of floating-point sums."""
    args = [*TINY, "--batch-size", "256", "--device", "cpu", "--epochs", "2", "--max-steps", "6"]
    single = tmp_path / "single.pt"
    main([*args, "--checkpoint", str(single)])
    double = tmp_path / "double.pt"
    torchrun = Path(sys.executable).with_name("torchrun")
    command = [
        str(torchrun),
        "--nproc_per_node=2",
        "--master_port",
        str(free_port()),
        "-m",
        "vislearn.train_mae",
        *args,
        "--checkpoint",
        str(double),
    ]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    result = subprocess.run(command, capture_output=True, text=True, timeout=120, env=env)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    one, two = (torch.load(p, weights_only=True) for p in (single, double))
    assert one["world_size"] == 1 and two["world_size"] == 2
    assert one["step"] == two["step"] == 6
    torch.testing.assert_close(
        torch.tensor(two["history"]["loss"]),
        torch.tensor(one["history"]["loss"]),
        rtol=1e-5,
        atol=1e-6,
    )
    for key, value in one["model"].items():
        torch.testing.assert_close(two["model"][key], value, rtol=1e-4, atol=1e-5, msg=key)
