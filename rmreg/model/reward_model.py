"""RegularizedRewardModel: any Hugging Face causal LM as a GRM reward model.

The model computes typed per-pair outputs; the objective turns them into a loss (Yang et al., "Regularizing
Hidden States Enables Learning Generalizable Reward Model for LLMs", NeurIPS 2024,
https://arxiv.org/abs/2406.10216, Fig. 1)::

    L = (1 − α)·L_reward(r_c, r_r) + α·L_reg(log π(y_c|x), log π(y_r|x), ...)

:meth:`RegularizedRewardModel.pair_outputs` computes the rewards and exactly the inputs a :class:`~rmreg.Needs`
names; ``model(**batch)`` is ``model.objective(model.pair_outputs(**batch, needs=model.objective.needs))``.
"""

import functools
import os
from typing import Any

from torch import nn

from rmreg._typing import Bool, Float, Int, Tensor, hot_path, shape_checked
from rmreg.data.layout import LAYOUTS, Layout, check_choice
from rmreg.heads import RetainedLMHead, RewardEnsemble, RewardHead
from rmreg.model import causal_lm as lm
from rmreg.model import checkpoint, export
from rmreg.model.batch_checks import check_shapes
from rmreg.model.fused_regularizers import fusable, fused_forward
from rmreg.model.group_outputs import compute_group_inputs, is_group_batch
from rmreg.model.outputs import RewardModelOutput
from rmreg.model.pair_outputs import compute_pair_inputs
from rmreg.model.reference import Reference, ReferencePolicy
from rmreg.model.scoring import ScoringMixin
from rmreg.objectives import Needs, Objective, PairInputs, Term, as_objective

__all__ = ["RegularizedRewardModel"]


