"""Patches, patch embeddings, the Vision Transformer, attention rollout and the training loop."""

import math

import pytest
import torch

from vislearn.attention import sinusoidal_position_encoding_2d
from vislearn.images import load_digits, random_affine
from vislearn.testing import assert_close, make_generator, random_tensor
from vislearn.vit import (
    PatchEmbedding,
    SimpleCNN,
    VisionTransformer,
    attention_rollout,
    conv_to_linear_weight,
    count_parameters,
    evaluate_classifier,
    linear_to_conv_weight,
    patchify,
    train_classifier,
    unpatchify,
    warmup_cosine,
)


@pytest.fixture(autouse=True)
def _one_cpu_thread():
    """Small matrices gain nothing from threads, and on a busy machine waiting threads slow
    training down many times over (see tests/test_transformer.py)."""
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


# --- patches ---------------------------------------------------------------------------------


def test_patchify_matches_an_explicit_loop_on_non_square_rgb_images(device):
    g = make_generator(0)
    images = random_tensor((2, 3, 12, 20), g, device=device)  # H != W, three channels
    p = 4
    patches = patchify(images, p)
    assert patches.shape == (2, (12 // p) * (20 // p), p * p * 3)
    for b in range(2):
        for row in range(12 // p):
            for col in range(20 // p):
                n = row * (20 // p) + col  # row-major patch order
                for i in range(p):
                    for j in range(p):
                        for c in range(3):  # (P, P, C) order inside a patch
                            value = images[b, c, row * p + i, col * p + j]
                            assert patches[b, n, (i * p + j) * 3 + c] == value


@pytest.mark.parametrize(("shape", "p"), [((2, 3, 12, 20), 4), ((5, 1, 8, 8), 2), ((4, 6, 9), 3)])
def test_unpatchify_inverts_patchify(device, shape, p):
    images = random_tensor(shape, make_generator(1), device=device)
    *_, c, h, w = shape
    patches = patchify(images, p)
    assert torch.equal(unpatchify(patches, p, h, w, c), images)
    assert torch.equal(patchify(unpatchify(patches, p, h, w, c), p), patches)


def test_patchify_keeps_leading_dims():
    images = torch.randn(2, 3, 4, 6, 8)  # two leading dims
    patches = patchify(images, 2)
    assert patches.shape == (2, 3, 12, 16)
    assert torch.equal(patches[1, 2], patchify(images[1, 2], 2))


def test_patch_sizes_are_checked():
    with pytest.raises(ValueError, match="multiples of 4"):
        patchify(torch.zeros(1, 3, 12, 18), 4)
    with pytest.raises(ValueError, match="patches of"):
        unpatchify(torch.zeros(1, 6, 48), 4, 8, 12, 2)
    with pytest.raises(ValueError, match="multiples"):
        PatchEmbedding((10, 12), 4, 3, 8)


def test_conv_and_linear_patch_embeddings_are_equal(device):
    torch.manual_seed(0)
    g = make_generator(2)
    conv = PatchEmbedding((12, 20), 4, 3, dim=16).to(device)
    images = random_tensor((2, 3, 12, 20), g, device=device)
    tokens = conv(images)
    assert tokens.shape == (2, 15, 16)
    linear = conv.as_linear()
    assert isinstance(linear.proj, torch.nn.Linear)
    assert_close(linear(images), tokens, inputs="conv -> linear")
    # The Linear is the paper's x_p E + b on patchify's flattened patches.
    w, b = linear.proj.weight, linear.proj.bias
    assert_close(patchify(images, 4) @ w.T + b, tokens, inputs="x_p E")
    assert_close(linear.as_conv()(images), tokens, inputs="conv -> linear -> conv")
    assert torch.equal(
        linear_to_conv_weight(conv_to_linear_weight(conv.proj.weight), 4, 3), conv.proj.weight
    )
    with pytest.raises(ValueError, match="expected images of shape"):
        conv(random_tensor((2, 3, 12, 16), g, device=device))
    # float64 survives the conversion exactly.
    conv64 = conv.double()
    images64 = images.double()
    assert conv64.as_linear().proj.weight.dtype == torch.float64
    assert_close(conv64.as_linear()(images64), conv64(images64), inputs="float64")


# --- the model --------------------------------------------------------------------------------


@pytest.mark.parametrize("pos_embed", ["learned", "sincos"])
def test_vit_shapes_and_attention_maps(device, pos_embed):
    torch.manual_seed(0)
    model = (
        VisionTransformer((8, 12), 4, 3, 5, dim=16, depth=3, num_heads=2, pos_embed=pos_embed)
        .to(device)
        .eval()
    )
    images = random_tensor((4, 3, 8, 12), make_generator(3), device=device)
    tokens = 2 * 3 + 1  # a 2 x 3 grid of patches and the class token
    assert model(images).shape == (4, 5)
    features = model.forward_features(images)
    assert features.shape == (4, tokens, 16)
    assert_close(model.forward_head(features), model(images))
    logits, maps = model(images, return_attention=True)
    assert_close(logits, model(images))
    assert len(maps) == 3
    for weights in maps:
        assert weights.shape == (4, 2, tokens, tokens)
        assert_close(weights.sum(-1), torch.ones(4, 2, tokens, device=device))
    for a, b in zip(maps, model.get_attention_maps(images), strict=True):
        assert_close(b, a)
    assert model.pos_embed.weight.shape == (tokens, 16)


def test_sincos_position_embedding_is_the_2d_encoding_with_a_zero_class_position():
    model = VisionTransformer((8, 12), 4, 3, 5, dim=16, depth=1, num_heads=2, pos_embed="sincos")
    table = model.pos_embed.weight
    assert (table[0] == 0).all()
    assert_close(table[1:], sinusoidal_position_encoding_2d(2, 3, 16))
    assert not any("pos_embed" in key for key in model.state_dict())  # recomputed, not saved
    with pytest.raises(ValueError, match="pos_embed"):
        VisionTransformer(8, 4, 3, 5, dim=16, depth=1, num_heads=2, pos_embed="rope")


def test_vit_is_permutation_sensitive_only_through_position_embeddings():
    # Without position information the class token's output ignores the order of patches.
    torch.manual_seed(1)
    model = VisionTransformer(8, 2, 1, 4, dim=16, depth=2, num_heads=2).eval()
    images = torch.randn(3, 1, 8, 8)
    perm = torch.randperm(16)
    permuted = unpatchify(patchify(images, 2)[:, perm], 2, 8, 8, 1)
    with torch.no_grad():
        model.pos_embed.weight.zero_()
        assert_close(model(permuted), model(images))


# --- attention rollout ------------------------------------------------------------------------


def random_attention(g, shape):
    return torch.softmax(random_tensor(shape, g, scale=2.0, dtype=torch.float64), dim=-1)


def test_rollout_rows_are_distributions_and_compose_layers():
    g = make_generator(4)
    layers = [random_attention(g, (2, 3, 5, 5)) for _ in range(4)]
    for fusion in ("mean", "max", "min"):
        for discard in (0.0, 0.5):
            rollout = attention_rollout(layers, head_fusion=fusion, discard_ratio=discard)
            assert rollout.shape == (2, 5, 5)
            assert (rollout >= 0).all()
            assert_close(rollout.sum(-1), torch.ones(2, 5, dtype=torch.float64))
    # By hand: A_hat = (mean over heads + I) / 2 (rows of A sum to 1), product last layer first.
    eye = torch.eye(5, dtype=torch.float64)
    hats = [(layer.mean(1) + eye) / 2 for layer in layers]
    expected = hats[3] @ hats[2] @ hats[1] @ hats[0]
    assert_close(attention_rollout(layers), expected)
    assert_close(attention_rollout(torch.stack(layers)), expected)


def test_rollout_of_no_layers_or_of_self_attention_only_is_the_identity():
    eye = torch.eye(6).expand(2, 6, 6)
    assert_close(attention_rollout(torch.empty(0, 2, 4, 6, 6)), eye)
    assert_close(attention_rollout([eye[:, None].expand(2, 4, 6, 6)] * 3), eye)
    model = VisionTransformer(4, 2, 1, 3, dim=8, depth=0, num_heads=2)
    maps = model.get_attention_maps(torch.zeros(2, 1, 4, 4))
    assert maps == []
    with pytest.raises(ValueError, match="no layers"):
        attention_rollout(maps)
    with pytest.raises(ValueError, match="head_fusion"):
        attention_rollout(torch.empty(0, 2, 4, 6, 6), head_fusion="median")


def test_rollout_of_a_vit(device):
    torch.manual_seed(2)
    model = VisionTransformer(8, 2, 1, 10, dim=16, depth=3, num_heads=4).to(device).eval()
    maps = model.get_attention_maps(random_tensor((5, 1, 8, 8), make_generator(5), device=device))
    rollout = attention_rollout(maps)
    assert rollout.shape == (5, 17, 17)
    assert_close(rollout.sum(-1), torch.ones(5, 17, device=device))


# --- baseline and training ----------------------------------------------------------------


def test_simple_cnn_shapes_and_parameter_count():
    model = SimpleCNN(3, 7, width=8)
    assert model(torch.zeros(2, 3, 16, 12)).shape == (2, 7)
    width, c, classes = 8, 3, 7
    convs = 9 * (c * width + width * width + width * 2 * width + 4 * width * width)
    norms = 2 * (width + width + 2 * width + 2 * width)
    head = 2 * width * classes + classes
    assert count_parameters(model) == convs + norms + head


def test_warmup_cosine_schedule():
    factor = warmup_cosine(warmup_steps=4, total_steps=12)
    assert [factor(s) for s in range(4)] == [0.25, 0.5, 0.75, 1.0]
    assert factor(8) == pytest.approx(0.5)
    assert factor(12) == pytest.approx(0.0)
    assert math.isclose(factor(100), 0.0, abs_tol=1e-12)


def test_a_short_training_run_learns_digits(device):
    torch.manual_seed(0)
    data = load_digits(device=device)
    train, test = (data.x_train, data.y_train), (data.x_test, data.y_test)
    model = VisionTransformer(8, 2, 1, 10, dim=32, depth=2, num_heads=4, mlp_ratio=2.0)
    history = train_classifier(
        model,
        train,
        test,
        epochs=5,
        lr=3e-3,
        device=device,
        generator=make_generator(0),
        progress=False,
    )
    assert set(history) >= {"loss", "train_acc", "test_acc", "seconds", "time"}
    assert all(len(values) == 5 for values in history.values())
    assert history["loss"][-1] < 0.5 * history["loss"][0]
    assert history["test_acc"][-1] > 0.6
    loss, accuracy = evaluate_classifier(model, test)
    assert accuracy == history["test_acc"][-1]
    assert loss == pytest.approx(history["test_loss"][-1])


def test_training_accepts_a_data_loader():
    torch.manual_seed(0)
    data = load_digits()
    dataset = torch.utils.data.TensorDataset(data.x_train[:128], data.y_train[:128])
    loader = torch.utils.data.DataLoader(dataset, batch_size=32, shuffle=True)
    model = SimpleCNN(1, 10, width=4)
    history = train_classifier(
        model, loader, loader, epochs=2, lr=1e-2, augment=random_affine, progress=False
    )
    assert len(history["test_acc"]) == 2
    assert history["images_per_second"][0] > 0
