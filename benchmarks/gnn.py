"""Training-epoch time and memory of vislearn's GCN and GAT against PyTorch Geometric's.

Two workloads, each model with the same architecture in both libraries (GCN: 2 layers, 16
hidden, cached normalisation; GAT: 8 heads x 8 hidden, then 1 head):

1. Cora (or a synthetic graph of Cora's size if the Planetoid files are absent).
2. Synthetic graphs with a fixed number of nodes and 10^4, 10^5, 10^6 directed edges, to show
   how time and memory grow with the edges.

One epoch = zero_grad, forward, cross-entropy on the training nodes, backward, Adam step; the
median over ``--repeats`` epochs after warm-up is reported, the two libraries' epochs taking
turns so that changes in the machine's load hit both alike. Memory: ``saved`` is the size of
the tensors autograd keeps for the backward pass (every device), ``peak`` the CUDA allocator's
peak during one epoch above what was allocated before it (CUDA only).

    python benchmarks/gnn.py --device auto --out benchmarks/results/gnn-<device>.json
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import statistics
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from vislearn import default_device, device_name, synchronize
from vislearn.data import GraphData, load_planetoid, synthetic_citation_graph
from vislearn.gnn import GAT, GCN, input_dropout

try:
    import torch_geometric
    from torch_geometric.nn import GATConv, GCNConv
except ImportError:  # the comparison columns are left empty
    torch_geometric = None

REPO = Path(__file__).resolve().parents[1]


# --- PyG models with the same architecture as vislearn.gnn.GCN and GAT -----------------------


class PygGCN(nn.Module):
    def __init__(self, in_dim: int, num_classes: int, hidden_dim: int = 16, dropout: float = 0.5):
        super().__init__()
        self.dropout = dropout
        self.conv1 = GCNConv(in_dim, hidden_dim, cached=True)
        self.conv2 = GCNConv(hidden_dim, num_classes, cached=True)

    def forward(self, x, edge_index):
        x = input_dropout(x, self.dropout, self.training)
        x = F.relu(self.conv1(x, edge_index))
        x = F.dropout(x, self.dropout, self.training)
        return self.conv2(x, edge_index)


class PygGAT(nn.Module):
    def __init__(self, in_dim: int, num_classes: int, hidden_dim=8, heads=8, dropout=0.6):
        super().__init__()
        self.dropout = dropout
        self.conv1 = GATConv(in_dim, hidden_dim, heads=heads, dropout=dropout)
        self.conv2 = GATConv(
            heads * hidden_dim, num_classes, heads=1, concat=False, dropout=dropout
        )

    def forward(self, x, edge_index):
        x = input_dropout(x, self.dropout, self.training)
        x = F.elu(self.conv1(x, edge_index))
        x = F.dropout(x, self.dropout, self.training)
        return self.conv2(x, edge_index)


MODELS = {  # name: (vislearn model, PyG model), each built from the data's sizes
    "GCN": (
        lambda d: GCN(d.num_features, d.num_classes, cached=True),
        lambda d: PygGCN(d.num_features, d.num_classes),
    ),
    "GAT": (
        lambda d: GAT(d.num_features, d.num_classes),
        lambda d: PygGAT(d.num_features, d.num_classes),
    ),
}


# --- measurement -------------------------------------------------------------------------------


def make_step(model: nn.Module, data: GraphData):
    optimizer = torch.optim.Adam(model.parameters(), lr=0.01, weight_decay=5e-4)

    def step() -> None:
        optimizer.zero_grad()
        logits = model(data.x, data.edge_index)
        F.cross_entropy(logits[data.train_mask], data.y[data.train_mask]).backward()
        optimizer.step()

    return step


def saved_for_backward_mb(model: nn.Module, data: GraphData) -> float:
    """Megabytes of distinct storages that autograd saves during one forward pass."""
    storages: dict[int, int] = {}

    def pack(tensor: torch.Tensor) -> torch.Tensor:
        storage = tensor.untyped_storage()
        storages[storage.data_ptr()] = storage.nbytes()
        return tensor

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda tensor: tensor):
        logits = model(data.x, data.edge_index)
    del logits
    return sum(storages.values()) / 2**20


def peak_mb(step, device: torch.device) -> float | None:
    """CUDA only: the allocator's peak during one epoch, above what was allocated before."""
    if device.type != "cuda":
        return None
    torch.cuda.reset_peak_memory_stats(device)
    before = torch.cuda.memory_allocated(device)
    step()
    synchronize(device)
    return (torch.cuda.max_memory_allocated(device) - before) / 2**20


def measure(models: dict[str, nn.Module], data: GraphData, repeats: int, warmup: int) -> dict:
    """Median epoch time and memory of each model. The timed epochs of the models take turns,
    so that a change in the machine's load affects them alike."""
    device = data.x.device
    steps = {}
    for name, model in models.items():
        model.train()
        steps[name] = make_step(model, data)
        for _ in range(warmup):
            steps[name]()
    times: dict[str, list[float]] = {name: [] for name in models}
    for _ in range(repeats):
        for name, step in steps.items():
            synchronize(device)
            start = time.perf_counter()
            step()
            synchronize(device)
            times[name].append(time.perf_counter() - start)
    return {
        name: {
            "ms_per_epoch": 1e3 * statistics.median(times[name]),
            "saved_mb": saved_for_backward_mb(model, data),
            "peak_mb": peak_mb(steps[name], device),
        }
        for name, model in models.items()
    }


