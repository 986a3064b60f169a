"""RegularizedRewardModel: any Hugging Face causal LM as a GRM reward model.

The backbone runs once over the ``2·P`` rows of a batch of pairs. A reward head reads the final hidden state
at each row's last real token; the backbone's own LM head, kept beside it, scores the response tokens for the
objective's regularizers (Yang et al., "Regularizing Hidden States Enables Learning Generalizable Reward
Model for LLMs", NeurIPS 2024, https://arxiv.org/abs/2406.10216, Fig. 1)::

    L = (1 − α)·L_reward(r_c, r_r) + α·L_reg(log π(y_c|x), log π(y_r|x), ...)

The objective declares what it needs, and the model computes only that: the LM head runs on the response
tokens of the chosen rows for the SFT regularizer, of both for DPO, and not at all for Bradley–Terry; the
reference model runs without autograd graph and only when a term needs reference log-probs that the batch
does not carry.
"""

import contextlib
import copy
import dataclasses
import os
from collections.abc import Sequence
from typing import Any, Literal

import torch
from torch import nn

from rmreg import _backbone, _checkpoint, export
from rmreg._typing import Bool, Float, Int, Tensor, shape_checked
from rmreg.data import IGNORE_INDEX, Layout, collate_texts, split_pairs
from rmreg.heads import RetainedLMHead, RewardHead
from rmreg.objectives import Needs, Objective, PairInputs
from rmreg.objectives import objective as named_objective

__all__ = ["RegularizedRewardModel", "RewardModelOutput"]

Reference = Literal["auto", "copy", "adapters"]
_PER_PAIR_INPUTS = ("margin", "ref_chosen_logps", "ref_rejected_logps")


@dataclasses.dataclass(frozen=True)
class RewardModelOutput:
    """What :meth:`RegularizedRewardModel.forward` returns.

    Attributes:
        loss: the objective's loss, a scalar.
        chosen_rewards: rewards of the chosen rows, ``[pairs]`` (fp32, attached to the graph).
        rejected_rewards: rewards of the rejected rows, ``[pairs]``.
        terms: each objective term's unweighted mean over the pairs, detached, by name (for logging).
        accuracy: fraction of pairs with ``r_c > r_r``, a detached scalar.
        per_pair: the objective's weighted loss per pair, ``[pairs]``.
        chosen_logps: summed response log-probs of the chosen rows, when a term needed them, else ``None``.
        rejected_logps: the same for the rejected rows.
    """

    loss: Tensor
    chosen_rewards: Tensor
    rejected_rewards: Tensor
    terms: dict[str, Tensor]
    accuracy: Tensor
    per_pair: Tensor
    chosen_logps: Tensor | None = None
    rejected_logps: Tensor | None = None


def _check_per_pair(name: str, value: Tensor | None, num_pairs: int) -> None:
    if value is not None and tuple(value.shape) != (num_pairs,):
        raise ValueError(f"{name} must have shape [pairs] = ({num_pairs},), got {tuple(value.shape)}")


