"""The chapters' exercises: at least six per content chapter, each marked with its kind and
difficulty and solved (in ``book/solutions/``, in the chapter's order); every coding
exercise's check passes on the solution and fails, saying what is wrong, on wrong answers.

The books themselves are tested in ``tests/test_book.py``: the default book shows no
solution text, and the solutions site has every exercise with its solution.
"""

from __future__ import annotations

import ast
import importlib.util
import json
import re
from pathlib import Path

import pytest
import torch

from tools.solutions_site import (
    CHAPTER_SOLUTIONS,
    EXERCISE,
    SOLUTION,
    chapter_exercises,
    chapter_page,
)
from vislearn import exercises
from vislearn.attention import relative_position_bias, sinusoidal_position_encoding
from vislearn.gnn import scatter_sum
from vislearn.lifting import mpjpe, pa_mpjpe, procrustes_align
from vislearn.vit import attention_rollout, patchify

ROOT = Path(__file__).resolve().parents[1]
CONTENT_CHAPTERS = ["attention", "vision_transformer", "masked_self_supervision", "graphs",
                    "lifting"]  # fmt: skip
KIND = re.compile(r"^\*\*(Understanding|Experiment|Coding)\*\* · (easy|medium|hard)$", re.M)
CODE_CELL = re.compile(r"^```\{code-cell\} ipython3\n(.*?)^```$", re.M | re.S)
CHECK_CALL = re.compile(r"^(check_\w+)\(\w+\)$", re.M)


def code_cells(block: str) -> list[str]:
    """The sources of a MyST block's code cells, without their option lines."""
    cells = []
    for cell in CODE_CELL.findall(block):
        lines = cell.splitlines()
        while lines and (lines[0].startswith(":") or not lines[0].strip()):
            lines.pop(0)
        cells.append("\n".join(lines))
    return cells


def chapters_with_exercises() -> list[Path]:
    return sorted(p for p in (ROOT / "book").glob("*.md") if EXERCISE.search(p.read_text()))


def coding_solutions() -> dict[str, tuple[str, str]]:
    """``{label: (the solution file's imports, the solution cell that runs the check)}``."""
    found = {}
    for chapter in chapters_with_exercises():
        for label, block in chapter_exercises(chapter).items():
            if KIND.search(block).group(1) != "Coding":
                continue
            source = (CHAPTER_SOLUTIONS / chapter.name).read_text()
            setup = ast.parse(code_cells(source)[0])
            imports = [node for node in setup.body if isinstance(node, ast.Import | ast.ImportFrom)]
            solution = next(m.group(0) for m in SOLUTION.finditer(source) if m.group(1) == label)
            cell = next(c for c in code_cells(solution) if CHECK_CALL.search(c))
            found[label] = (ast.unparse(ast.Module(imports, type_ignores=[])), cell)
    return found


def test_every_content_chapter_has_six_exercises_of_three_kinds():
    assert {p.stem for p in chapters_with_exercises()} >= {*CONTENT_CHAPTERS, "conventions"}
    for chapter in chapters_with_exercises():
        blocks = chapter_exercises(chapter)
        kinds = []
        for label, block in blocks.items():
            assert "-ex-" in label, f"{chapter.name}: label {label} (chapter-ex-name)"
            body = block.split("```\n", 1)[1].lstrip()
            marker = KIND.match(body)
            assert marker, f"{label}: the body starts with **Kind** · difficulty"
            kinds.append(marker.group(1))
            checks = [c for c in code_cells(block) if CHECK_CALL.search(c)]
            if marker.group(1) == "Coding":
                assert len(checks) == 1, f"{label}: a coding exercise runs one check"
                assert ":tags: [skip-execution]" in block, f"{label}: the stub is not run"
                assert "raise NotImplementedError" in checks[0], label
            else:
                assert not checks, label
        if chapter.stem in CONTENT_CHAPTERS:
            assert len(blocks) >= 6, f"{chapter.name}: {len(blocks)} exercises"
            assert set(kinds) == {"Understanding", "Experiment", "Coding"}, chapter.name
            source = chapter.read_text()
            ending = source[source.index("## What to remember") :]
            assert "{doc}`assignments/" in ending.split("## Exercises")[0], chapter.name
            assert "\n## " not in ending.split("## Exercises")[1], f"{chapter.name} ends there"


