"""The reward head: a final hidden state in, a scalar reward (or several) out.

GRM keeps the backbone's own LM head beside a new reward head; both read the same hidden states, so the
text-generation regularizer keeps those states useful for language modelling (Yang et al., NeurIPS 2024,
Fig. 1, https://arxiv.org/abs/2406.10216).
"""

import math
from collections.abc import Sequence
from typing import Any, Literal

import torch
from torch import nn

from rmreg._typing import Float, Tensor, shape_checked

__all__ = ["RewardHead"]

HeadKind = Literal["mlp", "linear"]


class RewardHead(nn.Module):
    r"""Maps a final hidden state to a scalar reward (or ``num_outputs`` rewards).

    ``kind="mlp"`` is the paper's head, with ``num_layers`` hidden blocks:
    ``Dropout(p) → [Linear(H, hidden) → ReLU] × num_layers → Linear(hidden, num_outputs)``;
    ``kind="linear"`` is ``Linear(H, num_outputs)`` (preceded by ``Dropout(p)`` only when ``dropout > 0`` is
    asked for), the ``score`` layer of ``AutoModelForSequenceClassification`` and of TRL's reward models.

    The output layer has no bias by default: a constant added to every reward gets exactly zero gradient from
    Bradley–Terry and every other loss on reward differences, so it would only keep its random initial value.
    ``bias=True`` adds it (the paper's code has one; load its checkpoints with it). Checkpoints written before
    this option existed load with ``bias=True``, as they were.

    With several outputs (one score per attribute: helpfulness, correctness, ... as in HelpSteer2 and ArmoRM),
    :meth:`combine` turns them into the scalar reward that pair losses and a policy trainer see,
    :math:`r = \sum_m w_m f_m` with the fixed ``output_weights`` :math:`w` (default :math:`1/M` each: the mean);
    ``head(h)`` returns the scores ``[batch, M]``, :meth:`reward` the scalar ``[batch]``.

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
        bias: whether the output layer adds a learned constant (see above); the MLP's hidden layers always have
            biases.
        output_weights: ``num_outputs`` finite numbers ``w`` of the scalar reward ``Σ_m w_m f_m``; ``None``: the
            mean of the outputs (the output itself for one output).

    Example:
        >>> import torch
        >>> from rmreg import RewardHead
        >>> head = RewardHead(16).eval()
        >>> head(torch.randn(4, 16)).shape
        torch.Size([4])
        >>> helpsteer = RewardHead(16, num_outputs=3, output_weights=[0.5, 0.3, 0.2]).eval()
        >>> hidden = torch.randn(4, 16)
        >>> helpsteer(hidden).shape, helpsteer.reward(hidden).shape
        (torch.Size([4, 3]), torch.Size([4]))
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
        bias: bool = False,
        output_weights: Sequence[float] | None = None,
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
        if not isinstance(bias, bool):
            raise ValueError(f"bias must be True or False, got {bias!r}")
        self.hidden_size = hidden_size
        self.kind: HeadKind = kind
        self.hidden = hidden
        self.num_layers = num_layers
        self.dropout = dropout
        self.num_outputs = num_outputs
        self.bias = bias
        self.output_weights = _check_output_weights(output_weights, num_outputs)
        self.layers = nn.Sequential(*self._build_layers())
        weights = self.output_weights or [1.0 / num_outputs] * num_outputs
        # not persistent: the weights are configuration (saved with config()), not learned state
        self.combination: Tensor
        self.register_buffer("combination", torch.tensor(weights, dtype=torch.float32), persistent=False)

    def _build_layers(self) -> list[nn.Module]:
        layers: list[nn.Module] = [nn.Dropout(self.dropout)] if self.dropout > 0 else []
        width = self.hidden_size
        if self.kind == "mlp":
            for _ in range(self.num_layers):
                layers += [nn.Linear(width, self.hidden), nn.ReLU()]
                width = self.hidden
        layers.append(nn.Linear(width, self.num_outputs, bias=self.bias))
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
            "bias": self.bias,
            "output_weights": self.output_weights,
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

    @shape_checked
    def combine(self, outputs: Float[Tensor, " batch *outputs"]) -> Float[Tensor, " batch"]:
        """The scalar reward ``Σ_m w_m f_m`` ``[batch]`` of this head's outputs (what :meth:`forward` returned).

        One output without ``output_weights`` is returned as it is (bit for bit).
        """
        if outputs.shape[1:] != self.output_shape:
            raise ValueError(f"outputs of this head have shape [batch, *{self.output_shape}], got {outputs.shape}")
        if self.num_outputs == 1 and self.output_weights is None:
            return outputs
        matrix = outputs.reshape(outputs.shape[0], self.num_outputs)
        return matrix @ self.combination.to(matrix.dtype)

    @shape_checked
    def reward(self, hidden_states: Float[Tensor, "batch hidden"]) -> Float[Tensor, " batch"]:
        """The scalar reward ``[batch]``: :meth:`combine` of :meth:`forward`."""
        return self.combine(self(hidden_states))

    @property
    def output_shape(self) -> tuple[int, ...]:
        """The shape of one row's outputs: ``()`` for one output, ``(num_outputs,)`` for several."""
        return () if self.num_outputs == 1 else (self.num_outputs,)


def _check_output_weights(weights: Sequence[float] | None, num_outputs: int) -> list[float] | None:
    if weights is None:
        return None
    numbers = list(weights) if isinstance(weights, Sequence) and not isinstance(weights, str) else None
    ok = numbers is not None and all(
        isinstance(w, (int, float)) and not isinstance(w, bool) and math.isfinite(w) for w in numbers
    )
    if not ok or numbers is None or len(numbers) != num_outputs:
        raise ValueError(f"output_weights must be {num_outputs} finite numbers (num_outputs), got {weights!r}")
    return [float(w) for w in numbers]
