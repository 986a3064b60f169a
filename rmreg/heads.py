"""Heads on a causal LM's final hidden states: the reward head, and the retained LM head of GRM.

GRM keeps the backbone's own LM head beside a new reward head; both read the same hidden states, so the
text-generation regularizer keeps those states useful for language modelling (Yang et al., NeurIPS 2024,
Fig. 1, https://arxiv.org/abs/2406.10216).
"""

from typing import Any, Literal

from torch import nn

from rmreg import ops
from rmreg._typing import Float, Int, Tensor, shape_checked

__all__ = ["RetainedLMHead", "RewardHead"]

HeadKind = Literal["mlp", "linear"]


class RewardHead(nn.Module):
    r"""Maps a final hidden state to a scalar reward (or ``num_outputs`` rewards).

    ``kind="mlp"`` is the paper's head, with ``num_layers`` hidden blocks:
    ``Dropout(p) → [Linear(H, hidden) → ReLU] × num_layers → Linear(hidden, num_outputs)``;
    ``kind="linear"`` is ``Linear(H, num_outputs)`` (preceded by ``Dropout(p)`` only when ``dropout > 0`` is
    asked for), the head of ``AutoModelForSequenceClassification``, which a model can be exported to.

    The head keeps its own parameters' dtype (float32 by default) and casts incoming hidden states to it, so
    a bf16 backbone still gets a float32 reward.

    Args:
        hidden_size: the backbone's hidden size ``H``.
        kind: ``"mlp"`` (paper default) or ``"linear"``.
        hidden: width of the MLP's hidden layers (1024 in the paper).
        num_layers: number of ``Linear → ReLU`` blocks in the MLP (1 in the paper).
        dropout: dropout on the input hidden state; ``None`` means 0.1 for ``"mlp"`` (paper) and 0 for
            ``"linear"``.
        num_outputs: rewards per input (1: output ``[batch]``; more: ``[batch, num_outputs]``).

    Example:
        >>> import torch
        >>> from rmreg import RewardHead
        >>> head = RewardHead(16).eval()
        >>> head(torch.randn(4, 16)).shape
        torch.Size([4])
    """

    def __init__(
        self,
        hidden_size: int,
        *,
        kind: HeadKind = "mlp",
        hidden: int = 1024,
        num_layers: int = 1,
        dropout: float | None = None,
        num_outputs: int = 1,
    ) -> None:
        super().__init__()
        if kind not in ("mlp", "linear"):
            raise ValueError(f"kind must be 'mlp' or 'linear', got {kind!r}")
        for name, value in (("hidden_size", hidden_size), ("hidden", hidden), ("num_outputs", num_outputs)):
            if not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be a positive integer, got {value!r}")
        if not isinstance(num_layers, int) or num_layers < 1:
            raise ValueError(f"num_layers must be a positive integer, got {num_layers!r}")
        if dropout is None:
            dropout = 0.1 if kind == "mlp" else 0.0
        if not 0.0 <= dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {dropout!r}")
        self.hidden_size = hidden_size
        self.kind: HeadKind = kind
        self.hidden = hidden
        self.num_layers = num_layers
        self.dropout = dropout
        self.num_outputs = num_outputs
        self.layers = nn.Sequential(*self._build_layers())

    def _build_layers(self) -> list[nn.Module]:
        layers: list[nn.Module] = [nn.Dropout(self.dropout)] if self.dropout > 0 else []
        width = self.hidden_size
        if self.kind == "mlp":
            for _ in range(self.num_layers):
                layers += [nn.Linear(width, self.hidden), nn.ReLU()]
                width = self.hidden
        layers.append(nn.Linear(width, self.num_outputs))
        return layers

    @property
    def output_layer(self) -> nn.Linear:
        """The last ``Linear`` layer (for a linear head: the whole head)."""
        last = self.layers[-1]
        assert isinstance(last, nn.Linear)
        return last

    def config(self) -> dict[str, Any]:
        """JSON-able constructor arguments; ``RewardHead(**head.config())`` rebuilds the same architecture."""
        return {
            "hidden_size": self.hidden_size,
            "kind": self.kind,
            "hidden": self.hidden,
            "num_layers": self.num_layers,
            "dropout": self.dropout,
            "num_outputs": self.num_outputs,
        }

    @shape_checked
    def forward(self, hidden_states: Float[Tensor, "batch hidden"]) -> Float[Tensor, " batch *outputs"]:
        """Rewards ``[batch]`` (or ``[batch, num_outputs]``) from hidden states ``[batch, hidden]``."""
        if hidden_states.ndim != 2 or hidden_states.shape[-1] != self.hidden_size:
            raise ValueError(
                f"RewardHead expects hidden states [batch, {self.hidden_size}], got "
                f"{tuple(hidden_states.shape)}; is the head's hidden_size the backbone's hidden size?"
            )
        rewards = self.layers(hidden_states.to(self.output_layer.weight.dtype))
        return rewards.squeeze(-1) if self.num_outputs == 1 else rewards


