"""vislearn: the reference library of the course "Transformers and Beyond".

Every model and kernel that a chapter shows, or that a hidden test compares a student's
work against, lives here once. Modules:

- :mod:`vislearn.device`, :mod:`vislearn.testing`: device selection and seeding; the
  comparisons and random cases used by tests and graders
- :mod:`vislearn.softmax`, :mod:`vislearn.conv`, :mod:`vislearn.attention`,
  :mod:`vislearn.transformer`, :mod:`vislearn.text`: from convolution to the transformer
  layer and a small language model
- :mod:`vislearn.vit`, :mod:`vislearn.efficient_attention`, :mod:`vislearn.images`: Vision
  Transformers, memory-efficient and linear attention, offline image data
- :mod:`vislearn.graphs`, :mod:`vislearn.gnn`, :mod:`vislearn.data`: Laplacians, GCN and GAT,
  the Planetoid citation graphs
- :mod:`vislearn.grader`: the sandboxed autograder of the course's assignments
"""

from vislearn.device import (
    available_devices,
    default_device,
    device_name,
    seed_everything,
    synchronize,
)

__all__ = ["available_devices", "default_device", "device_name", "seed_everything", "synchronize"]
__version__ = "0.1.0"
