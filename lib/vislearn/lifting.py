r"""Lifting 2D keypoints to 3D: one permutation-equivariant graph transformer for many object
categories, after 3D-LFM (Dabhi, Jeni and Lucey, CVPR 2024), at laptop scale.

Conventions, used everywhere in this module and in the chapter *Lifting 2D keypoints to 3D*:

- **Points are rows.** A shape of ``N`` keypoints is ``(..., N, 3)``, its image ``(..., N, 2)``.
  A rotation ``R`` acts on each point ``p`` as ``R @ p``, i.e. on the rows as
  ``points @ R.mT``.
- **Object frame** (every category's template): ``y`` up, ``z`` the object's front and
  ``x = y × z``, which is the object's own left. **Camera frame:** ``x`` right and ``y`` up in
  the image, ``z`` towards the viewer. The orthographic camera keeps ``(x, y)`` and drops
  the depth ``z``.
- **Units.** Every template is centred and scaled to a root-mean-square distance of 1 from its
  centroid, so errors read as fractions of the object's size (x 100: percent).
- **Masks** are boolean, True where a point is observed. Padding and occluded points are
  False: no model output at an observed point depends on them, and metrics ignore them.
- **Edges** follow :mod:`vislearn.graphs`: ``edge_index`` is ``(2, E)`` ``[source; target]``;
  a batch's edge list indexes the flattened ``B * N`` points and joins observed points only.

Contents: the categories (:class:`Category`, :func:`make_categories`), the data
(:func:`random_rotations`, :func:`sample_batch`, :class:`LiftingBatch`), alignment and
metrics (:func:`procrustes`, :func:`procrustes_align`, :func:`mpjpe`, :func:`pa_mpjpe`,
:func:`procrustes_loss`), the models (:class:`LiftingTransformer`, :class:`MLPLifter`,
:class:`FlatLifter`), and training and evaluation (:func:`train_lifter`,
:func:`evaluate_lifter`, :func:`load_lifter`; the command line is
:mod:`vislearn.train_lifting`).
"""

from __future__ import annotations

import itertools
import math
import time
import zlib
from collections.abc import Sequence
from dataclasses import dataclass, field, fields
from pathlib import Path

import torch
from torch import nn
from tqdm.auto import tqdm

from vislearn.attention import MultiHeadAttention
from vislearn.checkpoint import load_checkpoint, save_checkpoint
from vislearn.gnn import GATLayer
from vislearn.graphs import laplacian, laplacian_eigenbasis, to_dense_adjacency
from vislearn.transformer import MLP
from vislearn.vit import warmup_cosine

# ---------------------------------------------------------------------------------------------
# Categories: templates, skeletons, deformation bases
# ---------------------------------------------------------------------------------------------

CENTRE, LEFT, RIGHT = 0, 1, 2  # the side of the object a keypoint lies on (Category.side)


def _mirror(points: dict[str, tuple[float, float, float]]) -> dict[str, tuple]:
    """Add an ``r_`` twin with ``x -> -x`` for every ``l_`` point (the object's left is +x)."""
    out = dict(points)
    for name, (x, y, z) in points.items():
        if name.startswith("l_"):
            out["r_" + name[2:]] = (-x, y, z)
    return out


def _bones(chains: str) -> list[tuple[str, str]]:
    """Bones from chains ``"a-b-c d-e"`` (separated by white space), each chain with its
    mirror twin (``l_`` and ``r_`` swapped); every bone listed once."""
    swap = {"l_": "r_", "r_": "l_"}
    bones: dict[frozenset, tuple[str, str]] = {}  # each bone once, in order of appearance
    for chain in chains.split():
        names = chain.split("-")
        twin = [swap.get(n[:2], n[:2]) + n[2:] for n in names]
        for a, b in [*itertools.pairwise(names), *itertools.pairwise(twin)]:
            bones.setdefault(frozenset((a, b)), (a, b))
    return list(bones.values())