def compare(name: str, data: GraphData, device: torch.device, repeats: int, warmup: int) -> list:
    rows = []
    for model_name, (ours, theirs) in MODELS.items():
        row = {"workload": name, "model": model_name, "nodes": data.num_nodes}
        row["edges"], row["features"] = data.num_edges, data.num_features
        torch.manual_seed(0)
        models = {"ours": ours(data).to(device)}
        if torch_geometric is not None:
            torch.manual_seed(0)
            models["pyg"] = theirs(data).to(device)
        row.update(measure(models, data, repeats, warmup))
        rows.append(row)
        print_row(row)
    return rows


def scaling_graph(num_nodes: int, num_edges: int, num_features: int, seed: int) -> GraphData:
    """A synthetic citation graph with about ``num_edges`` directed edges, 80% within a class."""
    classes = 7
    per_node = num_edges / num_nodes  # expected neighbours of one node
    p_in = 0.8 * per_node / (num_nodes / classes)
    p_out = 0.2 * per_node / (num_nodes * (classes - 1) / classes)
    return synthetic_citation_graph(
        num_nodes, classes, num_features, p_in, p_out, torch.Generator().manual_seed(seed)
    )


# --- output ------------------------------------------------------------------------------------


def fmt(value: float | None, digits: int = 1) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


HEADER = (
    f"{'workload':<16}{'model':<6}{'edges':>9} | {'ours ms':>9}{'PyG ms':>9}{'ours/PyG':>9} | "
    f"{'saved MB ours':>14}{'PyG':>8} | {'peak MB ours':>13}{'PyG':>8}"
)


def print_row(row: dict) -> None:
    ours, pyg = row["ours"], row.get("pyg")
    ratio = ours["ms_per_epoch"] / pyg["ms_per_epoch"] if pyg else None
    print(
        f"{row['workload']:<16}{row['model']:<6}{row['edges']:>9} | "
        f"{fmt(ours['ms_per_epoch']):>9}{fmt(pyg and pyg['ms_per_epoch']):>9}"
        f"{fmt(ratio, 2):>9} | {fmt(ours['saved_mb']):>14}{fmt(pyg and pyg['saved_mb']):>8} | "
        f"{fmt(ours['peak_mb']):>13}{fmt(pyg and pyg['peak_mb']):>8}",
        flush=True,
    )


def cora_or_stand_in(root: str | None) -> tuple[str, GraphData]:
    try:
        return "Cora", load_planetoid("cora", root=root)
    except FileNotFoundError as error:
        print(f"Cora not available ({error}); using a synthetic graph of its size")
        return "synthetic Cora", synthetic_citation_graph(
            generator=torch.Generator().manual_seed(0)
        )


def default_root() -> str | None:
    shared = REPO.parent / "shared/data"
    return str(shared) if (shared / "planetoid").is_dir() else None  # else $VISLEARN_DATA


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:1, mps ...")
    parser.add_argument("--root", default=default_root(), help="data root holding planetoid/")
    parser.add_argument("--repeats", type=int, default=20, help="timed epochs on Cora")
    parser.add_argument("--scaling-repeats", type=int, default=5, help="timed epochs per size")
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--edges", type=float, nargs="+", default=[1e4, 1e5, 1e6])
    parser.add_argument("--nodes", type=int, default=10_000, help="nodes of the scaling graphs")
    parser.add_argument("--features", type=int, default=128, help="features, scaling graphs")
    parser.add_argument("--threads", type=int, default=None, help="CPU threads (torch default)")
    parser.add_argument("--out", default=None, help="JSON file (default results/gnn-<dev>.json)")
    args = parser.parse_args()

    device = default_device() if args.device == "auto" else torch.device(args.device)
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    out = Path(args.out or REPO / f"benchmarks/results/gnn-{device.type}.json")
    if torch_geometric is None:
        print("torch_geometric is not installed: measuring vislearn only")
    name = device_name(device)
    threads = torch.get_num_threads()
    print(f"device {device} ({name}), torch {torch.__version__}, threads {threads}")
    print(HEADER)

    workload, cora = cora_or_stand_in(args.root)
    rows = compare(workload, cora.to(device), device, args.repeats, args.warmup)
    for edges in args.edges:
        graph = scaling_graph(args.nodes, int(edges), args.features, seed=0).to(device)
        rows += compare(f"E~{edges:.0e}", graph, device, args.scaling_repeats, 1)

    out.parent.mkdir(parents=True, exist_ok=True)
    record = {
        "date": datetime.datetime.now().isoformat(timespec="seconds"),
        "command": " ".join([os.path.basename(sys.executable), *sys.argv]),
        "device": str(device),
        "device_name": name,
        "cpu_threads": threads,
        "torch": torch.__version__,
        "torch_geometric": getattr(torch_geometric, "__version__", None),
        "rows": rows,
    }
    out.write_text(json.dumps(record, indent=2) + "\n")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
