"""The causal LM side of the reward model: final hidden states, last-token pooling, response log-probs.

The model never asks a Hugging Face causal LM for its logits: it runs the LM's base model (the decoder
without the LM head) once over the batch, reads the reward at the last real token, and applies the LM head
itself, through :mod:`rmreg.ops`, only to the response tokens of the rows that some term needs.
PEFT models (LoRA and other adapters injected into the layers) are unwrapped to the model they modify;
``peft`` itself is never imported here.

A ``*ForSequenceClassification`` model (a decoder and a linear ``score`` layer, as TRL's ``RewardTrainer`` trains)
is accepted too, for objectives that read rewards only: :func:`classifier_reward_head` makes its trained ``score``
layer the reward head, and its LM head is :class:`NoLMHead`, which refuses any log-prob with the advice to pass
the causal LM (GRM's regularizers score response tokens with the LM head).
"""

import contextlib
import sys
import weakref
from collections.abc import Iterator
from typing import Any

import torch
from torch import nn

from rmreg._typing import Bool, Float, Int, Tensor
from rmreg.data.layout import IGNORE_INDEX
from rmreg.heads import RetainedLMHead, RewardHead
from rmreg.heads.lm_head import logit_transform


def is_peft_model(model: nn.Module) -> bool:
    """Whether ``model`` is a ``peft.PeftModel`` (without importing peft if nobody did)."""
    peft = sys.modules.get("peft")
    return peft is not None and isinstance(model, peft.PeftModel)


def unwrap(causal_lm: nn.Module) -> Any:
    """The ``*ForCausalLM`` model itself: under PEFT, the model its adapters are injected into."""
    model: Any = causal_lm
    return model.get_base_model() if is_peft_model(causal_lm) else causal_lm


class NoLMHead(nn.Module):
    """The LM head of a model that has none (a sequence classifier): an output layer with no vocabulary.

    The reward model builds its retained LM head from it at no cost; any log-prob through it raises (see
    :func:`response_logprobs`), telling the user to pass the causal LM for GRM's regularizers.
    """

    def __init__(self, model: nn.Module, hidden_size: int) -> None:
        super().__init__()
        self.model_name = type(model).__name__
        self.register_buffer("weight", torch.empty(0, hidden_size), persistent=False)

    def extra_repr(self) -> str:
        return f"{self.model_name} has no LM head"


_NO_LM_HEADS: "weakref.WeakKeyDictionary[nn.Module, NoLMHead]" = weakref.WeakKeyDictionary()


def is_sequence_classifier(model: nn.Module) -> bool:
    """Whether ``model`` (or the model PEFT wraps) is a ``*ForSequenceClassification``: a decoder, a ``score``
    layer, and no LM head."""
    inner = unwrap(model)
    return type(inner).__name__.endswith("ForSequenceClassification") and isinstance(
        getattr(inner, "score", None), nn.Module
    )


def score_layer(model: nn.Module) -> nn.Linear:
    """The linear layer that computes a sequence classifier's logits (under PEFT ``modules_to_save``, the active
    trainable copy).

    Raises:
        ValueError: a ``score`` layer that is not one bias-free ``Linear(H, 1)`` (``num_labels`` other than 1, or
            PEFT adapters injected into it).
    """
    score = unwrap(model).score
    copies = getattr(score, "modules_to_save", None)  # PEFT's ModulesToSaveWrapper
    if isinstance(copies, nn.ModuleDict) and score.active_adapter in copies:
        score = copies[score.active_adapter]
    if not isinstance(score, nn.Linear):
        raise ValueError(
            f"the classifier's score layer is a {type(score).__name__}, not a Linear layer (PEFT adapters injected "
            "into it?); rmreg trains the reward head in full: leave 'score' out of the PEFT target_modules"
        )
    if score.out_features != 1:
        raise ValueError(
            f"the classifier's score layer has {score.out_features} outputs (num_labels={score.out_features}), but a "
            "reward model needs one: load it with num_labels=1"
        )
    if score.bias is not None:
        raise ValueError("the classifier's score layer has a bias, which a bias-free RewardHead cannot hold")
    return score


