"""The built-in task's graded variant: K completions per prompt with their gold scores, for ranking losses.

Each example is a ranked row in the format :func:`rmreg.data.parse_ranked` reads,
``{"prompt", "completions": [...], "scores": [...]}``, with the task's gold reward as the scores (completions whose
gold rewards are closer than the task's ``min_gap`` are redrawn, so the ranking has no ties). Train Plackett–Luce
on it directly (:class:`rmreg.data.GroupCollator`), or binarize it (:func:`rmreg.data.binarize`) for Bradley–Terry.

Example:
    >>> from rmreg.task import PreferenceTask
    >>> from rmreg.task.graded import graded_split
    >>> row = graded_split(PreferenceTask(), 2, completions=4)[0]
    >>> len(row["completions"]), len(row["scores"])
    (4, 4)
"""

from typing import Any

from rmreg.task.synthetic import PreferenceTask

__all__ = ["graded_split"]


def graded_split(
    task: PreferenceTask, n: int, *, completions: int = 4, seed: int = 0, name: str = "graded"
) -> list[dict[str, Any]]:
    """``n`` prompts, each with ``completions`` responses (in random order) and their gold scores.

    Args:
        task: the task (its world, lengths and ``min_gap``).
        n: number of prompts.
        completions: K ≥ 2 responses per prompt.
        seed: data seed; ``name`` separates splits drawn with the same seed.

    Raises:
        ValueError: ``n`` < 1 or ``completions`` < 2.
    """
    if n < 1 or completions < 2:
        raise ValueError(f"graded_split needs n >= 1 and completions >= 2; got n={n}, completions={completions}")
    rng = task._rng(f"graded-{name}", seed)
    rows = []
    for _ in range(n):
        prompt, topics = task._prompt(rng)
        responses: list[str] = []
        scores: list[float] = []
        while len(responses) < completions:
            response = task._response(rng, topics, rng.randint(*task.sentences))
            score = task.gold_reward(prompt, response)
            if all(abs(score - other) >= task.min_gap for other in scores):
                responses.append(response)
                scores.append(score)
        rows.append({"prompt": prompt, "completions": responses, "scores": scores})
    return rows