class RegularizedRewardModel(ScoringMixin, nn.Module):
    """A causal LM with a reward head: per-pair outputs for any objective, and the loss of its own.

    Batches hold ``2·P`` rows (see :mod:`rmreg.data`): ``layout="concat"`` puts the P chosen rows first, then
    the P rejected rows (TRL's order); ``"interleaved"`` alternates them (the paper's code).

    Args:
        causal_lm: a Hugging Face ``*ForCausalLM`` (Llama, Qwen2, Gemma, GPT-2, ...), possibly wrapped by
            PEFT (LoRA or other adapters injected into its layers). The model never changes its modules'
            ``requires_grad``.
        reward_head: a :class:`~rmreg.RewardHead` of the backbone's hidden size (several outputs: the scalar
            reward is their weighted combination, the outputs reach terms as ``*_attribute_rewards``), or a
            :class:`~rmreg.heads.RewardEnsemble` (K heads, one backbone forward; the scalar reward is their mean,
            the heads' rewards reach terms as ``*_head_rewards``); default the paper's MLP head
            ``RewardHead(hidden_size)``, in float32.
        objective: an :class:`~rmreg.Objective` or a bare :class:`~rmreg.objectives.Term` for :meth:`forward`;
            ``None`` builds a model for scoring and :meth:`pair_outputs` only (then ``forward`` raises).
        layout: row order of the batches, ``"concat"`` or ``"interleaved"``.
        reference: where reference log-probs come from when a term needs them (see
            :mod:`rmreg.model.reference`): ``None`` (passed with each batch), ``"auto"``, ``"copy"``,
            ``"adapters"`` or a separate causal LM. Values passed with a batch always take precedence.
        lm_head_trainable: whether the regularizers' gradient reaches the LM head's weight (see
            :class:`~rmreg.RetainedLMHead`); ``None`` follows its ``requires_grad``.

    An untied LM head that the objective never reads (Bradley–Terry alone) keeps its ``requires_grad``; it is
    listed in ``_ddp_params_and_buffers_to_ignore``, so that distributed data parallel does not wait for its
    gradient, and an optimizer skips it (its gradient stays ``None``).

    Example:
        >>> import rmreg
        >>> from rmreg.data import PairCollator
        >>> from rmreg.testing import tiny_causal_lm, tiny_tokenizer
        >>> model = rmreg.RegularizedRewardModel(tiny_causal_lm("llama"), objective=rmreg.objective("grm-sft"))
        >>> batch = PairCollator(tiny_tokenizer())([{"prompt": "Hi", "chosen": "Hello!", "rejected": "Go away."}])
        >>> out = model(**batch)
        >>> sorted(out.terms), out.chosen_rewards.shape
        (['bradley_terry', 'sft'], torch.Size([1]))
    """

    _reference: ReferencePolicy
    fuse_regularizers: bool = True
    """Compute GRM's SFT/DPO regularizers inside the LM-head pass when the objective allows it (see
    :mod:`rmreg.model.fused_regularizers`); ``False`` always takes the generic path (e.g. to call ``backward`` on
    the loss more than once)."""
    fused_passes: int = 2
    """Passes of the fused path over the vocabulary: 2 (default) computes every log-sum-exp first, so no
    weight-sized buffer is needed; 1 goes pair by pair, one weight-sized buffer more for a quarter fewer LM-head
    matmuls, when the fused terms share one ``logps_weights`` (else 2 passes run). See
    :func:`rmreg.ops.fused_logprob_loss`."""
    objective: Objective | None
    reward_head: RewardHead | RewardEnsemble

    def __init__(
        self,
        causal_lm: nn.Module,
        *,
        reward_head: RewardHead | RewardEnsemble | None = None,
        objective: Objective | Term | None = None,
        layout: Layout = "concat",
        reference: Reference | nn.Module | None = None,
        lm_head_trainable: bool | None = None,
    ) -> None:
        super().__init__()
        lm.check_causal_lm(causal_lm)
        check_choice("layout", layout, LAYOUTS)
        size = lm.hidden_size(causal_lm)
        reward_head = RewardHead(size) if reward_head is None else reward_head
        if not isinstance(reward_head, (RewardHead, RewardEnsemble)):
            raise TypeError(
                "reward_head must be an rmreg.RewardHead or rmreg.heads.RewardEnsemble, got "
                f"{type(reward_head).__name__}"
            )
        if reward_head.hidden_size != size:
            raise ValueError(
                f"the reward head expects hidden size {reward_head.hidden_size}, but the backbone's hidden states "
                f"have size {size}; build it as RewardHead({size}, ...)"
            )
        self.causal_lm = causal_lm
        self.reward_head = reward_head
        self.objective = None if objective is None else as_objective(objective)
        if self.objective is not None and self.objective.needs.policy_logps and lm.is_sequence_classifier(causal_lm):
            raise ValueError(
                f"{type(lm.unwrap(causal_lm)).__name__} is a sequence classifier without an LM head, and the objective "
                f"{self.objective.name or ''!r} reads LM-head log-probs (GRM's regularizers): pass the causal LM "
                "(AutoModelForCausalLM) instead, or an objective that reads rewards only"
            )
        self.layout: Layout = layout
        self.lm_head_trainable = lm_head_trainable
        needed = self.objective is not None and self.objective.needs.reference_logps
        self.__dict__["_reference"] = ReferencePolicy(causal_lm, reference, needed=needed)
        self.reference_model = self._reference.model  # a submodule too: moved and cast with the model

    @property
    def reference_mode(self) -> str | None:
        """``None``, ``"adapters"`` or ``"model"``: where reference log-probs come from."""
        return self._reference.mode

    @property
    def _ddp_params_and_buffers_to_ignore(self) -> list[str]:
        """The untied LM head's parameters when the objective never reads the LM head (read by DDP)."""
        reads_lm_head = self.objective is not None and self.objective.needs.policy_logps
        if reads_lm_head or lm.lm_head_is_tied(self.causal_lm):
            return []
        head = {id(p) for p in lm.lm_head(self.causal_lm).parameters()}
        return [name for name, p in self.named_parameters() if id(p) in head]

    def train(self, mode: bool = True) -> "RegularizedRewardModel":
        """Set train/eval mode; a separate reference model always stays in eval mode."""
        super().train(mode)
        if self.reference_model is not None:
            self.reference_model.eval()
        return self

    def activation_checkpointing_enable(self, *args: Any, **kwargs: Any) -> None:
        """Recompute the backbone's activations in the backward pass (transformers' method; Trainer calls it)."""
        lm.unwrap(self.causal_lm).activation_checkpointing_enable(*args, **kwargs)

    def gradient_checkpointing_enable(self, *args: Any, **kwargs: Any) -> None:
        """The same under the name older transformers releases (and their Trainer) use."""
        lm.unwrap(self.causal_lm).gradient_checkpointing_enable(*args, **kwargs)

    @property
    def retained_lm_head(self) -> RetainedLMHead:
        """The backbone's LM head as used for the regularizers' log-probs (one object, kept)."""
        module = lm.lm_head(self.causal_lm)
        cached = self.__dict__.get("_retained_lm_head")
        if cached is None or cached.lm_head is not module or cached.trainable is not self.lm_head_trainable:
            cached = lm.retained_lm_head(self.causal_lm, trainable=self.lm_head_trainable)
            self.__dict__["_retained_lm_head"] = cached  # not a submodule: its weight belongs to causal_lm
        return cached

    def pair_outputs(
        self,
        input_ids: Int[Tensor, "rows seq"],
        attention_mask: Int[Tensor, "rows seq"] | Bool[Tensor, "rows seq"],
        labels: Int[Tensor, "rows seq"] | None = None,
        *,
        needs: Needs,
        **batch_columns: Tensor,
    ) -> PairInputs:
        """The rewards and exactly the inputs ``needs`` names, for a batch of ``2·P`` rows in the model's layout.

        A batch of ranked groups (:class:`~rmreg.data.GroupCollator`: its ``group_index`` and ``group_mask`` columns)
        gives one entry per group instead, with ``group_rewards`` ``[groups, K]`` and the best and worst completion
        of each group as ``chosen_*`` and ``rejected_*`` (see :mod:`rmreg.model.group_outputs`).

        Args:
            input_ids: token ids ``[2P, T]``, padded on either side.
            attention_mask: 1 on real tokens, 0 on padding, ``[2P, T]``.
            labels: response token ids and -100 on prompt and padding, ``[2P, T]``; needed for log-probs.
            needs: what to compute (e.g. ``objective.needs``, ``Needs(chosen_logps=True, rejected_logps=True)``).
            **batch_columns: per-pair tensors ``[P, ...]`` (``margin``, ``ref_chosen_logps``, a ``tie`` flag,
                any column) passed through to the terms under their names.

        Returns:
            :class:`~rmreg.objectives.PairInputs` with ``chosen_rewards``/``rejected_rewards`` ``[P]`` (fp32,
            attached to the graph) and what ``needs`` asked for.

        Raises:
            ValueError: a malformed batch or a missing input, before any compute.
        """
        if not isinstance(needs, Needs):
            raise TypeError(f"needs must be an rmreg.Needs, got {type(needs).__name__}")
        wants_lm_head = needs.policy_logps or "group_logps" in needs
        groups = is_group_batch(batch_columns)
        if groups and (isinstance(self.reward_head, RewardEnsemble) or self.reward_head.num_outputs != 1):
            raise ValueError(
                "batches of ranked groups need a reward head with one output; this model's head has "
                f"{self.reward_head.num_outputs} ({type(self.reward_head).__name__})"
            )
        compute: Any = compute_group_inputs if groups else functools.partial(compute_pair_inputs, layout=self.layout)
        return compute(
            causal_lm=self.causal_lm,
            reward_head=self.reward_head,
            lm_head=self.retained_lm_head if wants_lm_head else None,
            reference=self._reference,
            input_ids=input_ids,
            attention_mask=attention_mask,
            labels=labels,
            needs=needs,
            columns=batch_columns,
        )

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
        if self._reference.mode is None:
            raise ValueError("this model has no reference (build it with reference='copy', 'adapters' or a model)")
        check_shapes(input_ids, attention_mask, labels)
        return self._reference.logps(self.causal_lm, input_ids, attention_mask, labels, self.layout)

    @shape_checked
    def forward(
        self,
        input_ids: Int[Tensor, "rows seq"],
        attention_mask: Int[Tensor, "rows seq"] | Bool[Tensor, "rows seq"],
        labels: Int[Tensor, "rows seq"] | None = None,
        **batch_columns: Tensor,
    ) -> RewardModelOutput:
        """Loss, rewards and per-term values of a batch of ``2·P`` rows: the objective on :meth:`pair_outputs`.

        Args:
            input_ids: token ids ``[2P, T]``, padded on either side.
            attention_mask: 1 on real tokens, 0 on padding, ``[2P, T]``.
            labels: response token ids and -100 on prompt and padding, ``[2P, T]``; needed by regularizers.
            **batch_columns: per-pair tensors ``[P]``: ``margin`` (margin loss), ``ref_chosen_logps`` and
                ``ref_rejected_logps`` (precomputed reference log-probs), or any column a term reads.

        Returns:
            A :class:`~rmreg.model.RewardModelOutput`.

        Raises:
            ValueError: no objective, an odd number of rows, mismatched shapes, labels on padding, a row without
                response token, or an input the objective needs missing (labels, a column, a reference) — before
                any compute.
        """
        if self.objective is None:
            raise ValueError(
                "this model has no objective: build it with objective=rmreg.objective(...) to call it for a loss, "
                "or use pair_outputs(..., needs=...) with an objective of your own, or score() for rewards"
            )
        fused = self.fuse_regularizers and not is_group_batch(batch_columns) and fusable(self.objective)
        with hot_path():
            if fused:
                return fused_forward(self, self.objective, input_ids, attention_mask, labels, batch_columns)
            inputs = self.pair_outputs(input_ids, attention_mask, labels, needs=self.objective.needs, **batch_columns)
            result = self.objective(inputs)
        return RewardModelOutput.of(inputs, loss=result.loss, per_pair=result.per_pair, terms=result.terms)

    def save_pretrained(self, directory: str | os.PathLike[str], *, tokenizer: Any = None) -> None:
        """Write the model to ``directory`` in safetensors and JSON (no pickle), atomically, with a manifest.

        A full model's directory is also a transformers sequence-classification checkpoint; an existing directory
        is fine (an earlier checkpoint there is replaced whole). See :mod:`rmreg.model.checkpoint`.
        """
        self._check_savable("save_pretrained")
        checkpoint.save(checkpoint.Parts.of(self), directory, tokenizer=tokenizer)

    def _check_savable(self, method: str) -> None:
        if isinstance(self.reward_head, RewardEnsemble) and lm.is_sequence_classifier(self.causal_lm):
            raise ValueError(
                f"{method}: a sequence classifier's reward head is its score layer, which cannot hold a "
                "RewardEnsemble; build the ensemble on the causal LM (AutoModelForCausalLM) to save it"
            )

    @classmethod
    def from_pretrained(
        cls,
        directory: str | os.PathLike[str],
        *,
        base_model: nn.Module | str | None = None,
        is_trainable: bool = False,
        verify: bool = True,
    ) -> "RegularizedRewardModel":
        """Load a model written by :meth:`save_pretrained`, in eval mode; rewards are bit-identical.

        Never contacts a network; a missing, truncated, corrupted or edited file is an error naming it.

        Args:
            directory: the saved model's directory.
            base_model: for a PEFT checkpoint, the base causal LM (or its path) the adapters go into;
                default the base model recorded in the checkpoint.
            is_trainable: for a PEFT checkpoint, load the adapters trainable (to continue training).
            verify: check every file's SHA-256 against the checkpoint's manifest (``False`` for very large
                checkpoints: sizes are still checked; see :func:`rmreg.model.checkpoint.load`).
        """
        parts = checkpoint.load(directory, base_model=base_model, is_trainable=is_trainable, verify=verify)
        return cls(**parts.arguments()).eval()

    def export_sequence_classifier(self, directory: str | os.PathLike[str], *, tokenizer: Any = None) -> None:
        """Write an ``AutoModelForSequenceClassification`` checkpoint (PEFT adapters merged), logits = rewards.

        See :func:`rmreg.model.export.export_sequence_classifier`.
        """
        self._check_savable("export_sequence_classifier")
        export.export_sequence_classifier(self.causal_lm, self.reward_head, directory, tokenizer=tokenizer)
