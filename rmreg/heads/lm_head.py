"""The retained LM head: the backbone's own output layer, scoring response tokens for GRM's regularizers.

GRM keeps the backbone's own LM head beside a new reward head; both read the same hidden states, so the
text-generation regularizer keeps those states useful for language modelling (Yang et al., NeurIPS 2024,
Fig. 1, https://arxiv.org/abs/2406.10216). Some families transform the head's logits before the softmax
(Gemma 2 soft-caps them, Cohere and Granite scale them); :func:`logit_transform` reads how from a Hugging Face
config, and :class:`RetainedLMHead` applies the same transform.
"""

import math
from collections.abc import Callable
from typing import Any, cast

import torch
from torch import nn

from rmreg import ops
from rmreg._typing import Float, Int, Tensor, shape_checked

__all__ = ["RetainedLMHead", "logit_transform"]

# How each transformers model (by ``config.model_type``) turns ``lm_head(h)`` into its logits, read from the
# model's ``forward`` in transformers 5.x: (config attribute of the text config, "softcap" | "multiply" |
# "divide"). ``softcap``: ℓ = c·tanh(z / c), skipped when the attribute is None; ``multiply``/``divide``: ℓ = z·a
# or z / a. Model types listed with no entry apply nothing although their config may carry such an attribute.
_LOGIT_TRANSFORMS: dict[str, tuple[tuple[str, str], ...]] = {
    **dict.fromkeys(
        ("gemma2", "gemma3_text", "gemma3n", "gemma3n_text", "gemma4", "gemma4_text", "vaultgemma", "nanochat"),
        (("final_logit_softcapping", "softcap"),),
    ),
    "recurrent_gemma": (("logits_soft_cap", "softcap"),),
    "gemma3": (),  # Gemma3ForConditionalGeneration does not soft-cap (Gemma3ForCausalLM, "gemma3_text", does)
    "mpt": (),  # MPT's config has logit_scale, which transformers' MPT model never applies
    **dict.fromkeys(("cohere", "cohere2", "cohere2_moe"), (("logit_scale", "multiply"),)),
    **dict.fromkeys(
        ("granite", "granite_swa", "granitemoe", "granitemoe_swa", "granitemoeshared", "granitemoehybrid"),
        (("logits_scaling", "divide"),),
    ),
    "minicpm3": (("logits_scaling", "divide"),),  # divides the hidden states; the same, its LM head has no bias
    "hyperclovax": (("logits_scaling", "multiply"),),  # multiplies, unlike Granite (MuP)
    "falcon_h1": (("lm_head_multiplier", "multiply"),),
}
_TRANSFORM_ATTRIBUTES = (
    "final_logit_softcapping",
    "logits_soft_cap",
    "logit_scale",
    "logits_scaling",
    "lm_head_multiplier",
    "output_multiplier",
)


def logit_transform(config: Any) -> tuple[float | None, float | None]:
    """``(softcap, scale)`` such that the model's logits are ``softcap·tanh(scale·lm_head(h) / softcap)``.

    Reads the Hugging Face config the way the transformers model of that ``model_type`` applies it:
    ``final_logit_softcapping`` soft-caps (Gemma 2, Gemma 3's causal LM, Gemma 3n/4, VaultGemma, nanochat;
    RecurrentGemma's ``logits_soft_cap``), ``logit_scale`` multiplies (Cohere, Cohere 2), ``logits_scaling``
    divides (Granite and Granite-MoE, MiniCPM3) but multiplies for HyperCLOVA X, ``lm_head_multiplier`` multiplies
    (Falcon-H1). None stands for "not applied"; a scale of exactly 1 is None. Attributes are read from
    ``config.get_text_config()`` (the text model of a multimodal config).

    Raises:
        ValueError: when a model type rmreg does not know sets one of those attributes (it cannot tell how the
            model applies it), or when a value is not a positive soft-cap / finite scale.

    Example:
        >>> from transformers import CohereConfig, Gemma2Config, GraniteConfig, LlamaConfig
        >>> logit_transform(Gemma2Config()), logit_transform(CohereConfig()), logit_transform(LlamaConfig())
        ((30.0, None), (None, 0.0625), (None, None))
        >>> logit_transform(GraniteConfig(logits_scaling=8.0))
        (None, 0.125)
    """
    text = config.get_text_config() if hasattr(config, "get_text_config") else config
    model_type: Any = getattr(config, "model_type", None)  # a str, or None: looked up as is (None is no key)
    rules = _LOGIT_TRANSFORMS.get(model_type)
    if rules is None:
        for attribute in _TRANSFORM_ATTRIBUTES:
            value = getattr(text, attribute, None)
            if value is not None and not (attribute != "final_logit_softcapping" and value == 1):
                raise ValueError(
                    f"{model_type!r} models set {attribute}={value}, and rmreg does not know how this model applies "
                    f"it to its logits; known model types: {sorted(_LOGIT_TRANSFORMS)}"
                )
        return None, None
    softcap, scale = None, 1.0
    for attribute, kind in rules:
        value = getattr(text, attribute, None)
        if value is None:
            continue
        value = float(value)
        if kind == "softcap":
            softcap = value
        elif value == 0 or not math.isfinite(value):
            raise ValueError(f"{model_type} config has {attribute}={value}; expected a finite non-zero number")
        else:
            scale = scale * value if kind == "multiply" else scale / value
    return softcap, None if scale == 1.0 else scale


