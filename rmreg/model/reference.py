"""Where the DPO regularizer's reference log-probs come from: the reference policy of a reward model.

``log π_ref(y|x)`` is read from one of:

* the batch (``ref_chosen_logps`` / ``ref_rejected_logps``, precomputed), which always takes precedence;
* ``"copy"`` — a frozen copy of the causal LM as it was when the reward model was built (a PEFT model is
  copied with its adapters merged);
* ``"adapters"`` — the same PEFT model with its adapters switched off (no second copy of the weights);
* a module — a separate frozen causal LM with the same vocabulary;
* ``"auto"`` — ``"adapters"`` for a PEFT model, else ``"copy"``, and none at all when no term needs one.

The reference runs without autograd graph, in eval mode, on the response tokens only.
"""

import contextlib
import copy
from collections.abc import Iterator
from typing import Any, Literal

import torch
from torch import nn

from rmreg._typing import Tensor
from rmreg.data.layout import Layout, split_pairs
from rmreg.model import causal_lm as lm

__all__ = ["Reference", "ReferencePolicy"]

Reference = Literal["auto", "copy", "adapters"]


class ReferencePolicy:
    """The resolved reference of a reward model: its kind (``None``, ``"adapters"``, ``"model"``) and module.

    Args:
        causal_lm: the policy model (possibly PEFT).
        reference: ``None``, ``"auto"``, ``"copy"``, ``"adapters"`` or a causal LM module (see the module
            docstring).
        needed: whether some term reads reference log-probs (``"auto"`` resolves to none when not).

    Raises:
        ValueError: an unknown choice, ``"adapters"`` without PEFT, or a module with another vocabulary.
    """

    def __init__(self, causal_lm: nn.Module, reference: object, *, needed: bool) -> None:
        if reference == "auto":
            reference = ("adapters" if lm.is_peft_model(causal_lm) else "copy") if needed else None
        self.mode: str | None
        self.model: nn.Module | None
        self.mode, self.model = self._resolve(causal_lm, reference)

    @staticmethod
    def _resolve(causal_lm: nn.Module, reference: Any) -> tuple[str | None, nn.Module | None]:
        choices = "None, 'auto', 'copy', 'adapters' or a causal LM module"
        if reference is None:
            return None, None
        if isinstance(reference, str) and reference not in ("copy", "adapters"):
            raise ValueError(f"reference must be {choices}; got {reference!r}")
        if reference == "adapters":
            if not lm.is_peft_model(causal_lm):
                raise ValueError("reference='adapters' needs a PEFT model (its adapters are switched off)")
            return "adapters", None
        if reference == "copy":
            reference = copy.deepcopy(causal_lm)
            if lm.is_peft_model(reference):
                reference = reference.merge_and_unload()
        if not isinstance(reference, nn.Module):
            raise TypeError(f"reference must be {choices}; got {reference!r}")
        lm.check_causal_lm(reference)
        if lm.lm_head(reference).weight.shape != lm.lm_head(causal_lm).weight.shape:
            raise ValueError("the reference model's LM head differs in shape from the model's (another vocabulary?)")
        return "model", reference.requires_grad_(False).eval()

    @property
    def saved(self) -> str | nn.Module | None:
        """What a checkpoint records: ``None``, ``"adapters"``, or the separate reference module."""
        return self.model if self.mode == "model" else self.mode

    @contextlib.contextmanager
    def _active(self, causal_lm: Any) -> Iterator[nn.Module]:
        model = self.model if self.model is not None else causal_lm
        adapters_off = causal_lm.disable_adapter() if self.mode == "adapters" else contextlib.nullcontext()
        with lm.eval_mode(model), adapters_off:
            yield model

    @torch.no_grad()
    def logps(
        self, causal_lm: nn.Module, input_ids: Tensor, attention_mask: Tensor, labels: Tensor, layout: Layout
    ) -> tuple[Tensor, Tensor]:
        """``(ref_chosen_logps, ref_rejected_logps)`` ``[pairs]`` of a batch, without autograd graph."""
        return split_pairs(self.row_logps(causal_lm, input_ids, attention_mask, labels), layout)

    @torch.no_grad()
    def row_logps(self, causal_lm: nn.Module, input_ids: Tensor, attention_mask: Tensor, labels: Tensor) -> Tensor:
        """Summed reference log-prob of each row's response ``[rows]``, without autograd graph."""
        if self.mode is None:
            raise ValueError(
                "the objective needs reference log-probs (DPO regularizer) but there is no reference: pass "
                "ref_chosen_logps/ref_rejected_logps with the batch, or build the model with reference='copy', "
                "'adapters' (PEFT), 'auto' or a reference model"
            )
        with self._active(causal_lm) as model:
            hidden = lm.final_hidden_states(model, input_ids, attention_mask)
            head = lm.retained_lm_head(model, trainable=False)
            rows = torch.arange(input_ids.shape[0], device=input_ids.device)
            return lm.response_logprobs(hidden, labels, rows, head)