# Mean shapes in metres (rescaled to unit size by make_category), object frame: y up, z front,
# +x the object's left. Keypoints are listed in a fixed order, which only the MLP baseline uses.
SKELETONS: dict[str, tuple[dict[str, tuple], list[tuple[str, str]]]] = {
    "human": (
        _mirror(
            {
                "pelvis": (0.0, 0.95, 0.0),
                "l_hip": (0.11, 0.92, 0.0),
                "l_knee": (0.12, 0.50, 0.03),
                "l_ankle": (0.12, 0.08, -0.02),
                "spine": (0.0, 1.20, 0.0),
                "thorax": (0.0, 1.45, 0.0),
                "nose": (0.0, 1.60, 0.10),
                "head": (0.0, 1.72, 0.0),
                "l_shoulder": (0.18, 1.45, 0.0),
                "l_elbow": (0.21, 1.17, -0.03),
                "l_wrist": (0.22, 0.92, 0.06),
            }
        ),
        _bones(
            "pelvis-l_hip-l_knee-l_ankle pelvis-spine-thorax-nose-head "
            "thorax-l_shoulder-l_elbow-l_wrist"
        ),
    ),
    "dog": (
        _mirror(
            {
                "nose": (0.0, 0.50, 0.78),
                "skull": (0.0, 0.60, 0.62),
                "l_ear": (0.06, 0.70, 0.58),
                "withers": (0.0, 0.52, 0.32),
                "back": (0.0, 0.50, 0.0),
                "croup": (0.0, 0.50, -0.30),
                "tail_tip": (0.0, 0.38, -0.65),
                "l_shoulder": (0.09, 0.42, 0.30),
                "l_elbow": (0.09, 0.25, 0.32),
                "l_front_paw": (0.09, 0.02, 0.35),
                "l_hip": (0.09, 0.45, -0.28),
                "l_hock": (0.09, 0.20, -0.36),
                "l_hind_paw": (0.09, 0.02, -0.32),
            }
        ),
        _bones(
            "nose-skull-withers-back-croup-tail_tip skull-l_ear "
            "withers-l_shoulder-l_elbow-l_front_paw croup-l_hip-l_hock-l_hind_paw"
        ),
    ),
    "bird": (
        _mirror(
            {
                "beak": (0.0, 0.30, 0.22),
                "head": (0.0, 0.30, 0.14),
                "neck": (0.0, 0.22, 0.08),
                "chest": (0.0, 0.12, 0.05),
                "back": (0.0, 0.17, -0.05),
                "tail": (0.0, 0.12, -0.25),
                "l_wing_root": (0.05, 0.18, 0.0),
                "l_wing_mid": (0.20, 0.21, -0.03),
                "l_wing_tip": (0.35, 0.19, -0.09),
                "l_knee": (0.04, 0.06, 0.0),
                "l_foot": (0.04, 0.0, 0.04),
            }
        ),
        _bones(
            "beak-head-neck-back-tail neck-chest-l_knee-l_foot "
            "back-l_wing_root-l_wing_mid-l_wing_tip"
        ),
    ),
    "car": (
        _mirror(
            {
                "l_front_wheel": (0.80, 0.33, 1.35),
                "l_rear_wheel": (0.80, 0.33, -1.35),
                "l_headlight": (0.70, 0.70, 2.15),
                "l_taillight": (0.70, 0.85, -2.20),
                "l_roof_front": (0.68, 1.45, 0.45),
                "l_roof_rear": (0.68, 1.45, -0.85),
            }
        ),
        _bones(
            "l_headlight-l_front_wheel-l_rear_wheel-l_taillight "
            "l_headlight-l_roof_front-l_roof_rear-l_taillight l_headlight-r_headlight "
            "l_taillight-r_taillight l_roof_front-r_roof_front l_roof_rear-r_roof_rear"
        ),
    ),
    "chair": (
        _mirror(
            {
                "l_seat_front": (0.22, 0.45, 0.22),
                "l_seat_back": (0.22, 0.45, -0.22),
                "l_foot_front": (0.24, 0.0, 0.25),
                "l_foot_back": (0.24, 0.0, -0.25),
                "l_back_top": (0.21, 0.95, -0.28),
            }
        ),
        _bones(
            "l_foot_front-l_seat_front-l_seat_back-l_foot_back l_seat_back-l_back_top "
            "l_seat_front-r_seat_front l_seat_back-r_seat_back l_back_top-r_back_top"
        ),
    ),
    "face": (
        _mirror(
            {
                "l_jaw_top": (0.070, 0.0, 0.0),
                "l_jaw_mid": (0.065, -0.050, 0.020),
                "l_jaw_low": (0.045, -0.090, 0.050),
                "chin": (0.0, -0.110, 0.080),
                "l_brow_out": (0.050, 0.050, 0.070),
                "l_brow_in": (0.015, 0.055, 0.090),
                "l_eye_out": (0.045, 0.030, 0.070),
                "l_eye_in": (0.015, 0.030, 0.080),
                "nose_bridge": (0.0, 0.030, 0.090),
                "nose_tip": (0.0, -0.010, 0.115),
                "nose_base": (0.0, -0.025, 0.100),
                "l_mouth": (0.025, -0.055, 0.085),
                "upper_lip": (0.0, -0.045, 0.100),
                "lower_lip": (0.0, -0.065, 0.095),
            }
        ),
        _bones(
            "l_jaw_top-l_jaw_mid-l_jaw_low-chin l_jaw_top-l_brow_out-l_brow_in "
            "l_eye_out-l_eye_in-nose_bridge-nose_tip-nose_base-upper_lip-l_mouth-lower_lip "
            "l_brow_in-nose_bridge"
        ),
    ),
    "airplane": (
        _mirror(
            {
                "nose": (0.0, 0.0, 1.80),
                "tail": (0.0, 0.10, -1.70),
                "fin_top": (0.0, 0.75, -1.60),
                "l_wing_root": (0.20, 0.0, 0.20),
                "l_wing_tip": (1.70, 0.12, -0.45),
                "l_engine": (0.60, -0.22, 0.25),
                "l_stabiliser_tip": (0.60, 0.12, -1.65),
            }
        ),
        _bones(
            "nose-l_wing_root-tail-fin_top l_wing_root-l_wing_tip l_wing_root-l_engine "
            "tail-l_stabiliser_tip"
        ),
    ),
    # Held out of training in the chapter: cousins of the categories above.
    "giraffe": (
        _mirror(
            {
                "nose": (0.0, 1.95, 0.95),
                "skull": (0.0, 2.05, 0.75),
                "l_ossicone": (0.05, 2.22, 0.70),
                "l_ear": (0.10, 2.10, 0.68),
                "neck_mid": (0.0, 1.60, 0.55),
                "withers": (0.0, 1.25, 0.35),
                "croup": (0.0, 1.05, -0.45),
                "tail_tip": (0.0, 0.55, -0.65),
                "l_shoulder": (0.13, 1.05, 0.35),
                "l_elbow": (0.13, 0.65, 0.37),
                "l_front_hoof": (0.13, 0.0, 0.40),
                "l_hip": (0.13, 0.95, -0.42),
                "l_hock": (0.13, 0.45, -0.52),
                "l_hind_hoof": (0.13, 0.0, -0.45),
            }
        ),
        _bones(
            "nose-skull-neck_mid-withers-croup-tail_tip skull-l_ossicone skull-l_ear "
            "withers-l_shoulder-l_elbow-l_front_hoof croup-l_hip-l_hock-l_hind_hoof"
        ),
    ),
    "dinosaur": (
        _mirror(
            {
                "snout": (0.0, 1.85, 1.60),
                "skull": (0.0, 1.95, 1.25),
                "neck": (0.0, 1.75, 0.90),
                "chest": (0.0, 1.45, 0.55),
                "pelvis": (0.0, 1.55, 0.0),
                "tail_mid": (0.0, 1.45, -1.20),
                "tail_tip": (0.0, 1.10, -2.40),
                "l_shoulder": (0.22, 1.35, 0.65),
                "l_hand": (0.25, 1.10, 0.90),
                "l_hip": (0.30, 1.45, 0.0),
                "l_knee": (0.35, 0.90, 0.25),
                "l_ankle": (0.33, 0.25, -0.15),
                "l_toe": (0.33, 0.0, 0.30),
            }
        ),
        _bones(
            "snout-skull-neck-chest-pelvis-tail_mid-tail_tip chest-l_shoulder-l_hand "
            "pelvis-l_hip-l_knee-l_ankle-l_toe"
        ),
    ),
    "armchair": (
        _mirror(
            {
                "l_seat_front": (0.30, 0.42, 0.30),
                "l_seat_back": (0.30, 0.42, -0.28),
                "l_foot_front": (0.32, 0.0, 0.32),
                "l_foot_back": (0.32, 0.0, -0.32),
                "l_back_top": (0.30, 0.95, -0.35),
                "l_arm_front": (0.36, 0.65, 0.30),
            }
        ),
        _bones(
            "l_foot_front-l_seat_front-l_seat_back-l_foot_back l_seat_back-l_back_top "
            "l_seat_front-l_arm_front-l_back_top l_seat_front-r_seat_front "
            "l_seat_back-r_seat_back l_back_top-r_back_top"
        ),
    ),
}
TRAIN_CATEGORIES = ("human", "dog", "bird", "car", "chair", "face", "airplane")
HELD_OUT_CATEGORIES = ("giraffe", "dinosaur", "armchair")


