"""The chapters' Experiment exercises that train models, each a function of its budget and
its seed.

A solution page (``book/solutions/<chapter>.md``) shows the function, runs it at a small
scale to show how it works, and answers the exercise with the full-scale results over
several seeds that ``benchmarks/experiment_exercises.py`` computes and commits to
``benchmarks/results/experiment-exercises.json`` (:func:`committed` prints them). The
solutions site puts this file beside its pages; like the solutions, the default book never
reads it.
"""

from __future__ import annotations

import functools
import json
import statistics
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

import vislearn
from vislearn.data import GraphData, data_root, load_planetoid, synthetic_citation_graph
from vislearn.gnn import GCN, GCNLayer, scatter_sum, train_node_classifier
from vislearn.graphs import gcn_norm
from vislearn.images import load_digits, random_affine
from vislearn.lifting import (
    TRAIN_CATEGORIES,
    LiftingTransformer,
    evaluate_lifter,
    make_categories,
    train_lifter,
)
from vislearn.mae import MaskedAutoencoder, linear_probe, stratified_subset
from vislearn.text import Vocabulary, encode_corpus, generate_corpus, next_token_batch
from vislearn.train_mae import MODELS, pretrain
from vislearn.transformer import TinyLanguageModel
from vislearn.vit import VisionTransformer, train_classifier

REPOSITORY = Path(vislearn.__file__).resolve().parents[2]  # lib/vislearn/__init__.py
RESULTS = REPOSITORY / "benchmarks" / "results" / "experiment-exercises.json"
BLOCK_SIZE = 16  # words per window of the language model


@functools.cache
def language_data(device: torch.device):
    """The attention chapter's corpus: its vocabulary, the training stream ``(L,)`` of word
    ids and the validation windows ``inputs, targets (256, BLOCK_SIZE)``."""
    train_sentences = generate_corpus(4000, torch.Generator().manual_seed(0))
    vocab = Vocabulary.from_sentences(train_sentences)
    train_stream = encode_corpus(train_sentences, vocab)  # (L,)
    val_stream = encode_corpus(generate_corpus(500, torch.Generator().manual_seed(1)), vocab)
    val = next_token_batch(val_stream, 256, BLOCK_SIZE, torch.Generator().manual_seed(2), device)
    return vocab, train_stream, val


def language_model(num_heads: int = 4, positions: bool = True, steps: int = 600,
                   seed: int = 0) -> float:  # fmt: skip
    """The attention chapter's causal ``TinyLanguageModel`` (width 64, 2 layers) trained as
    the chapter trains it, with ``num_heads`` heads and, unless ``positions``, its learned
    position table zeroed and frozen; returns its validation loss in nats per word."""
    device = vislearn.default_device()
    vocab, train_stream, (val_inputs, val_targets) = language_data(device)
    gen = vislearn.seed_everything(seed)
    model = TinyLanguageModel(len(vocab), max_len=BLOCK_SIZE, dim=64, depth=2,
                              num_heads=num_heads, causal=True).to(device)  # fmt: skip
    if not positions:
        model.position.weight.data.zero_()
        model.position.weight.requires_grad_(False)
    trained = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(trained, lr=3e-3)
    schedule = torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=3e-3, total_steps=steps)
    for _ in range(steps):
        inputs, targets = next_token_batch(train_stream, 32, BLOCK_SIZE, gen, device)  # (32, T)
        loss = F.cross_entropy(model(inputs).flatten(0, 1), targets.flatten())
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        schedule.step()
    model.eval()
    with torch.no_grad():
        logits = model(val_inputs)  # (256, T, V)
    return F.cross_entropy(logits.flatten(0, 1), val_targets.flatten()).item()


@functools.cache
def digits(device: torch.device):
    """scikit-learn's digits on ``device``: ``x_train (1437, 1, 8, 8)``, ``y_train``,
    ``x_test (360, 1, 8, 8)``, ``y_test``."""
    return load_digits(device=device)


def vit_on_digits(patch_size: int = 2, positions: bool = True, epochs: int = 30,
                  seed: int = 0) -> tuple[VisionTransformer, dict[str, list[float]]]:  # fmt: skip
    """The vision-transformer chapter's ViT (learned positions, 3 layers of width 64 with 4
    heads) and training recipe on the digits, with ``patch_size`` and, unless
    ``positions``, its position table zeroed and frozen; returns the model and its training
    history (``"test_acc"`` and ``"seconds"`` of training per epoch among them)."""
    device = vislearn.default_device()
    data = digits(device)
    vislearn.seed_everything(seed)
    model = VisionTransformer(image_size=8, patch_size=patch_size, in_channels=1, num_classes=10,
                              dim=64, depth=3, num_heads=4, mlp_ratio=2.0)  # fmt: skip
    if not positions:
        model.pos_embed.weight.data.zero_()
        model.pos_embed.weight.requires_grad_(False)
    history = train_classifier(
        model, (data.x_train, data.y_train), (data.x_test, data.y_test), epochs=epochs,
        lr=3e-3, warmup_epochs=2, label_smoothing=0.1, augment=random_affine, device=device,
        generator=torch.Generator().manual_seed(seed), progress=False,
    )  # fmt: skip
    return model, history