class RetainedLMHead(nn.Module):
    r"""The backbone's own LM head, kept to score response tokens for GRM's regularizers.

    It wraps the existing head module (its ``weight`` ``[vocab, hidden]`` may be tied to the input
    embeddings) and computes float32 log-probs only at the positions it is given, through
    :func:`rmreg.ops.linear_logprobs`, never materializing full-vocabulary logits for the whole batch:

    .. math::
        \log p(y_t \mid h_t) = h_t^\top W_{y_t} + b_{y_t} - \log\sum_v \exp(h_t^\top W_v + b_v)

    Args:
        lm_head: the causal LM's output layer (``model.get_output_embeddings()``), a module with ``weight``
            ``[vocab, hidden]`` and optionally ``bias`` ``[vocab]``.
        trainable: ``False`` stops the regularizers' gradient into the head's weight (it is detached, so a
            weight tied to the embeddings keeps training through the embeddings; the frozen path is also
            faster); ``True`` lets it through; ``None`` (default) follows ``weight.requires_grad``.

    Example:
        >>> import torch
        >>> from rmreg import RetainedLMHead
        >>> head = RetainedLMHead(torch.nn.Linear(8, 50, bias=False), trainable=False)
        >>> head.logprobs(torch.randn(3, 8), torch.tensor([1, 2, -100])).shape
        torch.Size([3])
    """

    def __init__(self, lm_head: nn.Module, *, trainable: bool | None = None) -> None:
        super().__init__()
        weight = getattr(lm_head, "weight", None)
        if not isinstance(weight, Tensor) or weight.ndim != 2:
            raise ValueError(
                f"lm_head must have a 2-D weight [vocab, hidden]; got {type(lm_head).__name__} without one"
            )
        self.lm_head = lm_head
        self.trainable = trainable

    @property
    def weight(self) -> Tensor:
        """The head's weight ``[vocab, hidden]``, detached when the head is frozen."""
        weight = self.lm_head.weight
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
        return int(self.lm_head.weight.shape[0])

    @property
    def hidden_size(self) -> int:
        return int(self.lm_head.weight.shape[1])

    def _passes_gradient(self) -> bool:
        if self.trainable is None:
            return bool(self.lm_head.weight.requires_grad)
        return self.trainable

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
        self._check_hidden_size(hidden_states)
        return ops.linear_logprobs(
            hidden_states.to(self.lm_head.weight.dtype),
            self.weight,
            targets,
            bias=self.bias,
            chunk_size=chunk_size,
            ignore_index=ignore_index,
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
        self._check_hidden_size(hidden_states)
        return ops.sequence_linear_logprobs(
            hidden_states.to(self.lm_head.weight.dtype),
            self.weight,
            targets,
            sequence_ids,
            num_sequences=num_sequences,
            bias=self.bias,
            chunk_size=chunk_size,
            ignore_index=ignore_index,
        )

    def _check_hidden_size(self, hidden_states: Tensor) -> None:
        if hidden_states.shape[-1] != self.hidden_size:
            raise ValueError(
                f"hidden states have size {hidden_states.shape[-1]} but the LM head expects {self.hidden_size}"
            )

    def forward(
        self, hidden_states: Float[Tensor, "tokens hidden"], targets: Int[Tensor, " tokens"]
    ) -> Float[Tensor, " tokens"]:
        """Same as :meth:`logprobs` with the default options."""
        return self.logprobs(hidden_states, targets)