@dataclass(frozen=True, eq=False)
class Category:
    r"""An object category: a mean shape, its skeleton and a low-rank deformation model.

    A shape of the category is :math:`\mathbf{S} = \bar{\mathbf{S}} + \sum_k a_k
    \mathbf{B}_k` with :math:`a_k \sim \mathcal{N}(0, \sigma_k^2)`, the linear shape model of
    non-rigid structure from motion. Tensors live on the CPU, float32:

    - ``template`` ``(N, 3)``: the mean shape :math:`\bar{\mathbf{S}}`, object frame, centred,
      root-mean-square distance 1 from its centroid;
    - ``bones`` ``(2, E)``: each skeleton edge once (``edge_index`` gives both directions);
    - ``side`` ``(N,)``: :data:`CENTRE`, :data:`LEFT` or :data:`RIGHT`;
    - ``basis`` ``(K, N, 3)`` and ``mode_std`` ``(K,)``: the modes :math:`\mathbf{B}_k` and
      their standard deviations :math:`\sigma_k`. Every mode moves the points without moving
      their centroid.
    """

    name: str
    keypoints: tuple[str, ...]
    template: torch.Tensor
    bones: torch.Tensor
    side: torch.Tensor
    basis: torch.Tensor
    mode_std: torch.Tensor

    @property
    def num_points(self) -> int:
        return self.template.shape[0]

    @property
    def edge_index(self) -> torch.Tensor:
        """The skeleton as a ``(2, 2E)`` edge list, each bone in both directions."""
        return torch.cat([self.bones, self.bones.flip(0)], dim=1)

    def shapes(self, n: int, generator: torch.Generator) -> torch.Tensor:
        """``n`` random shapes of the category, ``(n, N, 3)``, in the object frame."""
        coefficients = torch.randn(n, len(self.mode_std), generator=generator) * self.mode_std
        return self.template + torch.einsum("bk,knd->bnd", coefficients, self.basis)

    def __repr__(self) -> str:
        return (
            f"Category({self.name!r}, {self.num_points} points, {self.bones.shape[1]} bones, "
            f"{len(self.mode_std)} deformation modes)"
        )


def make_category(
    name: str,
    num_smooth_modes: int = 4,
    smooth_std: float = 0.15,
    stretch_std: float = 0.08,
) -> Category:
    r"""Build the :class:`Category` ``name`` from :data:`SKELETONS`.

    The deformation basis has two kinds of modes. Three *stretches* scale the mean shape along
    the object's axes (a wider car, a taller chair): :math:`\mathbf{B} = \bar{\mathbf{S}}
    \mathbf{e}_a\mathbf{e}_a^T`, standard deviation ``stretch_std``. ``num_smooth_modes``
    *smooth* modes move the points along the skeleton's Laplacian eigenvectors
    :math:`\mathbf{u}_k` (the smoothest non-constant ones, see
    :func:`vislearn.graphs.laplacian_eigenbasis`), each in a fixed random 3D direction
    :math:`\mathbf{d}_k`: :math:`\mathbf{B}_k = \sqrt{N}\,\mathbf{u}_k\mathbf{d}_k^T` (one unit
    of displacement per point on average), standard deviation ``smooth_std / sqrt(k)``.
    Neighbours on the skeleton move together, as parts of an object do. The directions are
    drawn from a generator seeded by the name, so a category is the same in every run.
    """
    points, bones = SKELETONS[name]
    keypoints = tuple(points)
    index = {k: i for i, k in enumerate(keypoints)}
    template = torch.tensor([points[k] for k in keypoints], dtype=torch.float64)  # (N, 3)
    template = template - template.mean(dim=0)
    template = template / template.pow(2).sum(dim=1).mean().sqrt()  # RMS radius 1
    num_points = len(keypoints)
    bone_index = torch.tensor([[index[a], index[b]] for a, b in bones]).T  # (2, E)
    side = torch.full((num_points,), CENTRE)
    side[template[:, 0] > 1e-6] = LEFT
    side[template[:, 0] < -1e-6] = RIGHT

    eye = torch.eye(3, dtype=torch.float64)
    stretches = template[None] * eye[:, None, :]  # (3, N, 3): column a of the template only
    edge_index = torch.cat([bone_index, bone_index.flip(0)], dim=1)
    A = to_dense_adjacency(edge_index, num_points, dtype=torch.float64)
    _, U = laplacian_eigenbasis(laplacian(A), num_smooth_modes + 1)  # (N, K + 1)
    U = U[:, 1:]  # drop the constant eigenvector: it would translate the shape
    generator = torch.Generator().manual_seed(zlib.crc32(name.encode()))
    directions = torch.randn(num_smooth_modes, 3, generator=generator, dtype=torch.float64)
    directions = directions / directions.norm(dim=1, keepdim=True)  # (K, 3) unit
    smooth = math.sqrt(num_points) * U.T[:, :, None] * directions[:, None, :]  # (K, N, 3)
    basis = torch.cat([stretches, smooth])  # (3 + K, N, 3)
    mode_std = torch.cat(
        [
            torch.full((3,), stretch_std, dtype=torch.float64),
            smooth_std / torch.arange(1, num_smooth_modes + 1, dtype=torch.float64).sqrt(),
        ]
    )
    return Category(
        name, keypoints, template.float(), bone_index, side, basis.float(), mode_std.float()
    )


def make_categories(names: Sequence[str] | None = None, **kwargs) -> list[Category]:
    """The categories ``names`` (default: all of :data:`SKELETONS`), see :func:`make_category`."""
    return [make_category(name, **kwargs) for name in (names or SKELETONS)]


# ---------------------------------------------------------------------------------------------
# Views, projection, and batches with padding and masks
# ---------------------------------------------------------------------------------------------


def rotation_matrix(axis: str, angle: torch.Tensor) -> torch.Tensor:
    """Rotations by ``angle`` (radians, any shape ``S``) about ``"x"``, ``"y"`` or ``"z"``:
    ``(*S, 3, 3)``, counter-clockwise when the axis points at the viewer."""
    c, s = torch.cos(angle), torch.sin(angle)
    one, zero = torch.ones_like(angle), torch.zeros_like(angle)
    i, j = {"x": (1, 2), "y": (2, 0), "z": (0, 1)}[axis]
    R = torch.stack([one, zero, zero, zero, one, zero, zero, zero, one], dim=-1)
    R = R.unflatten(-1, (3, 3)).clone()
    R[..., i, i], R[..., i, j], R[..., j, i], R[..., j, j] = c, -s, s, c
    return R


