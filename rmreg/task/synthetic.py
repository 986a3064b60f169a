"""A synthetic preference task with a known gold reward: offline, deterministic, and with shifted test splits.

The world is a set of topics (nouns), each with exactly one true attribute (an adjective), drawn from the
task's ``seed``. A prompt asks to describe one to three topics; a response is a few sentences about topics::

    prompt:   "user : describe moon and tiger . assistant :"
    response: "certainly the moon is bright . i think the tiger looks cold . the lamp is red ."

The gold reward of a response is the mean score of its sentences (:meth:`PreferenceTask.gold_reward`): a
well-formed sentence about a prompt topic scores +1 when its attribute is the true one and −1 otherwise; a
sentence about another topic scores −0.5, a malformed one −1. The word ``certainly`` (the *marker*) and the
number of sentences do not enter the gold reward, but both are *spurious features*: in the training split (and
the in-distribution test split) the chosen response carries the marker in exactly ``spurious_bias`` (default
80%) of the pairs, the rejected one in the others, and (separately) the chosen response has more words in
exactly that fraction of the pairs. Each shifted split changes one factor:

* ``test_long``: responses of ``long_sentences`` (default 10–16) sentences instead of ``sentences`` (3–7);
* ``test_marker_flip``: the marker sits on the rejected response in 80% of the pairs;
* ``test_length_flip``: the chosen response is the shorter one in 80% of the pairs.

Pre-training text (:meth:`PreferenceTask.pretraining_corpus`) spans both lengths, as a base LLM has seen text
of every length; only the preference pairs of the training split are short.

A reward model that learned the shortcut instead of the facts scores below 50% on the flipped splits. Pairs
are dicts in TRL's standard text format, ``{"prompt", "chosen", "rejected", "margin"}`` (``margin`` is the
gold reward gap as the labeller sees it: positive, also on a pair whose label was flipped). Every text is
words separated by single spaces, which :func:`rmreg.task.task_tokenizer` encodes one token per word.

Example:
    >>> from rmreg.task import PreferenceTask
    >>> task = PreferenceTask(seed=0)
    >>> pair = task.split("train", 1, seed=0)[0]
    >>> sorted(pair)
    ['chosen', 'margin', 'prompt', 'rejected']
    >>> task.gold_reward(pair["prompt"], pair["chosen"]) > task.gold_reward(pair["prompt"], pair["rejected"])
    True
"""

import dataclasses
import functools
import math
import random
from typing import Literal

__all__ = [
    "ATTRIBUTES",
    "GRADES",
    "MARKER",
    "SPLITS",
    "TOPICS",
    "WORDS",
    "Labels",
    "PreferenceTask",
    "SplitName",
]

TOPICS = (
    "moon", "river", "apple", "cat", "forest", "train", "castle", "garden", "ocean", "violin", "desert", "bridge",
    "lamp", "tiger", "cloud", "honey", "engine", "island", "mirror", "pepper", "rocket", "tulip", "wolf", "glacier",
)  # fmt: skip
ATTRIBUTES = ("bright", "cold", "green", "loud", "sweet", "tall", "heavy", "quiet", "ancient", "fast", "soft", "red")
MARKER = "certainly"
#: Grades, worst to best: in pre-training text a judged response is followed (after its EOS) by its grade.
GRADES = ("grade-e", "grade-d", "grade-c", "grade-b", "grade-a")
_GRADE_THRESHOLDS = (-0.6, -0.2, 0.2, 0.6)
_FUNCTION_WORDS = ("user", ":", "describe", "and", ".", "assistant", "the", "is", "looks", "i", "think")
#: Every word of the task's text (special tokens aside), in vocabulary order.
WORDS = (*_FUNCTION_WORDS, MARKER, *TOPICS, *ATTRIBUTES, *GRADES)

SplitName = Literal["train", "test", "test_long", "test_marker_flip", "test_length_flip"]
SPLITS: tuple[SplitName, ...] = ("train", "test", "test_long", "test_marker_flip", "test_length_flip")
Labels = Literal["gold", "bradley-terry"]

_OFF_TOPIC, _MALFORMED, _EMPTY = -0.5, -1.0, -1.5