def mae_mask_ratio(ratio: float, epochs: int = 60, seed: int = 0) -> dict[str, float]:
    """The masked self-supervision chapter's small MAE pre-trained on the digits as the
    chapter does, with mask ratio ``ratio``: its test reconstruction loss at its own ratio
    and at 0.75, and the test accuracy (%) of a linear probe on 1% of the labels."""
    device = vislearn.default_device()
    x_train, y_train, x_test, y_test = digits(device)
    vislearn.seed_everything(seed)
    patch, dim, depth, heads, decoder_dim, decoder_depth, decoder_heads = MODELS["digits"]
    mae = MaskedAutoencoder(8, patch, 1, dim, depth, heads, decoder_dim, decoder_depth,
                            decoder_heads, mask_ratio=ratio).to(device)  # fmt: skip
    pretrain(mae, x_train, epochs=epochs, batch_size=64, lr=4e-3, seed=seed, progress=False)
    mae.eval()
    with torch.no_grad():
        own = mae(x_test, ratio, torch.Generator().manual_seed(1))[0].item()
        common = mae(x_test, 0.75, torch.Generator().manual_seed(1))[0].item()
    probe_gen = torch.Generator().manual_seed(seed)
    few = stratified_subset(y_train, 0.01, probe_gen).to(device)  # 1 or 2 per class
    probe = linear_probe(mae.vit, (x_train[few], y_train[few]), (x_test, y_test), 10,
                         generator=probe_gen)  # fmt: skip
    return {"loss at its ratio": own, "loss at 0.75": common, "probe, 1% (%)": 100 * probe.test_acc}


@functools.cache
def citation_graph() -> GraphData:
    """Cora, where the graphs chapter finds it, else the chapter's synthetic stand-in."""
    shared = REPOSITORY.parent / "shared" / "data"
    root = shared if (shared / "planetoid").is_dir() else data_root()
    try:
        return load_planetoid("cora", root=root)
    except (FileNotFoundError, ImportError):  # no files (or no SciPy to read them)
        return synthetic_citation_graph(generator=torch.Generator().manual_seed(0))


class GCNLayerWithoutLoops(GCNLayer):
    """``GCNLayer`` normalised without self-loops: a node reads only its neighbours."""

    def forward(self, x, edge_index, edge_weight=None):
        edge_index, weight = gcn_norm(edge_index, x.shape[0], add_self_loops=False,
                                      edge_weight=edge_weight, dtype=x.dtype)  # fmt: skip
        source, target = edge_index  # (E,), (E,)
        messages = self.lin(x).index_select(0, source) * weight[:, None]  # (E, F')
        return scatter_sum(messages, target, x.shape[0]) + self.bias


def gcn_self_loops(self_loops: bool = True, epochs: int = 200, seed: int = 0) -> float:
    """Test accuracy (%) of the graphs chapter's two-layer GCN trained on
    :func:`citation_graph` as the chapter trains it, with its self-loops or without."""
    graph = citation_graph()
    vislearn.seed_everything(seed)
    model = GCN(graph.num_features, graph.num_classes, cached=True)
    if not self_loops:
        model.conv1 = GCNLayerWithoutLoops(graph.num_features, 16)
        model.conv2 = GCNLayerWithoutLoops(16, graph.num_classes)
    result = train_node_classifier(model, graph, epochs=epochs, lr=0.01, weight_decay=5e-4,
                                   device=vislearn.default_device())  # fmt: skip
    return 100 * result.test_acc


@functools.cache
def lifting_categories():
    """The lifting chapter's training categories."""
    return make_categories(TRAIN_CATEGORIES)


def lifter(use_side: bool = True, steps: int = 700, seed: int = 0) -> LiftingTransformer:
    """The lifting chapter's ``LiftingTransformer``, with or without its side tags, trained
    as the chapter trains it for ``steps`` steps of 64 samples."""
    torch.manual_seed(seed)
    model = LiftingTransformer(use_side=use_side).to(vislearn.default_device())
    train_lifter(model, lifting_categories(), steps, batch_size=64, seed=seed, progress=False)
    return model.eval()


class WithoutSkeleton(nn.Module):
    """A lifter called with an empty edge list: its graph attention sees each point alone."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, points2d, mask, edge_index, side):
        return self.model(points2d, mask, edge_index[:, :0], side)  # edge_index (2, 0)


def lifting_errors(model: nn.Module, skeleton: bool = True) -> dict[str, float]:
    """PA-MPJPE (% of the object's size) of ``model`` on each training category and their
    mean, with its skeleton or with none."""
    model = model if skeleton else WithoutSkeleton(model)
    errors = evaluate_lifter(model, lifting_categories(), device=vislearn.default_device())
    pa_mpjpe = {name: e["pa_mpjpe"] for name, e in errors.items()}
    return {**pa_mpjpe, "mean": statistics.mean(pa_mpjpe.values())}


def committed(experiment: str) -> dict[str, dict[str, list[float]]]:
    """The committed full-scale results of ``experiment`` (a key of
    ``benchmarks/results/experiment-exercises.json``), per variant and metric one value per
    seed; prints how they were made."""
    record = json.loads(RESULTS.read_text())
    entry = record["experiments"][experiment]
    settings = ", ".join(f"{key} {value}" for key, value in entry["settings"].items())
    print(f"committed results, seeds {record['seeds']}: {settings}\n  $ {entry['command']}\n"
          f"  ({entry['device']}, torch {entry['versions']['torch']})")  # fmt: skip
    return entry["results"]


def mean_std(runs: list[float], decimals: int = 1) -> str:
    """``runs`` as their mean ± their standard deviation."""
    return f"{statistics.mean(runs):.{decimals}f} ± {statistics.stdev(runs):.{decimals}f}"
