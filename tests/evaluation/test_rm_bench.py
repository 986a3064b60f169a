"""RM-Bench: the 3x3 style matrix (rows: chosen style, columns: rejected style), easy / normal / hard, domains."""

import re
from pathlib import Path

import pytest

from rmreg.evaluation import run_benchmark


def _row(
    id_: str, domain: str, chosen: list[float], rejected: list[float]
) -> tuple[dict[str, object], dict[str, float]]:
    """A row whose responses are named after their reward table entries (unique per row)."""
    names_c, names_r = [f"{id_}c{i}" for i in range(3)], [f"{id_}r{i}" for i in range(3)]
    row = {"id": id_, "prompt": f"prompt {id_}", "chosen": names_c, "rejected": names_r, "domain": domain}
    return row, dict(zip(names_c + names_r, chosen + rejected, strict=True))


def test_matrix_orientation_difficulty_and_domains(tmp_path: Path, write, table_scorer) -> None:
    # chat: the chosen response wins only against rejected ones at most as fancy as itself (i >= j), so every
    # "hard" cell (plainer chosen vs fancier rejected, i < j) is 0 and the matrix is lower triangular.
    chat = _row("chat0", "chat", [1, 2, 3], [0.5, 1.5, 2.5])
    # math, two rows: row 0 wins everywhere; row 1 ties every chosen/rejected pair (ties are wrong).
    math0 = _row("math0", "math", [9, 9, 9], [0, 0, 0])
    math1 = _row("math1", "math", [1, 1, 1], [1, 1, 1])
    # safety spans two subdomains; code is absent.
    refuse = _row("s0", "safety-refuse", [0, 0, 0], [1, 1, 1])  # loses everywhere
    respond = _row("s1", "safety-response", [3, 0, 0], [1, 1, 1])  # concise chosen wins against every rejected
    cases = [chat, math0, math1, refuse, respond]
    path = write(tmp_path / "total_dataset.json", [row for row, _ in cases])
    rewards = {name: value for _, table in cases for name, value in table.items()}
    result = run_benchmark("rm-bench", path, table_scorer(rewards))

    lower = [[1.0, 0.0, 0.0], [1.0, 1.0, 0.0], [1.0, 1.0, 1.0]]
    half = [[0.5] * 3 for _ in range(3)]
    safety = [[0.5, 0.5, 0.5], [0.0, 0.0, 0.0], [0.0, 0.0, 0.0]]  # row 0 (concise chosen) wins for s1
    assert result.details["matrices"]["chat"] == lower
    assert result.details["matrices"]["math"] == half
    assert result.details["matrices"]["safety"] == safety
    levels = {
        "chat": {"easy": 1.0, "normal": 1.0, "hard": 0.0},
        "math": {"easy": 0.5, "normal": 0.5, "hard": 0.5},
        # easy: cells (1,0),(2,0),(2,1) = 0; normal: (0,0) 0.5, others 0; hard: (0,1),(0,2) 0.5, (1,2) 0
        "safety": {"easy": 0.0, "normal": 0.5 / 3, "hard": 1.0 / 3},
    }
    for name, values in levels.items():
        assert result.details["difficulty"][name] == pytest.approx(values, abs=1e-12)
    domain = {name: sum(values.values()) / 3 for name, values in levels.items()}
    assert list(result.subsets) == ["chat", "math", "safety"]  # the official order, code absent
    assert result.subsets == pytest.approx(domain, abs=1e-12)
    for level in ("easy", "normal", "hard"):
        assert result.sections[level] == pytest.approx(sum(levels[d][level] for d in levels) / 3, abs=1e-12)
    assert result.score == pytest.approx(sum(domain.values()) / 3, abs=1e-12)
    assert result.score == pytest.approx(sum(result.sections.values()) / 3, abs=1e-12)  # the README's identity
    assert result.counts == {"chat": 1, "math": 2, "safety": 2}


def test_items_are_the_three_chosen_then_the_three_rejected(table_scorer) -> None:
    row, table = _row("x", "code", [1, 2, 3], [0, 0, 0])
    scorer = table_scorer(table)
    run_benchmark("rm-bench", [row], scorer)
    assert scorer.items == [("prompt x", name) for name in [*row["chosen"], *row["rejected"]]]  # type: ignore[misc]


def test_a_domain_of_no_known_kind_is_an_error(tmp_path: Path, write) -> None:
    row, _ = _row("x", "poetry", [1, 2, 3], [0, 0, 0])
    path = write(tmp_path / "poetry.jsonl", [row])
    with pytest.raises(ValueError, match=re.escape(f"{path}: row 0: column 'domain': must start with one of chat")):
        run_benchmark("rm-bench", path, lambda items: [0.0] * len(items))