def classifier_reward_head(model: nn.Module) -> RewardHead:
    """A sequence classifier's trained ``score`` layer as a ``RewardHead(H, kind="linear", bias=False)``.

    The head's weight *is* the score layer's weight (one parameter, trained once), so the classifier itself stays
    the trained sequence classifier, as TRL's ``RewardTrainer`` leaves it.
    """
    score = score_layer(model)
    head = RewardHead(score.in_features, kind="linear", bias=False)
    head.output_layer.weight = score.weight
    return head


def check_causal_lm(causal_lm: nn.Module) -> None:
    """Raise ``ValueError`` unless rmreg can run this model's decoder and LM head separately (or, for a sequence
    classifier, its decoder and ``score`` layer)."""
    model = unwrap(causal_lm)
    if not hasattr(model, "get_output_embeddings") or getattr(model, "base_model", model) is model:
        raise ValueError(
            f"{type(model).__name__} is not a Hugging Face *ForCausalLM model (with a base model and an LM head)"
        )
    peft_model: Any = causal_lm
    if is_peft_model(causal_lm) and peft_model.active_peft_config.is_prompt_learning:
        raise ValueError("prompt-learning PEFT methods are not supported; use adapters such as LoRA")
    if is_sequence_classifier(causal_lm):
        score_layer(causal_lm)
        return
    head = model.get_output_embeddings()
    if head is None or getattr(head, "weight", None) is None or head.weight.ndim != 2:
        raise ValueError(f"{type(model).__name__} has no linear LM head (get_output_embeddings() with a weight)")


def hidden_size(causal_lm: nn.Module) -> int:
    """Width of the final hidden states (the LM head's input size, or a classifier's score layer's)."""
    if is_sequence_classifier(causal_lm):
        return int(score_layer(causal_lm).in_features)
    head: Any = lm_head(causal_lm)
    return int(head.weight.shape[1])


def lm_head(causal_lm: nn.Module) -> nn.Module:
    """The LM's output layer (possibly tied to its input embeddings); :class:`NoLMHead` for a sequence classifier."""
    model = unwrap(causal_lm)
    if not is_sequence_classifier(model):
        return model.get_output_embeddings()
    head = _NO_LM_HEADS.get(model)
    if head is None:
        head = _NO_LM_HEADS[model] = NoLMHead(model, hidden_size(model))
    return head


def retained_lm_head(causal_lm: nn.Module, *, trainable: bool | None = None) -> RetainedLMHead:
    """The LM head as the regularizers use it, with the logit soft-cap or scale its config declares (Gemma 2/3,
    Cohere, Granite, ...; see :func:`rmreg.heads.lm_head.logit_transform`)."""
    softcap, scale = logit_transform(unwrap(causal_lm).config)
    return RetainedLMHead(lm_head(causal_lm), trainable=trainable, softcap=softcap, scale=scale)


def lm_head_is_tied(causal_lm: nn.Module) -> bool:
    """Whether the LM head's weight is the input embedding matrix."""
    return lm_head(causal_lm).weight is unwrap(causal_lm).get_input_embeddings().weight


def position_ids(attention_mask: Int[Tensor, "rows seq"] | Bool[Tensor, "rows seq"]) -> Int[Tensor, "rows seq"]:
    """Positions counted over real tokens only, so left padding does not shift them (0 on left padding)."""
    return (attention_mask.long().cumsum(-1) - 1).clamp(min=0)


def final_hidden_states(
    causal_lm: nn.Module,
    input_ids: Int[Tensor, "rows seq"],
    attention_mask: Int[Tensor, "rows seq"] | Bool[Tensor, "rows seq"],
) -> Float[Tensor, "rows seq hidden"]:
    """The decoder's final hidden states (after its last norm), without running the LM head."""
    decoder = unwrap(causal_lm).base_model
    outputs = decoder(
        input_ids=input_ids, attention_mask=attention_mask, position_ids=position_ids(attention_mask), use_cache=False
    )
    return outputs.last_hidden_state


def last_token_index(attention_mask: Int[Tensor, "rows seq"] | Bool[Tensor, "rows seq"]) -> Int[Tensor, " rows"]:
    """Index of each row's last real token, for right padding, left padding and rows without padding."""
    positions = torch.arange(attention_mask.shape[-1], device=attention_mask.device)
    return (positions * attention_mask.bool()).argmax(-1)