def test_every_exercise_has_its_solution_in_the_same_order():
    for chapter in chapters_with_exercises():
        solutions = CHAPTER_SOLUTIONS / chapter.name
        assert solutions.exists(), f"no solutions for {chapter.name}"
        page = chapter_page(chapter, solutions)  # exits unless one each, in order
        assert page.count("{exercise-start}") == page.count("{solution-start}")


@pytest.mark.parametrize("label", sorted(coding_solutions()))
def test_the_check_passes_on_the_solution(label, capsys, monkeypatch):
    monkeypatch.syspath_prepend(str(CHAPTER_SOLUTIONS))  # the pages import experiments.py
    imports, cell = coding_solutions()[label]
    exec(compile(imports + "\n" + cell, label, "exec"), {})
    out = capsys.readouterr().out
    assert "✓" in out and "✗" not in out, out


def not_written(*args):
    raise NotImplementedError


def log_softmax_of_softmax(x, dim):
    return torch.log(torch.softmax(x, dim))


def rollout_without_discard(maps, ratio):
    return attention_rollout(maps)


def rollout_not_renormalised(maps, ratio):
    rollout = torch.eye(maps[0].shape[-1]).expand(maps[0].shape[0], -1, -1)
    for weights in maps:
        rollout = (weights.mean(1) + torch.eye(weights.shape[-1])) @ rollout
    return rollout