class RegularizedRewardModel(nn.Module):
    """A causal LM with a reward head, trained with a (regularized) pairwise objective.

    Batches hold ``2·P`` rows (see :mod:`rmreg.data`): ``layout="concat"`` puts the P chosen rows first, then
    the P rejected rows (TRL's order); ``"interleaved"`` alternates them (the paper's code).

    Args:
        causal_lm: a Hugging Face ``*ForCausalLM`` (Llama, Qwen2, Gemma, GPT-2, ...), possibly wrapped by
            PEFT (LoRA or other adapters injected into its layers). LM heads that soft-cap or scale their
            logits (Gemma 2, Cohere, Granite) are refused.
        reward_head: a :class:`~rmreg.RewardHead` of the backbone's hidden size; default the paper's MLP head
            ``RewardHead(hidden_size)``, in float32.
        objective: an :class:`~rmreg.Objective`; default ``rmreg.objective("grm-sft")``.
        layout: row order of the batches, ``"concat"`` or ``"interleaved"``.
        reference: where reference log-probs come from when a term needs them (the DPO regularizer):
            ``None`` — passed with each batch (``ref_chosen_logps``/``ref_rejected_logps``);
            ``"copy"`` — a frozen copy of ``causal_lm`` as it is now;
            ``"adapters"`` — the same PEFT model with its adapters disabled (no second copy of the weights);
            ``"auto"`` — ``"adapters"`` for a PEFT model, else ``"copy"``, and none at all when no term needs
            reference log-probs;
            a module — a separate frozen causal LM with the same tokenizer.
            Values passed with a batch always take precedence.
        lm_head_trainable: whether the regularizers' gradient reaches the LM head's weight (see
            :class:`~rmreg.RetainedLMHead`); ``None`` follows its ``requires_grad``.

    An untied LM head that no term uses (e.g. under Bradley–Terry alone) is frozen (``requires_grad=False``),
    so that distributed data parallel never meets a parameter without gradient.

    Example:
        >>> import rmreg
        >>> from rmreg.data import PairCollator
        >>> from rmreg.model import RegularizedRewardModel
        >>> from rmreg.testing import tiny_causal_lm, tiny_tokenizer
        >>> tok = tiny_tokenizer()
        >>> model = RegularizedRewardModel(tiny_causal_lm("llama"), objective=rmreg.objective("grm-sft"))
        >>> batch = PairCollator(tok)([{"prompt": "Hi", "chosen": "Hello!", "rejected": "Go away."}])
        >>> out = model(**batch)
        >>> sorted(out.terms), out.chosen_rewards.shape
        (['bradley_terry', 'sft'], torch.Size([1]))
    """

    def __init__(
        self,
        causal_lm: nn.Module,
        *,
        reward_head: RewardHead | None = None,
        objective: Objective | None = None,
        layout: Layout = "concat",
        reference: Reference | nn.Module | None = None,
        lm_head_trainable: bool | None = None,
    ) -> None:
        super().__init__()
        _backbone.check_causal_lm(causal_lm)
        if layout not in ("concat", "interleaved"):
            raise ValueError(f"layout must be 'concat' or 'interleaved', got {layout!r}")
        size = _backbone.hidden_size(causal_lm)
        reward_head = RewardHead(size) if reward_head is None else reward_head
        if not isinstance(reward_head, RewardHead):
            raise TypeError(f"reward_head must be an rmreg.RewardHead, got {type(reward_head).__name__}")
        if reward_head.hidden_size != size:
            raise ValueError(
                f"the reward head expects hidden size {reward_head.hidden_size}, but the backbone's hidden states "
                f"have size {size}; build it as RewardHead({size}, ...)"
            )
        if reward_head.num_outputs != 1:
            raise ValueError("pairwise objectives need one reward per row; use a RewardHead with num_outputs=1")
        objective = named_objective("grm-sft") if objective is None else objective
        if not isinstance(objective, Objective):
            raise TypeError(f"objective must be an rmreg.Objective, got {type(objective).__name__}")
        self.causal_lm = causal_lm
        self.reward_head = reward_head
        self.objective = objective
        self.layout: Layout = layout
        self.lm_head_trainable = lm_head_trainable
        if reference == "auto":
            reference = None if not objective.needs.reference_logps else self._default_reference(causal_lm)
        self.reference_mode, self.reference_model = self._reference(causal_lm, reference)
        if not objective.needs.policy_logps and not _backbone.lm_head_is_tied(causal_lm):
            _backbone.lm_head(causal_lm).requires_grad_(False)

    @staticmethod
    def _default_reference(causal_lm: nn.Module) -> Reference:
        """The adapters-off model for PEFT (no second copy of the weights), else a frozen copy."""
        return "adapters" if _backbone.is_peft_model(causal_lm) else "copy"

    @staticmethod
    def _reference(causal_lm: nn.Module, reference: object) -> tuple[str | None, nn.Module | None]:
        if reference is None:
            return None, None
        if isinstance(reference, str) and reference not in ("copy", "adapters"):
            raise ValueError(
                f"reference must be None, 'auto', 'copy', 'adapters' or a causal LM module; got {reference!r}"
            )
        if reference == "adapters":
            if not _backbone.is_peft_model(causal_lm):
                raise ValueError("reference='adapters' needs a PEFT model (its adapters are switched off)")
            return "adapters", None
        if reference == "copy":  # a PEFT model is copied with its adapters merged: a plain frozen causal LM
            reference = copy.deepcopy(causal_lm)
            if _backbone.is_peft_model(reference):
                reference = reference.merge_and_unload()
        if not isinstance(reference, nn.Module):
            raise TypeError(
                f"reference must be None, 'auto', 'copy', 'adapters' or a causal LM module; got {reference!r}"
            )
        _backbone.check_causal_lm(reference)
        if _backbone.lm_head(reference).weight.shape != _backbone.lm_head(causal_lm).weight.shape:
            raise ValueError("the reference model's LM head differs in shape from the model's (another vocabulary?)")
        return "model", reference.requires_grad_(False).eval()

    def train(self, mode: bool = True) -> "RegularizedRewardModel":
        """Set train/eval mode; a separate reference model always stays in eval mode."""
        super().train(mode)
        if self.reference_model is not None:
            self.reference_model.eval()
        return self

    def activation_checkpointing_enable(self, *args: Any, **kwargs: Any) -> None:
        """Recompute the backbone's activations in the backward pass (transformers' method; Trainer calls it)."""
        _backbone.unwrap(self.causal_lm).activation_checkpointing_enable(*args, **kwargs)

    def gradient_checkpointing_enable(self, *args: Any, **kwargs: Any) -> None:
        """The same under the name older transformers releases (and their Trainer) use."""
        _backbone.unwrap(self.causal_lm).gradient_checkpointing_enable(*args, **kwargs)

    @property
    def retained_lm_head(self) -> RetainedLMHead:
        """The backbone's LM head as used for the regularizers' log-probs."""
        return RetainedLMHead(_backbone.lm_head(self.causal_lm), trainable=self.lm_head_trainable)

    def _check_batch(
        self,
        input_ids: Tensor,
        attention_mask: Tensor,
        labels: Tensor | None,
        needs: Needs,
        per_pair: dict[str, Tensor | None],
    ) -> None:
        """Every input error as a ValueError, before any compute."""
        rows = input_ids.shape[0] if input_ids.ndim == 2 else -1
        if input_ids.ndim != 2 or attention_mask.shape != input_ids.shape:
            raise ValueError(
                f"input_ids and attention_mask must both be [rows, seq]; got {tuple(input_ids.shape)} and "
                f"{tuple(attention_mask.shape)}"
            )
        if rows == 0 or rows % 2:
            raise ValueError(
                f"a batch of pairs needs an even, positive number of rows (chosen and rejected); got {rows}"
            )
        if not attention_mask.bool().any(-1).all():
            raise ValueError("every row needs at least one real token (attention_mask is all 0 in some row)")
        pairs = rows // 2
        for name, value in per_pair.items():
            _check_per_pair(name, value, pairs)
        if needs.margin and per_pair["margin"] is None:
            raise ValueError(f"objective {self.objective.name or ''!r} needs a per-pair margin; pass margin=")
        if (per_pair["ref_chosen_logps"] is None) != (per_pair["ref_rejected_logps"] is None):
            raise ValueError("pass both ref_chosen_logps and ref_rejected_logps, or neither")
        if needs.reference_logps and per_pair["ref_chosen_logps"] is None and self.reference_mode is None:
            raise ValueError(
                "the objective needs reference log-probs (DPO regularizer) but there is no reference: pass "
                "ref_chosen_logps/ref_rejected_logps with the batch, or build the model with reference='copy', "
                "'adapters' (PEFT) or a reference model"
            )
        if labels is None:
            if needs.policy_logps:
                raise ValueError("the objective's regularizer needs labels (response token ids, -100 elsewhere)")
            return
        if labels.shape != input_ids.shape:
            raise ValueError(
                f"labels must have the shape of input_ids {tuple(input_ids.shape)}, got {tuple(labels.shape)}"
            )
        if ((labels != IGNORE_INDEX) & ~attention_mask.bool()).any():
            raise ValueError("labels must be -100 on padding (where attention_mask is 0)")
        scorable = (labels[:, 1:] != IGNORE_INDEX).any(-1)
        if not scorable.all():
            row = int((~scorable).nonzero()[0])
            raise ValueError(
                f"row {row} has no response token in labels (all -100 after its first token): was its response "
                "truncated away? Such a row would be scored on its prompt"
            )

    def _policy_logps(self, hidden: Tensor, labels: Tensor | None, needs: Needs) -> tuple[Tensor | None, Tensor | None]:
        """Summed response log-probs of the chosen and/or rejected rows, as the objective needs."""
        if labels is None or not needs.policy_logps:
            return None, None
        pairs = hidden.shape[0] // 2
        chosen_rows, rejected_rows = split_pairs(torch.arange(2 * pairs, device=hidden.device), self.layout)
        rows = torch.cat([chosen_rows] * needs.chosen_logps + [rejected_rows] * needs.rejected_logps)
        logps = _backbone.response_logprobs(hidden, labels, rows, self.retained_lm_head)
        return (logps[:pairs] if needs.chosen_logps else None, logps[-pairs:] if needs.rejected_logps else None)

    @shape_checked
    def reference_logps(
        self,
        input_ids: Int[Tensor, "rows seq"],
        attention_mask: Int[Tensor, "rows seq"] | Bool[Tensor, "rows seq"],
        labels: Int[Tensor, "rows seq"],
    ) -> tuple[Float[Tensor, " pairs"], Float[Tensor, " pairs"]]:
        """Reference log-probs ``(ref_chosen_logps, ref_rejected_logps)`` of a batch, without autograd graph.

        Useful to precompute them once for a dataset (then pass them with each batch). Needs ``reference`` set
        at construction.
        """
        if self.reference_mode is None:
            raise ValueError("this model has no reference (build it with reference='copy', 'adapters' or a model)")
        policy = Needs(chosen_logps=True, rejected_logps=True)
        self._check_batch(input_ids, attention_mask, labels, policy, dict.fromkeys(_PER_PAIR_INPUTS))
        return self._reference_logps(input_ids, attention_mask, labels)

    @torch.no_grad()
    def _reference_logps(self, input_ids: Tensor, attention_mask: Tensor, labels: Tensor) -> tuple[Tensor, Tensor]:
        model = self.reference_model if self.reference_model is not None else self.causal_lm
        with _backbone.eval_mode(model), self._adapters_off():
            hidden = _backbone.final_hidden_states(model, input_ids, attention_mask)
            head = RetainedLMHead(_backbone.lm_head(model), trainable=False)
            rows = torch.arange(input_ids.shape[0], device=input_ids.device)
            return split_pairs(_backbone.response_logprobs(hidden, labels, rows, head), self.layout)

    def _adapters_off(self) -> Any:
        if self.reference_mode == "adapters":
            return self.causal_lm.disable_adapter()
        return contextlib.nullcontext()

    @shape_checked
    def forward(
        self,
        input_ids: Int[Tensor, "rows seq"],
        attention_mask: Int[Tensor, "rows seq"] | Bool[Tensor, "rows seq"],
        labels: Int[Tensor, "rows seq"] | None = None,
        *,
        margin: Float[Tensor, " pairs"] | None = None,
        ref_chosen_logps: Float[Tensor, " pairs"] | None = None,
        ref_rejected_logps: Float[Tensor, " pairs"] | None = None,
    ) -> RewardModelOutput:
        """Loss, rewards and per-term values of a batch of ``2·P`` rows (P pairs, in the model's layout).

        Args:
            input_ids: token ids ``[2P, T]``, padded on either side.
            attention_mask: 1 on real tokens, 0 on padding, ``[2P, T]``.
            labels: response token ids and -100 on prompt and padding, ``[2P, T]``; needed by regularizers.
            margin: per-pair margin ``[P]`` for the margin loss.
            ref_chosen_logps: precomputed reference log-probs of the chosen responses ``[P]``.
            ref_rejected_logps: the same for the rejected responses.

        Returns:
            A :class:`RewardModelOutput`.

        Raises:
            ValueError: an odd number of rows, mismatched shapes, labels on padding, a row without response
                token, or an input the objective needs missing (labels, margin, reference) — before any compute.
        """
        needs = self.objective.needs
        per_pair = dict(zip(_PER_PAIR_INPUTS, (margin, ref_chosen_logps, ref_rejected_logps), strict=True))
        self._check_batch(input_ids, attention_mask, labels, needs, per_pair)
        if needs.reference_logps and ref_chosen_logps is None:
            assert labels is not None
            ref_chosen_logps, ref_rejected_logps = self._reference_logps(input_ids, attention_mask, labels)
        hidden = _backbone.final_hidden_states(self.causal_lm, input_ids, attention_mask)
        pooled = _backbone.pool_last(hidden, attention_mask)
        chosen_hidden, rejected_hidden = split_pairs(pooled, self.layout)
        chosen_rewards, rejected_rewards = split_pairs(self.reward_head(pooled), self.layout)
        chosen_logps, rejected_logps = self._policy_logps(hidden, labels, needs)
        inputs = PairInputs(
            chosen_rewards=chosen_rewards,
            rejected_rewards=rejected_rewards,
            chosen_logps=chosen_logps,
            rejected_logps=rejected_logps,
            ref_chosen_logps=ref_chosen_logps,
            ref_rejected_logps=ref_rejected_logps,
            margin=margin,
            chosen_hidden=chosen_hidden.float() if needs.hidden_states else None,
            rejected_hidden=rejected_hidden.float() if needs.hidden_states else None,
        )
        result = self.objective(inputs)
        return RewardModelOutput(
            loss=result.loss,
            chosen_rewards=chosen_rewards,
            rejected_rewards=rejected_rewards,
            terms=result.terms,
            accuracy=(chosen_rewards > rejected_rewards).float().mean().detach(),
            per_pair=result.per_pair,
            chosen_logps=chosen_logps,
            rejected_logps=rejected_logps,
        )

    @torch.no_grad()
    @shape_checked
    def score(
        self,
        input_ids: Int[Tensor, "rows seq"],
        attention_mask: Int[Tensor, "rows seq"] | Bool[Tensor, "rows seq"],
    ) -> Float[Tensor, " rows"]:
        """Reward of each row (any number of rows, no pairing), without autograd graph.

        Uses the current train/eval mode: call ``.eval()`` first for deterministic rewards (dropout off).

        Example:
            >>> import torch
            >>> from rmreg.model import RegularizedRewardModel
            >>> from rmreg.testing import tiny_causal_lm
            >>> model = RegularizedRewardModel(tiny_causal_lm()).eval()
            >>> model.score(torch.tensor([[1, 40, 41, 2]]), torch.ones(1, 4, dtype=torch.long)).shape
            torch.Size([1])
        """
        if input_ids.ndim != 2 or attention_mask.shape != input_ids.shape:
            raise ValueError(f"input_ids and attention_mask must both be [rows, seq]; got {tuple(input_ids.shape)}")
        if not attention_mask.bool().any(-1).all():
            raise ValueError("every row needs at least one real token (attention_mask is all 0 in some row)")
        hidden = _backbone.final_hidden_states(self.causal_lm, input_ids, attention_mask)
        return self.reward_head(_backbone.pool_last(hidden, attention_mask))

    def score_texts(
        self,
        tokenizer: Any,
        items: Sequence[Any],
        *,
        batch_size: int = 32,
        max_length: int | None = None,
        add_eos: bool = True,
    ) -> Float[Tensor, " rows"]:
        """Rewards of texts or conversations, tokenized as in training (see :func:`rmreg.data.collate_texts`).

        Args:
            tokenizer: the tokenizer the model was trained with.
            items: response texts, ``(prompt, response)`` tuples, or conversations (lists of messages).
            batch_size: rows per forward pass.
            max_length: keep at most the last ``max_length`` tokens of a row.
            add_eos: append ``eos_token`` to text responses (as :class:`~rmreg.data.PairCollator` does).

        Returns:
            fp32 rewards ``[len(items)]`` on the model's device.

        Example:
            >>> from rmreg.model import RegularizedRewardModel
            >>> from rmreg.testing import tiny_causal_lm, tiny_tokenizer
            >>> model = RegularizedRewardModel(tiny_causal_lm()).eval()
            >>> model.score_texts(tiny_tokenizer(), [("2+2=", "4"), ("2+2=", "5")]).shape
            torch.Size([2])
        """
        device = next(self.reward_head.parameters()).device
        scores = []
        for start in range(0, len(items), batch_size):
            batch = collate_texts(tokenizer, items[start : start + batch_size], max_length=max_length, add_eos=add_eos)
            scores.append(self.score(batch["input_ids"].to(device), batch["attention_mask"].to(device)))
        return torch.cat(scores) if scores else torch.zeros(0, device=device)

    def save_pretrained(self, directory: str | os.PathLike[str], *, tokenizer: Any = None) -> None:
        """Write the model to ``directory`` in safetensors and JSON (no pickle).

        Layout: ``backbone/`` (the causal LM's ``save_pretrained``; only the adapters for a PEFT model),
        ``reward_head.safetensors``, ``rmreg_config.json`` (head, objective, layout, reference), ``reference/``
        for a separate reference model, and the tokenizer's files if one is given.
        """
        reference = self.reference_model if self.reference_mode == "model" else self.reference_mode
        parts = _checkpoint.Parts(
            causal_lm=self.causal_lm,
            reward_head=self.reward_head,
            objective=self.objective,
            layout=self.layout,
            reference=reference,
            lm_head_trainable=self.lm_head_trainable,
        )
        _checkpoint.save(parts, directory, tokenizer=tokenizer)

    @classmethod
    def from_pretrained(
        cls,
        directory: str | os.PathLike[str],
        *,
        base_model: nn.Module | str | None = None,
        is_trainable: bool = False,
    ) -> "RegularizedRewardModel":
        """Load a model written by :meth:`save_pretrained`, in eval mode; rewards are bit-identical.

        Args:
            directory: the saved model's directory.
            base_model: for a PEFT checkpoint, the base causal LM (or its path) the adapters go into;
                default the ``base_model_name_or_path`` recorded in the adapter config.
            is_trainable: for a PEFT checkpoint, load the adapters trainable (to continue training).
        """
        parts = _checkpoint.load(directory, base_model=base_model, is_trainable=is_trainable)
        model = cls(
            parts.causal_lm,
            reward_head=parts.reward_head,
            objective=parts.objective,
            layout=parts.layout,
            reference=parts.reference,
            lm_head_trainable=parts.lm_head_trainable,
        )
        return model.eval()

    def export_sequence_classifier(self, directory: str | os.PathLike[str], *, tokenizer: Any = None) -> None:
        """Write a plain ``AutoModelForSequenceClassification`` checkpoint (linear heads only).

        See :func:`rmreg.export.export_sequence_classifier` for what is exact and what is not (the head's bias,
        padding).
        """
        export.export_sequence_classifier(self.causal_lm, self.reward_head, directory, tokenizer=tokenizer)