class RetainedLMHead(nn.Module):
    r"""The backbone's own LM head, kept to score response tokens for GRM's regularizers.

    It wraps the existing head module (its ``weight`` ``[vocab, hidden]`` may be tied to the input
    embeddings) and computes float32 log-probs only at the positions it is given, through
    :mod:`rmreg.ops`, never materializing full-vocabulary logits for the whole batch. With the head's logit
    transform ℓ = c·tanh(s·(W h + b) / c) (``softcap`` c, ``scale`` s, each only when given):

    .. math::
        \log p(y_t \mid h_t) = \ell_{t, y_t} - \log\sum_v \exp \ell_{t, v}

    Args:
        lm_head: the causal LM's output layer (``model.get_output_embeddings()``), a module with ``weight``
            ``[vocab, hidden]`` and optionally ``bias`` ``[vocab]``.
        trainable: ``False`` stops the regularizers' gradient into the head's weight (it is detached, so a
            weight tied to the embeddings keeps training through the embeddings; the frozen path is also
            faster); ``True`` lets it through; ``None`` (default) follows ``weight.requires_grad``.
        softcap: the logit soft-cap c (Gemma 2's ``final_logit_softcapping``), or None.
        scale: the logit scale s (Cohere's ``logit_scale``, Granite's ``1 / logits_scaling``), or None;
            :func:`logit_transform` reads both from a Hugging Face config, as :meth:`from_causal_lm` does.

    Example:
        >>> import torch
        >>> from rmreg import RetainedLMHead
        >>> head = RetainedLMHead(torch.nn.Linear(8, 50, bias=False), trainable=False, softcap=30.0)
        >>> head.logprobs(torch.randn(3, 8), torch.tensor([1, 2, -100])).shape
        torch.Size([3])
    """

    def __init__(
        self,
        lm_head: nn.Module,
        *,
        trainable: bool | None = None,
        softcap: float | None = None,
        scale: float | None = None,
    ) -> None:
        super().__init__()
        weight = getattr(lm_head, "weight", None)
        if not isinstance(weight, Tensor) or weight.ndim != 2:
            raise ValueError(
                f"lm_head must have a 2-D weight [vocab, hidden]; got {type(lm_head).__name__} without one"
            )
        if softcap is not None and not (math.isfinite(softcap) and softcap > 0):
            raise ValueError(f"softcap must be a positive finite number or None; got {softcap}")
        if scale is not None and not math.isfinite(scale):
            raise ValueError(f"scale must be a finite number or None; got {scale}")
        self.lm_head = lm_head
        self.trainable = trainable
        self.softcap, self.scale = softcap, scale

    @classmethod
    def from_causal_lm(cls, causal_lm: nn.Module, *, trainable: bool | None = None) -> "RetainedLMHead":
        """The head of a Hugging Face causal LM, with the logit transform its config declares."""
        hf_model: Any = causal_lm  # a transformers model; nn.Module's attributes type as Tensor | Module
        softcap, scale = logit_transform(hf_model.config)
        return cls(hf_model.get_output_embeddings(), trainable=trainable, softcap=softcap, scale=scale)

    def extra_repr(self) -> str:
        return f"trainable={self.trainable}, softcap={self.softcap}, scale={self.scale}"

    @property
    def _head_weight(self) -> Tensor:
        """``lm_head.weight`` as the Tensor ``__init__`` checked it is (nn.Module types it as Tensor | Module)."""
        return cast(Tensor, self.lm_head.weight)

    @property
    def weight(self) -> Tensor:
        """The head's weight ``[vocab, hidden]``, detached when the head is frozen."""
        weight = self._head_weight
        return weight if self._passes_gradient() else weight.detach()

    @property
    def bias(self) -> Tensor | None:
        """The head's bias ``[vocab]`` if it has one, detached when the head is frozen."""
        bias = getattr(self.lm_head, "bias", None)
        if bias is None:
            return None
        return bias if self._passes_gradient() else bias.detach()

    @property
    def vocab_size(self) -> int:
        return int(self._head_weight.shape[0])

    @property
    def hidden_size(self) -> int:
        return int(self._head_weight.shape[1])

    def _passes_gradient(self) -> bool:
        if self.trainable is None:
            return bool(self._head_weight.requires_grad)
        return self.trainable

    def _inputs(self, hidden_states: Tensor) -> Tensor:
        """Hidden states checked against the head; cast to its dtype outside autocast (inside, the op casts)."""
        if hidden_states.shape[-1] != self.hidden_size:
            raise ValueError(
                f"hidden states have size {hidden_states.shape[-1]} but the LM head expects {self.hidden_size}"
            )
        if torch.is_autocast_enabled(hidden_states.device.type) and hidden_states.dtype != torch.float64:
            return hidden_states
        return hidden_states.to(self._head_weight.dtype)

    @property
    def _transform(self) -> dict[str, Any]:
        """What every op takes from the head beside its weight: the bias and the logit transform."""
        return {"bias": self.bias, "softcap": self.softcap, "scale": self.scale}

    @shape_checked
    def logprobs(
        self,
        hidden_states: Float[Tensor, "tokens hidden"],
        targets: Int[Tensor, " tokens"],
        *,
        ignore_index: int = -100,
        chunk_size: int | None = None,
    ) -> Float[Tensor, " tokens"]:
        """Float32 log-prob of each target token given the hidden state before it (0 where ignored)."""
        return ops.linear_logprobs(
            self._inputs(hidden_states),
            self.weight,
            targets,
            chunk_size=chunk_size,
            ignore_index=ignore_index,
            **self._transform,
        )

    @shape_checked
    def sequence_logprobs(
        self,
        hidden_states: Float[Tensor, "tokens hidden"],
        targets: Int[Tensor, " tokens"],
        sequence_ids: Int[Tensor, " tokens"],
        *,
        num_sequences: int | None = None,
        ignore_index: int = -100,
        chunk_size: int | None = None,
    ) -> Float[Tensor, " sequences"]:
        """Float32 sum of the target tokens' log-probs per sequence (``sequence_ids[t]`` names token t's).

        The fused path of :func:`rmreg.ops.sequence_linear_logprobs`: gradients are prepared in the forward
        pass (for at most ``ops.FUSED_MAX_BUFFERS`` sequences with a trainable head; later sequences' weight
        gradients are recomputed in the backward pass), so a regularizer on the summed log-probs needs little or
        no recompute. One backward pass per forward pass.
        """
        return ops.sequence_linear_logprobs(
            self._inputs(hidden_states),
            self.weight,
            targets,
            sequence_ids,
            num_sequences=num_sequences,
            chunk_size=chunk_size,
            ignore_index=ignore_index,
            **self._transform,
        )

    @shape_checked
    def logprob_loss(
        self,
        hidden_states: Float[Tensor, "tokens hidden"],
        targets: Int[Tensor, " tokens"],
        sequence_ids: Int[Tensor, " tokens"],
        loss_fn: Callable[[Tensor], Tensor],
        *,
        num_sequences: int | None = None,
        group_ids: Int[Tensor, " sequences"] | None = None,
        sequence_weights: Float[Tensor, " sequences"] | None = None,
        ignore_index: int = -100,
        chunk_size: int | None = None,
    ) -> tuple[Float[Tensor, ""], Float[Tensor, " sequences"]]:
        """``loss_fn`` of the per-sequence summed log-probs, fused into the head's pass (bounded memory).

        :func:`rmreg.ops.fused_logprob_loss` with this head's weight, bias and logit transform: ``loss_fn`` maps
        the summed log-probs [S] to a scalar; returns ``(loss, detached log-probs [S])``. By default two passes
        over the vocabulary (any loss, no weight-sized buffer); ``group_ids`` declares the loss separable over
        groups of sequences (a pair's chosen and rejected sequences) for one pass with one more weight-sized
        buffer, and ``sequence_weights`` w its form Σ_s w_s·log π_s per group (GRM's SFT: w = 1; DPO: +1 chosen,
        −1 rejected). One backward pass per forward pass.
        """
        return ops.fused_logprob_loss(
            self._inputs(hidden_states),
            self.weight,
            targets,
            sequence_ids,
            loss_fn,
            num_sequences=num_sequences,
            group_ids=group_ids,
            sequence_weights=sequence_weights,
            chunk_size=chunk_size,
            ignore_index=ignore_index,
            **self._transform,
        )

    def forward(
        self, hidden_states: Float[Tensor, "tokens hidden"], targets: Int[Tensor, " tokens"]
    ) -> Float[Tensor, " tokens"]:
        """Same as :meth:`logprobs` with the default options."""
        return self.logprobs(hidden_states, targets)
