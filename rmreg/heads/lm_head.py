"""The retained LM head: the backbone's own output layer, scoring response tokens for GRM's regularizers.

GRM keeps the backbone's own LM head beside a new reward head; both read the same hidden states, so the
text-generation regularizer keeps those states useful for language modelling (Yang et al., NeurIPS 2024,
Fig. 1, https://arxiv.org/abs/2406.10216).
"""

from torch import nn

from rmreg import ops
from rmreg._typing import Float, Int, Tensor, shape_checked

__all__ = ["RetainedLMHead"]


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
