"""vislearn: the reference library of the course "Transformers and Beyond".

Every model and kernel that a chapter shows, or that a hidden test compares a student's
work against, lives here once. Modules:

- :mod:`vislearn.device`, :mod:`vislearn.testing`: device selection, seeding and timing; the
  comparisons and random cases used by tests and graders
- :mod:`vislearn.softmax`, :mod:`vislearn.conv`, :mod:`vislearn.attention`,
  :mod:`vislearn.transformer`, :mod:`vislearn.text`: from convolution to the transformer
  layer and a small language model
- :mod:`vislearn.vit`, :mod:`vislearn.efficient_attention`, :mod:`vislearn.images`: Vision
  Transformers, memory-efficient and linear attention, offline image data
- :mod:`vislearn.mlm`, :mod:`vislearn.mae`, :mod:`vislearn.train_mae`: masked language
  modelling and masked autoencoders, and their (multi-process) pre-training entry point
- :mod:`vislearn.graphs`, :mod:`vislearn.gnn`, :mod:`vislearn.data`: Laplacians, GCN and GAT,
  the Planetoid citation graphs
- :mod:`vislearn.lifting`, :mod:`vislearn.train_lifting`: lifting 2-D keypoints to 3-D with a
  permutation-equivariant graph transformer
- :mod:`vislearn.figures`: an interactive explorer's states as one animated image, for the
  static book
- :mod:`vislearn.grader`: the sandboxed autograder of the course's assignments
"""

from vislearn.device import (
    available_devices,
    default_device,
    device_name,
    seed_everything,
    synchronize,
    time_call,
)

__all__ = [
    "available_devices",
    "default_device",
    "device_name",
    "seed_everything",
    "synchronize",
    "time_call",
]
__version__ = "0.1.0"
