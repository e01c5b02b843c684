"""vislearn: the reference library of the course "Transformers and Beyond".

Every model and kernel that a chapter shows, or that a hidden test compares a student's
work against, lives here once. Modules:

- :mod:`vislearn.device`   device selection and seeding
- :mod:`vislearn.softmax`  numerically stable (masked) softmax
- :mod:`vislearn.testing`  comparisons and random cases used by tests and graders
"""

from vislearn.device import available_devices, default_device, seed_everything

__all__ = ["available_devices", "default_device", "seed_everything"]
__version__ = "0.1.0"