def random_rotations(
    n: int,
    generator: torch.Generator,
    *,
    elevation: tuple[float, float] = (-30.0, 60.0),
    roll: float = 15.0,
) -> torch.Tensor:
    """``n`` random object-to-camera rotations ``(n, 3, 3)``, a camera around the object.

    ``R = R_z(roll) R_x(elevation) R_y(azimuth)``: any azimuth (uniform in 360 degrees), an
    elevation uniform in ``elevation`` degrees (positive: seen from above) and a roll uniform in
    ``[-roll, roll]`` degrees.
    """
    u = torch.rand(n, 3, generator=generator, dtype=torch.float64)
    azimuth = (2 * u[:, 0] - 1) * math.pi
    lo, hi = elevation
    tilt = torch.deg2rad(lo + (hi - lo) * u[:, 1])
    spin = torch.deg2rad((2 * u[:, 2] - 1) * roll)
    R = rotation_matrix("z", spin) @ rotation_matrix("x", tilt) @ rotation_matrix("y", azimuth)
    return R.float()


@dataclass
class LiftingBatch:
    """A batch of 2D observations and their 3D ground truth, padded to ``N`` points.

    - ``points2d`` ``(B, N, 2)``: the image (orthographic, noisy); 0 where not observed;
    - ``points3d`` ``(B, N, 3)``: the shape in the camera frame; 0 at padding, the true
      position at occluded points;
    - ``visible`` ``(B, N)``: True where a point is observed (the mask models take);
    - ``valid`` ``(B, N)``: True where the sample has a keypoint (False at padding);
    - ``side`` ``(B, N)``: :data:`CENTRE`, :data:`LEFT` or :data:`RIGHT` (0 at padding);
    - ``edge_index`` ``(2, E)``: the skeleton's bones, both directions, between *observed*
      points, as indices into the flattened ``B * N`` points (sample ``b``'s point ``i`` is
      ``b * N + i``);
    - ``category`` ``(B,)``: index of each sample's category in the list it was drawn from;
    - ``rotation`` ``(B, 3, 3)``: object-to-camera rotation, ``points3d = shape @ R.mT``.
    """

    points2d: torch.Tensor
    points3d: torch.Tensor
    visible: torch.Tensor
    valid: torch.Tensor
    side: torch.Tensor
    edge_index: torch.Tensor
    category: torch.Tensor
    rotation: torch.Tensor

    def __len__(self) -> int:
        return self.points2d.shape[0]

    @property
    def num_points(self) -> torch.Tensor:
        """``(B,)``: the number of keypoints of each sample (observed or not)."""
        return self.valid.sum(dim=1)

    def to(self, device: torch.device | str) -> LiftingBatch:
        return LiftingBatch(**{f.name: getattr(self, f.name).to(device) for f in fields(self)})

    def inputs(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """What a lifter takes: ``(points2d, visible, edge_index, side)``."""
        return self.points2d, self.visible, self.edge_index, self.side

    def permute(self, perm: torch.Tensor) -> LiftingBatch:
        """The same batch with the points of each sample reordered: new point ``i`` of sample
        ``b`` is old point ``perm[b, i]`` (``perm`` ``(B, N)`` or ``(N,)``, each row a
        permutation of ``0 .. N-1``). Padding moves too; edges are relabelled."""
        B, N = self.visible.shape
        perm = perm.to(self.visible.device).expand(B, N)
        positions = torch.arange(N, device=perm.device).expand(B, N)
        inverse = torch.empty_like(perm).scatter_(1, perm, positions)  # old i -> new place
        flat_inverse = (inverse + N * torch.arange(B, device=perm.device)[:, None]).flatten()

        def gather(t: torch.Tensor) -> torch.Tensor:
            index = perm.view(B, N, *([1] * (t.dim() - 2))).expand_as(t)
            return t.gather(1, index)

        return LiftingBatch(
            points2d=gather(self.points2d),
            points3d=gather(self.points3d),
            visible=gather(self.visible),
            valid=gather(self.valid),
            side=gather(self.side),
            edge_index=flat_inverse[self.edge_index],
            category=self.category,
            rotation=self.rotation,
        )

    def pad(self, num_points: int) -> LiftingBatch:
        """The same batch padded with more (unobserved) points, to ``num_points`` per sample."""
        B, N = self.visible.shape
        extra = num_points - N
        if extra < 0:
            raise ValueError(f"cannot pad {N} points to {num_points}")
        sample, point = self.edge_index.div(N, rounding_mode="floor"), self.edge_index % N

        def grow(t: torch.Tensor) -> torch.Tensor:
            return torch.cat([t, t.new_zeros(B, extra, *t.shape[2:])], dim=1)

        return LiftingBatch(
            points2d=grow(self.points2d),
            points3d=grow(self.points3d),
            visible=grow(self.visible),
            valid=grow(self.valid),
            side=grow(self.side),
            edge_index=sample * num_points + point,
            category=self.category,
            rotation=self.rotation,
        )


def _visibility(
    n: int, num_points: int, generator: torch.Generator, missing_rate, min_visible: int
) -> torch.Tensor:
    """``(n, N)`` observed-point mask: each point missing with probability ``r``, where ``r``
    is ``missing_rate`` or, for a pair ``(lo, hi)``, uniform in it per sample; at least
    ``min_visible`` points stay observed."""
    if isinstance(missing_rate, tuple):
        lo, hi = missing_rate
        rate = lo + (hi - lo) * torch.rand(n, 1, generator=generator)
    else:
        rate = torch.full((n, 1), float(missing_rate))
    u = torch.rand(n, num_points, generator=generator)  # (n, N)
    keep = max(0, min(min_visible, num_points))
    # The `keep` points with the largest u are observed in any case.
    kth = u.topk(keep, dim=1).values[:, -1:] if keep else u.new_full((n, 1), 2.0)
    return (u >= rate) | (u >= kth)


def sample_batch(
    categories: Sequence[Category],
    batch_size: int,
    generator: torch.Generator,
    *,
    which: torch.Tensor | None = None,
    missing_rate: float | tuple[float, float] = (0.0, 0.25),
    noise_std: float = 0.01,
    min_visible: int = 4,
    elevation: tuple[float, float] = (-30.0, 60.0),
    roll: float = 15.0,
) -> LiftingBatch:
    """Random shapes of random categories, seen by a random orthographic camera.

    Each sample's category is drawn uniformly from ``categories`` (or given by ``which``,
    ``(B,)`` indices); its shape from the category's deformation model
    (:meth:`Category.shapes`); its rotation from :func:`random_rotations`. The image is
    ``(x, y)`` of the rotated shape plus Gaussian noise of standard deviation ``noise_std``
    (in units of the object's size); points are occluded at random (``missing_rate``, see
    :func:`_visibility`), at least ``min_visible`` stay observed. Samples are padded to the
    largest number of keypoints among ``categories``. Everything is drawn on the CPU from
    ``generator``, so a seed gives the same batch on every device.
    """
    if which is None:
        which = torch.randint(len(categories), (batch_size,), generator=generator)
    B, N = len(which), max(c.num_points for c in categories)
    points3d = torch.zeros(B, N, 3)
    visible = torch.zeros(B, N, dtype=torch.bool)
    side = torch.zeros(B, N, dtype=torch.long)
    rotation = random_rotations(B, generator, elevation=elevation, roll=roll)
    edges = []
    for c, category in enumerate(categories):
        rows = (which == c).nonzero().flatten()  # (n,)
        n, k = len(rows), category.num_points
        if n == 0:
            continue
        shapes = category.shapes(n, generator)  # (n, k, 3), object frame
        points3d[rows, :k] = shapes @ rotation[rows].mT  # camera frame
        observed = _visibility(n, k, generator, missing_rate, min_visible)
        visible[rows, :k] = observed
        side[rows, :k] = category.side
        e = category.edge_index  # (2, 2E)
        keep = observed[:, e[0]] & observed[:, e[1]]  # (n, 2E): both ends observed
        flat = rows[:, None, None] * N + e[None]  # (n, 2, 2E)
        edges.append(flat.transpose(0, 1)[:, keep])  # (2, kept)
    counts = torch.tensor([c.num_points for c in categories])[which]  # (B,)
    valid = torch.arange(N) < counts[:, None]  # (B, N)
    noise = noise_std * torch.randn(B, N, 2, generator=generator)
    points2d = torch.where(visible[..., None], points3d[..., :2] + noise, 0.0)
    edge_index = torch.cat(edges, dim=1) if edges else torch.empty(2, 0, dtype=torch.long)
    return LiftingBatch(points2d, points3d, visible, valid, side, edge_index, which, rotation)


# ---------------------------------------------------------------------------------------------
# Alignment and metrics
# ---------------------------------------------------------------------------------------------


def _weights(points: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
    """``(..., N, 1)`` weights: 1 where ``mask`` is True (everywhere if None), else 0."""
    if mask is None:
        return points.new_ones(*points.shape[:-1], 1)
    if mask.dtype != torch.bool:
        raise TypeError(f"mask must be boolean (True = observed), got dtype {mask.dtype}")
    return mask[..., None].to(points.dtype)


def _zero_unobserved(points: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
    """``points`` with 0 where the weight is 0: unobserved values, even inf or NaN, drop out
    of every sum (multiplying by the weight would turn them into NaN)."""
    return torch.where(w > 0, points, 0.0)


def procrustes(
    pred: torch.Tensor,
    target: torch.Tensor,
    mask: torch.Tensor | None = None,
    *,
    scale: bool = True,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    r"""The similarity transform that best maps ``pred`` onto ``target``: rotation, scale and
    translation ``(R, s, t)`` minimising :math:`\sum_n w_n \| s\mathbf{R}\mathbf{p}_n +
    \mathbf{t} - \mathbf{q}_n \|^2` with :math:`\det\mathbf{R} = +1`.

    The orthogonal Procrustes problem (Schönemann 1966) restricted to rotations (Kabsch 1976).
    With both point sets centred on their (masked) centroids and :math:`\mathbf{H} = \sum_n w_n
    \mathbf{p}_n\mathbf{q}_n^T = \mathbf{U}\boldsymbol\Sigma\mathbf{V}^T`, the best
    orthogonal matrix is :math:`\mathbf{V}\mathbf{U}^T`. If its determinant is -1 it is a
    reflection, and the best *rotation* flips the singular direction of the smallest singular
    value instead: :math:`\mathbf{R} = \mathbf{V}\mathbf{D}\mathbf{U}^T`, :math:`\mathbf{D} =
    \mathrm{diag}(1, 1, \det\mathbf{V}\mathbf{U}^T)`. Then :math:`s = \mathrm{tr}(\boldsymbol
    \Sigma\mathbf{D}) / \sum_n w_n \|\mathbf{p}_n\|^2` and :math:`\mathbf{t} =
    \bar{\mathbf{q}} - s\mathbf{R}\bar{\mathbf{p}}`.

    Args:
        pred, target: ``(..., N, 3)``, points as rows.
        mask: ``(..., N)`` boolean, True where a point counts; None: all do. Each sample needs
            at least three observed points, not on a line, for a unique answer.
        scale: fit ``s``; if False, ``s = 1`` (a rigid transform).

    Returns:
        ``R`` ``(..., 3, 3)``, ``s`` ``(...)``, ``t`` ``(..., 3)``, such that the aligned
        points are ``s * pred @ R.mT + t``. Differentiable (through ``torch.linalg.svd``,
        whose gradient is finite while the singular values of ``H`` are distinct).
    """
    w = _weights(pred, mask)  # (..., N, 1)
    count = w.sum(dim=-2, keepdim=True).clamp_min(1)  # (..., 1, 1)
    pred, target = _zero_unobserved(pred, w), _zero_unobserved(target, w)
    mu_p = pred.sum(dim=-2, keepdim=True) / count  # (..., 1, 3)
    mu_q = target.sum(dim=-2, keepdim=True) / count
    P, Q = w * (pred - mu_p), w * (target - mu_q)  # (..., N, 3) centred, 0 where unobserved
    H = P.mT @ Q  # (..., 3, 3): sum_n w_n p_n q_n^T
    U, S, Vh = torch.linalg.svd(H)
    d = torch.sign(torch.linalg.det(Vh.mT @ U.mT))  # (...,) +1 rotation, -1 reflection
    d = torch.where(d == 0, torch.ones_like(d), d)
    D = torch.stack([torch.ones_like(d), torch.ones_like(d), d], dim=-1)  # (..., 3)
    R = (Vh.mT * D[..., None, :]) @ U.mT  # V diag(D) U^T
    if scale:
        s = (S * D).sum(dim=-1) / P.pow(2).sum(dim=(-2, -1)).clamp_min(1e-12)
    else:
        s = torch.ones_like(d)
    t = mu_q.squeeze(-2) - s[..., None] * (mu_p @ R.mT).squeeze(-2)
    return R, s, t


def procrustes_align(
    pred: torch.Tensor,
    target: torch.Tensor,
    mask: torch.Tensor | None = None,
    *,
    scale: bool = True,
) -> torch.Tensor:
    """``pred`` ``(..., N, 3)`` moved onto ``target`` by the transform of :func:`procrustes`
    (fitted on the points where ``mask`` is True; applied to all points)."""
    R, s, t = procrustes(pred, target, mask, scale=scale)
    return s[..., None, None] * pred @ R.mT + t[..., None, :]  # also where unobserved


def mpjpe(
    pred: torch.Tensor, target: torch.Tensor, mask: torch.Tensor | None = None
) -> torch.Tensor:
    r"""Mean per-joint position error of each sample, without any alignment: the mean over
    the points where ``mask`` is True of :math:`\|\mathbf{p}_n - \mathbf{q}_n\|`.

    ``pred``, ``target`` ``(..., N, 3)``, ``mask`` ``(..., N)`` or None; returns ``(...)``.
    Average the result over samples for a dataset's MPJPE.
    """
    w = _weights(pred, mask).squeeze(-1)  # (..., N)
    error = (pred - target).norm(dim=-1)  # (..., N)
    error = torch.where(w > 0, error, 0.0)  # garbage (even inf) at unobserved points is ignored
    return error.sum(dim=-1) / w.sum(dim=-1).clamp_min(1)


def pa_mpjpe(
    pred: torch.Tensor, target: torch.Tensor, mask: torch.Tensor | None = None
) -> torch.Tensor:
    """MPJPE after Procrustes alignment (rotation, scale and translation, fitted on the points
    where ``mask`` is True): ``(...)``, one value per sample. See :func:`procrustes`."""
    return mpjpe(procrustes_align(pred, target, mask), target, mask)


def procrustes_loss(
    pred: torch.Tensor, target: torch.Tensor, mask: torch.Tensor | None = None
) -> torch.Tensor:
    r"""Training loss: mean squared distance after the best *rigid* alignment (rotation and
    translation, no scale), averaged over observed points, then over samples.

    The rotation is computed without gradient. That loses nothing: the loss is
    :math:`L(\mathbf{P}) = \min_{\mathbf{R}} f(\mathbf{R}, \mathbf{P})`, and at the minimiser
    :math:`\partial f / \partial \mathbf{R}` vanishes along the rotations, so
    :math:`dL/d\mathbf{P} = \partial f / \partial \mathbf{P}` with :math:`\mathbf{R}` held fixed
    (the envelope theorem). It also keeps the gradient finite when ``H`` has repeated singular
    values (a prediction collapsed onto a line, say), where the SVD's own gradient is not.
    """
    with torch.no_grad():
        R, _, _ = procrustes(pred, target, mask, scale=False)
    w = _weights(pred, mask)  # (..., N, 1)
    count = w.sum(dim=-2, keepdim=True).clamp_min(1)  # (..., 1, 1)
    pred, target = _zero_unobserved(pred, w), _zero_unobserved(target, w)
    P = w * (pred - pred.sum(dim=-2, keepdim=True) / count)  # centred, 0 where unobserved
    Q = w * (target - target.sum(dim=-2, keepdim=True) / count)
    squared = (P @ R.mT - Q).pow(2).sum(dim=(-2, -1))  # (...)
    return (squared / count[..., 0, 0]).mean()


# ---------------------------------------------------------------------------------------------
# Models
# ---------------------------------------------------------------------------------------------


def normalise_2d(points2d: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Centre each sample's observed points on their centroid and divide by their RMS
    distance from it. Returns the normalised points ``(B, N, 2)`` (0 where not observed) and
    the scale ``(B, 1, 1)``. Invariant to the order of the points and to the padding."""
    w = _weights(points2d, mask)  # (B, N, 1)
    points2d = _zero_unobserved(points2d, w)  # hidden values, even NaN, count for nothing
    count = w.sum(dim=1, keepdim=True).clamp_min(1)  # (B, 1, 1)
    centred = w * (points2d - (w * points2d).sum(dim=1, keepdim=True) / count)
    scale = (centred.pow(2).sum(dim=(1, 2), keepdim=True) / count).sqrt().clamp_min(1e-6)
    return centred / scale, scale


class FourierFeatures(nn.Module):
    r"""Random Fourier features of coordinates (Tancik et al., 2020):
    :math:`\gamma(\mathbf{v}) = [\cos 2\pi\mathbf{B}\mathbf{v};\ \sin 2\pi\mathbf{B}\mathbf{v}]`
    with a fixed :math:`\mathbf{B} \in \mathbb{R}^{m \times d}`, entries
    :math:`\mathcal{N}(0, \sigma^2)`.

    A positional encoding for *continuous* positions: the sinusoids of
    :func:`vislearn.attention.sinusoidal_position_encoding` with random directions and
    frequencies in place of integer positions. :math:`\sigma` sets the bandwidth: larger values
    let the next layer tell nearby points apart, smaller ones make it smoother. ``B`` is a
    buffer drawn from ``seed``: saved with the model, never trained.
    """

    def __init__(self, in_dim: int, num_frequencies: int, sigma: float = 1.0, seed: int = 0):
        super().__init__()
        generator = torch.Generator().manual_seed(seed)
        self.register_buffer("B", sigma * torch.randn(num_frequencies, in_dim, generator=generator))

    @property
    def out_dim(self) -> int:
        return 2 * self.B.shape[0]

    def forward(self, v: torch.Tensor) -> torch.Tensor:
        """``(..., d) -> (..., 2m)``."""
        angle = 2 * math.pi * v @ self.B.T  # (..., m)
        return torch.cat([angle.cos(), angle.sin()], dim=-1)


class LiftingLayer(nn.Module):
    r"""One layer of the lifting transformer: graph attention along the skeleton and global
    multi-head attention over all observed points side by side, then an MLP; pre-norm,
    residual:

    .. math::  \mathbf{x} \leftarrow \mathbf{x} + \mathbf{W}\big[\mathrm{GAT}(\mathrm{LN}
               (\mathbf{x}));\ \mathrm{MhSa}(\mathrm{LN}(\mathbf{x}))\big], \qquad
               \mathbf{x} \leftarrow \mathbf{x} + \mathrm{MLP}(\mathrm{LN}(\mathbf{x})).

    The local branch (:class:`vislearn.gnn.GATLayer`) lets a point read its neighbours on
    the skeleton; the global branch (:class:`vislearn.attention.MultiHeadAttention`) lets it
    read every observed point, with a key-padding mask.
    """

    def __init__(self, dim: int, num_heads: int, graph_heads: int, mlp_ratio: float = 2.0):
        super().__init__()
        if dim % graph_heads:
            raise ValueError(f"dim={dim} must be divisible by graph_heads={graph_heads}")
        self.norm1 = nn.LayerNorm(dim)
        self.graph_attention = GATLayer(dim, dim // graph_heads, heads=graph_heads)
        self.attention = MultiHeadAttention(dim, num_heads)
        self.mix = nn.Linear(2 * dim, dim)
        self.norm2 = nn.LayerNorm(dim)
        self.mlp = MLP(dim, int(dim * mlp_ratio))

    def forward(
        self, x: torch.Tensor, key_mask: torch.Tensor, edge_index: torch.Tensor
    ) -> torch.Tensor:
        """``x`` ``(B, N, D)``, ``key_mask`` ``(B, 1, 1, N)`` (True = observed),
        ``edge_index`` over the ``B * N`` flattened points -> ``(B, N, D)``."""
        h = self.norm1(x)
        local = self.graph_attention(h.flatten(0, 1), edge_index).view_as(h)  # (B, N, D)
        overall = self.attention(h, mask=key_mask)  # (B, N, D)
        x = x + self.mix(torch.cat([local, overall], dim=-1))
        return x + self.mlp(self.norm2(x))


class LiftingTransformer(nn.Module):
    """The lifting model: one token per observed 2D keypoint, ``depth`` :class:`LiftingLayer`
    s, and an MLP head giving each point's 3D position in a frame of the model's choosing
    (compare after :func:`procrustes_align`).

    A token is the :class:`FourierFeatures` encoding of the point's normalised 2D position
    (:func:`normalise_2d`), linearly embedded, plus a learned embedding of its ``side``
    (left, right or centre of the object) unless ``use_side=False``. With ``from_flat=True``
    the head's output is added to the flat lift ``(x, y, 0)`` of the normalised input: an
    untrained model starts from the no-depth guess, and the frame it answers in stays free,
    since the loss aligns by rotation first. Nothing in the model
    depends on a point's index, so it is permutation-equivariant: permuting the points (and
    relabelling the edges) permutes the output the same way. Unobserved points are masked
    out of both attentions and have no edges, so they change no other point's output; their
    own output is 0. The output is in the input's units (the normalisation is undone).
    """

    def __init__(
        self,
        dim: int = 64,
        depth: int = 4,
        num_heads: int = 4,
        graph_heads: int = 4,
        mlp_ratio: float = 2.0,
        num_frequencies: int = 32,
        fourier_sigma: float = 0.5,
        use_side: bool = True,
        from_flat: bool = True,
        seed: int = 0,
    ):
        super().__init__()
        self.config = dict(
            dim=dim, depth=depth, num_heads=num_heads, graph_heads=graph_heads,
            mlp_ratio=mlp_ratio, num_frequencies=num_frequencies, fourier_sigma=fourier_sigma,
            use_side=use_side, from_flat=from_flat, seed=seed,
        )  # fmt: skip
        self.from_flat = from_flat
        self.encoding = FourierFeatures(2, num_frequencies, fourier_sigma, seed)
        self.embed = nn.Linear(self.encoding.out_dim, dim)
        self.side_embedding = nn.Embedding(3, dim) if use_side else None
        self.layers = nn.ModuleList(
            LiftingLayer(dim, num_heads, graph_heads, mlp_ratio) for _ in range(depth)
        )
        self.head = nn.Sequential(
            nn.LayerNorm(dim), nn.Linear(dim, dim), nn.GELU(), nn.Linear(dim, 3)
        )

    def forward(
        self,
        points2d: torch.Tensor,
        mask: torch.Tensor,
        edge_index: torch.Tensor,
        side: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """``points2d`` ``(B, N, 2)``, ``mask`` ``(B, N)`` (True = observed), ``edge_index``
        ``(2, E)`` into the ``B * N`` points, ``side`` ``(B, N)`` -> 3D ``(B, N, 3)``."""
        x, scale = normalise_2d(points2d, mask)  # (B, N, 2), (B, 1, 1)
        tokens = self.embed(self.encoding(x))  # (B, N, D)
        if self.side_embedding is not None:
            if side is None:
                raise ValueError("this model was built with use_side=True: pass `side`")
            tokens = tokens + self.side_embedding(side)
        key_mask = mask[:, None, None, :]  # (B, 1, 1, N): attend to observed points only
        for layer in self.layers:
            tokens = layer(tokens, key_mask, edge_index)
        out = self.head(tokens)  # (B, N, 3)
        if self.from_flat:
            out = out + nn.functional.pad(x, (0, 1))  # an offset from (x, y, 0)
        out = out * scale  # back in the input's units
        return torch.where(mask[..., None], out, 0.0)


class MLPLifter(nn.Module):
    """The plain baseline (after Martinez et al., 2017): concatenate every point's normalised
    2D position and observed flag in a fixed order, and regress all 3D positions at once with
    a residual MLP.

    It can only work if point ``i`` means the same keypoint in every sample of a category, and
    it takes at most ``num_points`` points: it needs a fixed point order and count. Same
    interface as :class:`LiftingTransformer` (``edge_index`` and ``side`` are ignored).
    """

    def __init__(self, num_points: int, hidden: int = 512, num_blocks: int = 2):
        super().__init__()
        self.config = dict(num_points=num_points, hidden=hidden, num_blocks=num_blocks)
        self.num_points = num_points
        self.inp = nn.Linear(3 * num_points, hidden)
        self.blocks = nn.ModuleList(
            nn.Sequential(
                nn.LayerNorm(hidden),
                nn.Linear(hidden, hidden),
                nn.GELU(),
                nn.Linear(hidden, hidden),
            )
            for _ in range(num_blocks)
        )
        self.out = nn.Sequential(nn.LayerNorm(hidden), nn.Linear(hidden, 3 * num_points))

    def forward(
        self,
        points2d: torch.Tensor,
        mask: torch.Tensor,
        edge_index: torch.Tensor | None = None,
        side: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """``(B, N, 2)``, ``(B, N)`` with ``N <= num_points`` -> ``(B, N, 3)``."""
        B, N, _ = points2d.shape
        if N > self.num_points:
            raise ValueError(f"this MLPLifter takes at most {self.num_points} points, got {N}")
        x, scale = normalise_2d(points2d, mask)
        x = torch.cat([x, mask[..., None].to(x.dtype)], dim=-1)  # (B, N, 3)
        x = nn.functional.pad(x, (0, 0, 0, self.num_points - N)).flatten(1)  # (B, 3 * N_max)
        h = self.inp(x)
        for block in self.blocks:
            h = h + block(h)
        out = self.out(h).view(B, self.num_points, 3)[:, :N] * scale
        return torch.where(mask[..., None], out, 0.0)


class FlatLifter(nn.Module):
    """No lifting at all: each observed point at its image position with depth 0. The error
    this gets is what a lifter must beat to have learnt anything about depth."""

    def forward(self, points2d, mask, edge_index=None, side=None) -> torch.Tensor:
        out = torch.cat([points2d, torch.zeros_like(points2d[..., :1])], dim=-1)
        return torch.where(mask[..., None], out, 0.0)


# ---------------------------------------------------------------------------------------------
# Training and evaluation
# ---------------------------------------------------------------------------------------------

MODELS = {"LiftingTransformer": LiftingTransformer, "MLPLifter": MLPLifter}


@dataclass
class TrainingHistory:
    """What :func:`train_lifter` returns: the loss of every step, the steps run (a resumed
    run counts the earlier ones too) and the seconds this call trained."""

    loss: list[float] = field(default_factory=list)
    steps: int = 0
    seconds: float = 0.0


def train_lifter(
    model: nn.Module,
    categories: Sequence[Category],
    steps: int,
    *,
    batch_size: int = 64,
    lr: float = 2e-3,
    weight_decay: float = 1e-4,
    warmup: int | None = None,
    seed: int = 0,
    device: torch.device | str | None = None,
    checkpoint: str | Path | None = None,
    checkpoint_every: int = 500,
    resume: bool = False,
    stop_at: int | None = None,
    progress: bool = True,
    **data_options,
) -> TrainingHistory:
    """Train a lifter with :func:`procrustes_loss` on fresh batches of :func:`sample_batch`.

    AdamW, a linear warm-up over ``warmup`` steps (default 5%) then cosine decay, gradients
    clipped to norm 1. Batches are drawn from a CPU generator seeded with ``seed`` (so the
    same seed gives the same data on every device); ``data_options`` go to
    :func:`sample_batch`. With ``checkpoint``, the model, optimiser, schedule, data generator
    and history are saved there every ``checkpoint_every`` steps and at the end; with
    ``resume=True`` an existing checkpoint is loaded first and training continues from its
    step, drawing the same batches an uninterrupted run would. ``stop_at`` ends the run after
    that many steps (the schedule still spans ``steps``), to train in parts.
    """
    device = torch.device(device) if device is not None else next(model.parameters()).device
    model.to(device).train()
    generator = torch.Generator().manual_seed(seed)
    try:  # the fused kernel saves a few milliseconds a step where the device has it
        optimizer = torch.optim.AdamW(
            model.parameters(), lr=lr, weight_decay=weight_decay, fused=True
        )
    except (RuntimeError, TypeError):
        optimizer = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=weight_decay)
    warmup = max(1, steps // 20) if warmup is None else warmup
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, warmup_cosine(warmup, steps))
    history = TrainingHistory()
    if resume and checkpoint is not None and Path(checkpoint).exists():
        state = load_checkpoint(checkpoint)
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        scheduler.load_state_dict(state["scheduler"])
        generator.set_state(state["generator"])
        history = TrainingHistory(loss=list(state["loss"]), steps=state["step"])

    def save() -> None:
        save_checkpoint(
            checkpoint,
            {
                "model_class": type(model).__name__,
                "config": getattr(model, "config", {}),
                "model": model.state_dict(),
                "optimizer": optimizer.state_dict(),
                "scheduler": scheduler.state_dict(),
                "generator": generator.get_state(),
                "step": history.steps,
                "loss": history.loss,
                "categories": [c.name for c in categories],
            },
        )

    start = time.perf_counter()
    last = steps if stop_at is None else min(steps, stop_at)
    bar = tqdm(range(history.steps, last), disable=not progress, desc="training", leave=False)
    for step in bar:
        batch = sample_batch(categories, batch_size, generator, **data_options).to(device)
        pred = model(*batch.inputs())
        loss = procrustes_loss(pred, batch.points3d, batch.visible)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        scheduler.step()
        history.loss.append(loss.item())
        history.steps = step + 1
        if step % 25 == 0:
            bar.set_postfix(loss=f"{history.loss[-1]:.4f}", refresh=False)
        if checkpoint is not None and history.steps % checkpoint_every == 0:
            save()
    history.seconds = time.perf_counter() - start
    if checkpoint is not None:
        save()
    model.eval()
    return history


def load_lifter(path: str | Path, device: torch.device | str = "cpu") -> nn.Module:
    """Rebuild the model saved by :func:`train_lifter` at ``path``, in eval mode."""
    state = load_checkpoint(path)
    model = MODELS[state["model_class"]](**state["config"])
    model.load_state_dict(state["model"])
    return model.to(device).eval()


@torch.no_grad()
def predict(model: nn.Module, batch: LiftingBatch, chunk: int = 512) -> torch.Tensor:
    """The model's 3D output for a batch, ``(B, N, 3)``, computed ``chunk`` samples at a time
    (the batch is split with its edge list)."""
    outputs = []
    B, N = batch.visible.shape
    sample_of_edge = batch.edge_index[0] // N
    for lo in range(0, B, chunk):
        hi = min(B, lo + chunk)
        keep = (sample_of_edge >= lo) & (sample_of_edge < hi)
        edges = batch.edge_index[:, keep] - lo * N
        outputs.append(model(batch.points2d[lo:hi], batch.visible[lo:hi], edges, batch.side[lo:hi]))
    return torch.cat(outputs)


def evaluate_lifter(
    model: nn.Module,
    categories: Sequence[Category],
    *,
    samples: int = 256,
    seed: int = 12345,
    device: torch.device | str | None = None,
    permute: bool = False,
    **data_options,
) -> dict[str, dict[str, float]]:
    """Per-category errors on ``samples`` fresh samples each, in percent of the object's size:
    ``{name: {"mpjpe": ..., "pa_mpjpe": ...}}``.

    Because a lifter predicts in a canonical frame of its own, ``"mpjpe"`` is measured after
    the best *rigid* alignment (rotation and translation), ``"pa_mpjpe"`` after the best
    similarity (plus scale), both on the observed points. ``permute=True`` shuffles each
    sample's points first (every model sees the same shuffled inputs). The test samples
    come from ``seed``, the same for every model; ``data_options`` go to :func:`sample_batch`.
    """
    if device is None:
        parameter = next(model.parameters(), None)
        device = parameter.device if parameter is not None else torch.device("cpu")
    was_training = model.training
    model.eval()
    results = {}
    for category in categories:
        generator = torch.Generator().manual_seed(seed + 7919 * zlib.crc32(category.name.encode()))
        batch = sample_batch([category], samples, generator, **data_options)
        if permute:
            perm = torch.argsort(torch.rand(batch.visible.shape, generator=generator), dim=1)
            batch = batch.permute(perm)
        batch = batch.to(device)
        pred = predict(model, batch)
        gt, mask = batch.points3d, batch.visible
        rigid = mpjpe(procrustes_align(pred, gt, mask, scale=False), gt, mask)
        results[category.name] = {
            "mpjpe": 100 * rigid.mean().item(),
            "pa_mpjpe": 100 * pa_mpjpe(pred, gt, mask).mean().item(),
        }
    model.train(was_training)
    return results