def pool_last(
    hidden: Float[Tensor, "rows seq hidden"], attention_mask: Int[Tensor, "rows seq"] | Bool[Tensor, "rows seq"]
) -> Float[Tensor, "rows hidden"]:
    """The final hidden state at each row's last real token."""
    rows = torch.arange(hidden.shape[0], device=hidden.device)
    return hidden[rows, last_token_index(attention_mask)]


def _check_has_lm_head(module: nn.Module) -> None:
    if isinstance(module, NoLMHead):
        raise ValueError(
            f"{module.model_name} is a sequence classifier: it has no LM head, which the objective's regularizer "
            "(or reference) needs to score response tokens; pass the causal LM (AutoModelForCausalLM) instead, "
            "or train with an objective that reads rewards only, such as 'bt'"
        )


def check_not_sharded_alone(module: nn.Module) -> None:
    """Refuse an LM head whose weight is still sharded (a DTensor) when the regularizer reads it.

    That happens when FSDP2 makes the LM head a unit of its own: nothing unshards it, since the model reads its
    weight instead of calling it. In one unit with the final norm (``reshard_after_forward=False``) or in its
    parent's unit, the weight is whole by then.
    """
    dtensor = sys.modules.get("torch.distributed.tensor")
    if dtensor is not None and isinstance(module.weight, getattr(dtensor, "DTensor", ())):
        raise ValueError(
            "the LM head's weight is sharded when the regularizer reads it (FSDP made the LM head a unit of its "
            "own); keep the LM head in its parent's unit or in one unit with the final norm "
            "(see examples/configs/fsdp.yaml)"
        )


def response_tokens(labels: Int[Tensor, "rows seq"], rows: Int[Tensor, " k"]) -> tuple[Tensor, Tensor]:
    """``(row_of_token, position)`` of every response token of ``rows``: position t predicts ``labels[t+1]``.

    One device read (the number of response tokens is data-dependent).
    """
    row_of_token, position = (labels[rows, 1:] != IGNORE_INDEX).nonzero(as_tuple=True)
    return row_of_token, position


def response_logprobs(
    hidden: Float[Tensor, "rows seq hidden"],
    labels: Int[Tensor, "rows seq"],
    rows: Int[Tensor, " k"],
    head: RetainedLMHead,
) -> Float[Tensor, " k"]:
    """Summed fp32 log-prob of the response tokens of ``rows``: Σ_t log p(labels[t+1] | hidden[t]).

    Only those rows' response positions reach the LM head (the fused per-sequence path of :mod:`rmreg.ops`).
    """
    _check_has_lm_head(head.lm_head)
    check_not_sharded_alone(head.lm_head)
    row_of_token, position = response_tokens(labels, rows)
    source = rows[row_of_token]
    return head.sequence_logprobs(
        hidden[source, position], labels[source, position + 1], row_of_token, num_sequences=int(rows.shape[0])
    )


def response_token_logprobs(
    hidden: Float[Tensor, "rows seq hidden"],
    labels: Int[Tensor, "rows seq"],
    rows: Int[Tensor, " k"],
    head: RetainedLMHead,
) -> tuple[Float[Tensor, "k positions"], Bool[Tensor, "k positions"]]:
    """Per-token fp32 log-probs of the response tokens of ``rows``, ``[k, seq − 1]`` (position t scores token
    t+1; 0 off the response), and the mask of response positions. Only response positions reach the LM head.
    """
    _check_has_lm_head(head.lm_head)
    check_not_sharded_alone(head.lm_head)
    mask = labels[rows, 1:] != IGNORE_INDEX
    row_of_token, position = mask.nonzero(as_tuple=True)
    source = rows[row_of_token]
    values = head.logprobs(hidden[source, position], labels[source, position + 1])
    token_logps = values.new_zeros(mask.shape).index_put((row_of_token, position), values)
    return token_logps, mask


@contextlib.contextmanager
def eval_mode(module: nn.Module) -> Iterator[None]:
    """Run ``module`` in eval mode (no dropout) inside the block, then restore every submodule's mode."""
    modes = [(child, child.training) for child in module.modules()]
    module.eval()
    try:
        yield
    finally:
        for child, training in modes:
            child.training = training