def grid_mask_always_first(grid_h, grid_w, generator):
    mask = torch.ones(grid_h // 2, 2, grid_w // 2, 2)
    mask[:, 0, :, 0] = 0
    return mask.flatten()


def random_mask(grid_h, grid_w, generator):
    n = grid_h * grid_w
    mask = torch.ones(n)
    mask[torch.randperm(n, generator=generator)[: n // 4]] = 0
    return mask


def gin_mean(x, edge_index, mlp, eps):
    source, target = edge_index
    degree = scatter_sum(torch.ones(source.shape[0]), target, x.shape[0]).clamp_min(1)
    return mlp((1 + eps) * x + scatter_sum(x[source], target, x.shape[0]) / degree[:, None])


def gin_backwards(x, edge_index, mlp, eps):
    source, target = edge_index
    return mlp((1 + eps) * x + scatter_sum(x[target], source, x.shape[0]))


def filter_transposed(x, edge_index, thetas):
    source, target = edge_index
    degree = scatter_sum(x.new_ones(source.shape[0]), source, x.shape[0])
    power, result = x, thetas[0] * x
    for theta in thetas[1:]:
        power = degree[:, None] * power - scatter_sum(power[source], target, x.shape[0])
        result = result + theta * power
    return result


def sincos_columns_first(height, width, dim):
    cols = sinusoidal_position_encoding(width, dim // 2)[None].expand(height, -1, -1)
    rows = sinusoidal_position_encoding(height, dim // 2)[:, None].expand(-1, width, -1)
    return torch.cat([cols, rows], dim=-1).flatten(0, 1)


def features_sines_first(v, B):
    angle = 2 * torch.pi * v @ B.mT
    return torch.cat([angle.sin(), angle.cos()], dim=-1)


def features_without_two_pi(v, B):
    angle = v @ B.mT
    return torch.cat([angle.cos(), angle.sin()], dim=-1)


WRONG_ANSWERS = {
    "check_log_softmax": [(log_softmax_of_softmax, "NaN or infinite"),
                          (lambda x, dim: torch.log_softmax(x, 0), "off")],
    "check_relative_position_bias": [
        (lambda t, n, m: relative_position_bias(t.flip(-1), n, m), "the wrong way"),
        (lambda t, n, m: relative_position_bias(t, n, m) * torch.arange(1.0, n + 1)[:, None],
         "diagonal"),
    ],
    "check_sliding_window_mask": [
        (lambda n, w: torch.ones(n, n, dtype=torch.bool).tril(), "may attend to"),
        (lambda n, w: (torch.arange(n)[:, None] - torch.arange(n)).abs() < w, "the future"),
    ],
    "check_sincos_2d": [
        (lambda h, w, d: sinusoidal_position_encoding(h * w, d), "changes along a row"),
        (sincos_columns_first, "changes along a row"),
    ],
    "check_rollout_with_discard": [(rollout_without_discard, "nothing was discarded"),
                                   (rollout_not_renormalised, "rows sum")],
    "check_norm_pix_targets": [
        (lambda images, p: patchify(images, p), "mean 0"),
        (lambda images, p: (patchify(images, p) - patchify(images, p).mean(-1, keepdim=True))
         / (patchify(images, p).var(-1, unbiased=False, keepdim=True) + 1e-6).sqrt(), "biased"),
    ],
    "check_grid_mask": [(grid_mask_always_first, "at random"), (random_mask, "blocks")],
    "check_gin_layer": [(gin_mean, "averaged"), (gin_backwards, "target -> source")],
    "check_polynomial_filter": [
        (filter_transposed, "L^T"),
        (lambda x, edge_index, thetas: thetas[-1] * x, "off"),
    ],
    "check_fourier_features": [(features_sines_first, "cosines come first"),
                               (features_without_two_pi, "2 pi")],
    "check_rigid_mpjpe": [
        (lambda pred, target, mask: pa_mpjpe(pred, target, mask), "fitted the scale"),
        (lambda pred, target, mask: mpjpe(procrustes_align(pred, target, scale=False), target,
                                          mask), "unobserved points"),
    ],
}  # fmt: skip


def test_every_check_has_wrong_answers():
    assert sorted(WRONG_ANSWERS) == sorted(exercises.__all__)
    called = {CHECK_CALL.search(cell).group(1) for _, cell in coding_solutions().values()}
    assert called == set(exercises.__all__), "a check that no exercise uses, or the reverse"


@pytest.mark.parametrize("check", sorted(WRONG_ANSWERS))
def test_the_check_fails_on_wrong_answers_and_says_why(check, capsys):
    run = getattr(exercises, check)
    assert run(not_written) is False
    assert "not written yet" in capsys.readouterr().out
    for wrong, says in WRONG_ANSWERS[check]:
        assert run(wrong) is False, f"{check} passed a wrong answer ({says})"
        out = capsys.readouterr().out
        assert out.startswith("✗") and says in out, out


def test_a_check_reports_a_crash_in_one_line(capsys):
    assert exercises.check_gin_layer(lambda *args: [][1]) is False
    out = capsys.readouterr().out
    assert out.count("\n") == 1 and "IndexError" in out, out


def test_every_experiment_of_the_benchmark_has_committed_results_for_every_seed(monkeypatch):
    """The results that the solutions quote are those of the benchmark as it stands: the
    same experiments, settings and seeds (rerun it when they change)."""
    monkeypatch.syspath_prepend(str(CHAPTER_SOLUTIONS))
    path = ROOT / "benchmarks" / "experiment_exercises.py"
    spec = importlib.util.spec_from_file_location("experiment_exercises", path)
    benchmark = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(benchmark)
    record = json.loads(benchmark.experiments.RESULTS.read_text())
    assert list(record["experiments"]) == list(benchmark.EXPERIMENTS)
    for name, (settings, _) in benchmark.EXPERIMENTS.items():
        entry = record["experiments"][name]
        assert entry["settings"] == settings, name
        runs = [r for metrics in entry["results"].values() for r in metrics.values()]
        assert runs and all(len(r) == len(record["seeds"]) for r in runs), name