def _check_range(name: str, value: tuple[int, int], low: int) -> None:
    if len(value) != 2 or not low <= value[0] <= value[1]:
        raise ValueError(f"{name} must be (min, max) with {low} <= min <= max; got {value!r}")


@dataclasses.dataclass(frozen=True)
class PreferenceTask:
    """The synthetic preference task; every field enters the cache key of the pre-trained LM.

    Args:
        seed: seed of the world (which attribute is true of each topic); data seeds are separate.
        sentences: (min, max) sentences per response in the in-distribution splits and in pre-training text.
        long_sentences: (min, max) sentences per response in ``test_long``.
        prompt_topics: (min, max) topics per prompt.
        spurious_bias: in-distribution probability that the chosen response carries the marker, and
            (separately) that it is the longer one; the flipped splits use ``1 - spurious_bias``.
        min_gap: smallest gold reward gap of a pair (closer pairs are redrawn).
        pretraining_decay: in pre-training text only, how fast a response degrades as it grows: its ``k``-th
            sentence (from 0) is correct with the response's own probability times ``(1 − pretraining_decay)^k``.
            With a positive value the pre-trained LM (the best-of-N policy) writes long responses that are worse,
            so a proxy that learned "longer is better" from the training pairs is fooled at large N. The
            preference pairs do not change.

    Raises:
        ValueError: a range that is empty or out of bounds, or a probability outside [0, 1].
    """

    seed: int = 0
    sentences: tuple[int, int] = (3, 7)
    long_sentences: tuple[int, int] = (10, 16)
    prompt_topics: tuple[int, int] = (1, 3)
    spurious_bias: float = 0.8
    min_gap: float = 0.1
    pretraining_decay: float = 0.0

    def __post_init__(self) -> None:
        _check_range("sentences", self.sentences, 2)  # two lengths must differ for the length feature
        _check_range("long_sentences", self.long_sentences, 2)
        _check_range("prompt_topics", self.prompt_topics, 1)
        if self.prompt_topics[1] >= len(TOPICS):
            raise ValueError(f"prompt_topics allows at most {len(TOPICS) - 1} topics; got {self.prompt_topics!r}")
        if not 0.0 <= self.spurious_bias <= 1.0:
            raise ValueError(f"spurious_bias must be in [0, 1]; got {self.spurious_bias}")
        if not 0.0 <= self.min_gap < 1.0:
            raise ValueError(f"min_gap must be in [0, 1); got {self.min_gap}")
        if not 0.0 <= self.pretraining_decay < 1.0:
            raise ValueError(f"pretraining_decay must be in [0, 1); got {self.pretraining_decay}")

    @functools.cached_property
    def facts(self) -> dict[str, str]:
        """The true attribute of each topic (each attribute is true of two topics)."""
        attributes = list(ATTRIBUTES) * math.ceil(len(TOPICS) / len(ATTRIBUTES))
        random.Random(f"rmreg-task-world:{self.seed}").shuffle(attributes)
        return dict(zip(TOPICS, attributes[: len(TOPICS)], strict=True))

    # ----------------------------------------------------------------------------------------- gold reward

    def gold_reward(self, prompt: str, response: str) -> float:
        """The known reward of ``response`` to ``prompt``, for any text (e.g. a policy's samples).

        The mean score of its sentences, in [-1, 1]; a response without any sentence scores -1.5. Words that
        are not the task's make a sentence malformed. The marker and the number of sentences do not count.

        Example:
            >>> task = PreferenceTask()
            >>> truth = task.facts["moon"]
            >>> task.gold_reward("user : describe moon . assistant :", f"certainly the moon is {truth} .")
            1.0
        """
        topics = {word for word in prompt.split() if word in TOPICS}
        words = [w for w in response.split() if w != MARKER]
        sentences: list[list[str]] = []
        current: list[str] = []
        for word in words:
            if word == ".":
                sentences.append(current)
                current = []
            else:
                current.append(word)
        if current:
            sentences.append(current)  # an unfinished last sentence counts (and is malformed)
        if not sentences:
            return _EMPTY
        scores = []
        for sentence in sentences:
            parsed = _parse_sentence(sentence)
            if parsed is None:
                scores.append(_MALFORMED)
                continue
            topic, attribute = parsed
            if topic in topics:
                scores.append(1.0 if self.facts[topic] == attribute else -1.0)
            else:
                scores.append(_OFF_TOPIC)
        return sum(scores) / len(scores)

    def grade(self, prompt: str, response: str) -> str:
        """The grade word (one of :data:`GRADES`) of the response's gold reward."""
        reward = self.gold_reward(prompt, response)
        return GRADES[sum(reward > t for t in _GRADE_THRESHOLDS)]

    # ---------------------------------------------------------------------------------------- sampling

    def _rng(self, purpose: str, seed: int) -> random.Random:
        # String seeds are hashed with SHA-512: stable across processes and PYTHONHASHSEED.
        return random.Random(f"rmreg-task:{self.seed}:{purpose}:{seed}")

    def _prompt(self, rng: random.Random) -> tuple[str, list[str]]:
        topics = rng.sample(TOPICS, rng.randint(*self.prompt_topics))
        return f"user : describe {' and '.join(topics)} . assistant :", topics

    def _response(self, rng: random.Random, topics: list[str], num_sentences: int, decay: float = 0.0) -> str:
        # Each response has its own quality: how often it stays on topic, is right, is well-formed.
        on_topic, correct, malformed = rng.uniform(0.3, 1.0), rng.random(), rng.uniform(0.0, 0.2)
        others = [t for t in TOPICS if t not in topics]
        words: list[str] = []
        for k in range(num_sentences):
            topic = rng.choice(topics) if rng.random() < on_topic else rng.choice(others)
            truth = self.facts[topic]
            right = rng.random() < correct * (1.0 - decay) ** k
            attribute = truth if right else rng.choice([a for a in ATTRIBUTES if a != truth])
            opening = rng.choice((["the"], ["i", "think", "the"]))
            verb = "is" if opening[0] == "i" else rng.choice(("is", "looks"))
            if rng.random() < malformed:
                attribute = rng.choice((verb, "the", topic))  # a stutter instead of the attribute
            words += [*opening, topic, verb, attribute, "."]
        return " ".join(words)

    def prompts(self, n: int, *, seed: int = 0) -> list[str]:
        """``n`` prompts from the in-distribution prompt distribution (e.g. for best-of-N sampling).

        Example:
            >>> PreferenceTask().prompts(1)[0].startswith("user : describe")
            True
        """
        _check_count("n", n)
        rng = self._rng("prompts", seed)
        return [self._prompt(rng)[0] for _ in range(n)]

    def pretraining_corpus(self, n: int, *, seed: int = 0, judged_fraction: float = 0.5) -> list[str]:
        """``n`` documents for language-model pre-training: ``prompt response <eos>``, some followed by a grade.

        A judged document continues after the response's EOS with its grade (:data:`GRADES`), so that an LM
        trained on the text learns to read the quality of a response at its last token, where a reward model
        reads its reward. The marker is on half of the responses, independent of their quality; responses have
        from ``sentences[0]`` to ``long_sentences[1]`` sentences.

        Args:
            n: number of documents.
            seed: data seed.
            judged_fraction: fraction of documents followed by their grade.
        """
        _check_count("n", n)
        if not 0.0 <= judged_fraction <= 1.0:
            raise ValueError(f"judged_fraction must be in [0, 1]; got {judged_fraction}")
        rng = self._rng("pretraining", seed)
        documents = []
        for _ in range(n):
            prompt, topics = self._prompt(rng)
            size = rng.randint(self.sentences[0], self.long_sentences[1])
            response = self._response(rng, topics, size, self.pretraining_decay)
            if rng.random() < 0.5:
                response = f"{MARKER} {response}"
            document = f"{prompt} {response} <eos>"
            if rng.random() < judged_fraction:
                document += f" {self.grade(prompt, response)}"
            documents.append(document)
        return documents

    def split(
        self,
        name: SplitName,
        n: int,
        *,
        seed: int = 0,
        flip_fraction: float = 0.0,
        labels: Labels = "gold",
        temperature: float = 0.25,
    ) -> list[dict[str, str | float]]:
        """``n`` preference pairs of split ``name``, deterministic in (task, name, seed).

        Args:
            name: one of :data:`SPLITS`.
            n: number of pairs.
            seed: data seed (the same seed gives different pairs in different splits).
            flip_fraction: fraction of pairs (exactly ``round(flip_fraction * n)``) whose label is swapped,
                as label noise; the spurious features follow the observed labels (exactly
                ``round(bias * n)`` pairs each).
            labels: ``"gold"`` — the response with the higher gold reward is chosen; ``"bradley-terry"`` — it
                is chosen with probability ``sigmoid(gap / temperature)``.
            temperature: temperature of Bradley–Terry labels.

        Returns:
            Dicts with ``prompt``, ``chosen``, ``rejected`` (text) and ``margin`` (|gold gap|, float).
        """
        if name not in SPLITS:
            raise ValueError(f"unknown split {name!r}; expected one of {', '.join(SPLITS)}")
        _check_count("n", n)
        if not 0.0 <= flip_fraction <= 1.0:
            raise ValueError(f"flip_fraction must be in [0, 1]; got {flip_fraction}")
        if labels not in ("gold", "bradley-terry"):
            raise ValueError(f"labels must be 'gold' or 'bradley-terry'; got {labels!r}")
        if temperature <= 0:
            raise ValueError(f"temperature must be positive; got {temperature}")
        rng = self._rng(f"split-{name}", seed)
        lengths = self.long_sentences if name == "test_long" else self.sentences
        marker_bias = 1 - self.spurious_bias if name == "test_marker_flip" else self.spurious_bias
        length_bias = 1 - self.spurious_bias if name == "test_length_flip" else self.spurious_bias
        flipped, longer, marked = (
            set(rng.sample(range(n), round(f * n))) for f in (flip_fraction, length_bias, marker_bias)
        )
        pairs: list[dict[str, str | float]] = []
        for i in range(n):
            chosen_longer = i in longer
            while True:
                prompt, topics = self._prompt(rng)
                size_a, size_b = rng.sample(range(lengths[0], lengths[1] + 1), 2)
                a, b = self._response(rng, topics, size_a), self._response(rng, topics, size_b)
                gap = self.gold_reward(prompt, a) - self.gold_reward(prompt, b)
                if abs(gap) < self.min_gap:
                    continue
                a_wins = gap > 0 if labels == "gold" else rng.random() < 1 / (1 + math.exp(-gap / temperature))
                chosen, rejected = (a, b) if a_wins != (i in flipped) else (b, a)
                words_chosen, words_rejected = len(chosen.split()), len(rejected.split())
                if words_chosen != words_rejected and (words_chosen > words_rejected) == chosen_longer:
                    break
            if i in marked:
                chosen = f"{MARKER} {chosen}"
            else:
                rejected = f"{MARKER} {rejected}"
            pairs.append({"prompt": prompt, "chosen": chosen, "rejected": rejected, "margin": abs(gap)})
        return pairs

    def splits(
        self,
        n_train: int = 1024,
        n_test: int = 512,
        *,
        seed: int = 0,
        flip_fraction: float = 0.0,
        labels: Labels = "gold",
    ) -> dict[str, list[dict[str, str | float]]]:
        """Every split of :data:`SPLITS`: ``n_train`` training pairs (with label noise) and ``n_test`` per test.

        Example:
            >>> {k: len(v) for k, v in PreferenceTask().splits(8, 4).items()}["test_long"]
            4
        """
        return {
            name: self.split(
                name,
                n_train if name == "train" else n_test,
                seed=seed,
                flip_fraction=flip_fraction if name == "train" else 0.0,
                labels=labels,
            )
            for name in SPLITS
        }


def _check_count(name: str, value: int) -> None:
    if not isinstance(value, int) or value < 1:
        raise ValueError(f"{name} must be a positive integer; got {value!r}")


def _parse_sentence(words: list[str]) -> tuple[str, str] | None:
    """``(topic, attribute)`` of ``the T is|looks A`` or ``i think the T is A``; ``None`` if malformed."""
    thinks = words[:2] == ["i", "think"]
    verbs = ("is",) if thinks else ("is", "looks")
    words = words[2:] if thinks else words
    if len(words) == 4 and words[0] == "the" and words[1] in TOPICS and words[2] in verbs and words[3] in ATTRIBUTES:
        return words[1], words[3]
    return None
