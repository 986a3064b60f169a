r"""An ensemble of reward heads on one backbone: K heads read the same final hidden state.

The backbone runs once per batch; each head gives its own reward, and each is trained on its own bootstrap
resample of the batch's pairs (:meth:`RewardEnsemble.bootstrap_weights`, read by
:class:`~rmreg.objectives.ensemble.EnsembleBradleyTerry`), so the heads disagree where the data leaves the reward
uncertain. At scoring time the per-head rewards :math:`r_1, \dots, r_K` are aggregated as in Coste et al.,
"Reward Model Ensembles Help Mitigate Overoptimization" (ICLR 2024, https://arxiv.org/abs/2310.02743):

=========================  ===========================================================================
``"mean"``                 :math:`\bar r = \frac1K \sum_k r_k` (the scalar reward the model trains and scores)
``"min"``                  :math:`\min_k r_k` (worst-case optimization, WCO)
``"uncertainty_weighted"``  :math:`\bar r - \lambda \cdot \frac1K \sum_k (r_k - \bar r)^2` (UWO)
=========================  ===========================================================================

and :func:`reward_spread` (the heads' standard deviation :math:`\sqrt{\frac1K \sum_k (r_k - \bar r)^2}`) is an
uncertainty of each reward. (Coste et al. train K whole reward models; here the heads share the backbone: one
backbone forward for all of them, and their disagreement reflects the heads and their resamples only.)
"""

from typing import Any, Literal

import torch
from torch import nn

from rmreg._typing import Float, Tensor, shape_checked
from rmreg.heads.reward_head import HeadKind, RewardHead

__all__ = ["AGGREGATIONS", "Aggregation", "Bootstrap", "RewardEnsemble", "aggregate_rewards", "reward_spread"]

Aggregation = Literal["mean", "min", "uncertainty_weighted"]
AGGREGATIONS: tuple[Aggregation, ...] = ("mean", "min", "uncertainty_weighted")
Bootstrap = Literal["multinomial", "poisson"]
_BOOTSTRAPS = ("multinomial", "poisson", None)


@shape_checked
def aggregate_rewards(
    head_rewards: Float[Tensor, "batch heads"], how: Aggregation = "mean", *, penalty: float | None = None
) -> Float[Tensor, " batch"]:
    r"""One reward per row from K heads' rewards ``[batch, K]``: the mean, the minimum, or mean − λ·variance.

    See the module docstring for the formulas (Coste et al., ICLR 2024, https://arxiv.org/abs/2310.02743). The
    variance is the heads' population variance (divided by K), so one head has variance 0.

    Args:
        head_rewards: ``[batch, K]`` rewards of K heads.
        how: ``"mean"``, ``"min"`` (worst case) or ``"uncertainty_weighted"`` (mean − λ·variance).
        penalty: λ ≥ 0 of ``"uncertainty_weighted"`` (required there, refused elsewhere).

    Example:
        >>> import torch
        >>> rewards = torch.tensor([[1.0, 3.0], [2.0, 2.0]])
        >>> aggregate_rewards(rewards), aggregate_rewards(rewards, "min")
        (tensor([2., 2.]), tensor([1., 2.]))
        >>> aggregate_rewards(rewards, "uncertainty_weighted", penalty=0.5)  # 2 − 0.5·1, 2 − 0
        tensor([1.5000, 2.0000])
    """
    if how not in AGGREGATIONS:
        raise ValueError(f"how must be one of {AGGREGATIONS}, got {how!r}")
    if (how == "uncertainty_weighted") != (penalty is not None):
        raise ValueError(
            "penalty (λ of mean − λ·variance) is required by how='uncertainty_weighted' and only by it; got "
            f"how={how!r}, penalty={penalty!r}"
        )
    if head_rewards.ndim != 2 or head_rewards.shape[1] < 1:
        raise ValueError(f"head_rewards must be [batch, K] with K >= 1, got {tuple(head_rewards.shape)}")
    if how == "min":
        return head_rewards.min(dim=-1).values
    mean = head_rewards.mean(dim=-1)
    if how == "mean":
        return mean
    assert penalty is not None
    if isinstance(penalty, bool) or not isinstance(penalty, (int, float)) or not penalty >= 0:
        raise ValueError(f"penalty must be a number >= 0, got {penalty!r}")
    return mean - penalty * head_rewards.var(dim=-1, correction=0)


@shape_checked
def reward_spread(head_rewards: Float[Tensor, "batch heads"]) -> Float[Tensor, " batch"]:
    """The heads' disagreement on each row: the population standard deviation of ``[batch, K]`` rewards.

    Example:
        >>> import torch
        >>> reward_spread(torch.tensor([[1.0, 3.0], [2.0, 2.0]]))
        tensor([1., 0.])
    """
    if head_rewards.ndim != 2 or head_rewards.shape[1] < 1:
        raise ValueError(f"head_rewards must be [batch, K] with K >= 1, got {tuple(head_rewards.shape)}")
    return head_rewards.std(dim=-1, correction=0)


class RewardEnsemble(nn.Module):
    """K reward heads on the same hidden state; the scalar reward is their mean.

    ``ensemble(h)`` returns the per-head rewards ``[batch, K]``; :meth:`reward` (and :meth:`combine`) their mean
    ``[batch]``, which every pair term reads as ``chosen_rewards``/``rejected_rewards``. Each member is a
    :class:`RewardHead` with one output, built with the same arguments and its own random initialization.

    Bootstrap: :meth:`bootstrap_weights` draws, per batch, how often each pair appears in each head's resample of
    the batch: ``"multinomial"`` is the classic bootstrap (P draws with replacement from the P pairs: counts
    summing to P per head), ``"poisson"`` the online bootstrap (independent Poisson(1) counts, Oza & Russell,
    2001), ``None`` gives every head every pair once (the heads then differ only by initialization). Draw ``n``
    (counted from 0) comes from a generator seeded with ``(seed, n)``: two ensembles with the same seed draw the
    same weights batch after batch, whatever else uses torch's global generator. The model draws once per batch in
    training mode only (in eval mode every head gets every pair once, and no draw is used up). The draw counter is
    not saved in checkpoints (a resumed run restarts the sequence; :meth:`reset_bootstrap` does that by hand).

    Args:
        hidden_size: the backbone's hidden size ``H``.
        num_heads: K ≥ 1.
        kind, hidden, num_layers, dropout, bias: each member's :class:`RewardHead` arguments.
        bootstrap: ``"multinomial"`` (default), ``"poisson"`` or ``None``.
        seed: seed of the bootstrap draws.

    Example:
        >>> import torch
        >>> from rmreg.heads import RewardEnsemble
        >>> ensemble = RewardEnsemble(16, 4, kind="linear", seed=0)
        >>> hidden = torch.randn(3, 16)
        >>> ensemble(hidden).shape, ensemble.reward(hidden).shape
        (torch.Size([3, 4]), torch.Size([3]))
        >>> ensemble.bootstrap_weights(5).sum(0)  # each head's resample has the batch's 5 pairs
        tensor([5., 5., 5., 5.])
    """

    def __init__(
        self,
        hidden_size: int,
        num_heads: int,
        *,
        kind: HeadKind = "mlp",
        hidden: int = 1024,
        num_layers: int = 1,
        dropout: float | None = None,
        bias: bool = False,
        bootstrap: Bootstrap | None = "multinomial",
        seed: int = 0,
    ) -> None:
        super().__init__()
        if isinstance(num_heads, bool) or not isinstance(num_heads, int) or num_heads < 1:
            raise ValueError(f"num_heads must be a positive integer, got {num_heads!r}")
        if bootstrap not in _BOOTSTRAPS:
            raise ValueError(f"bootstrap must be one of {_BOOTSTRAPS}, got {bootstrap!r}")
        if isinstance(seed, bool) or not isinstance(seed, int):
            raise ValueError(f"seed must be an int, got {seed!r}")
        member = {"kind": kind, "hidden": hidden, "num_layers": num_layers, "dropout": dropout, "bias": bias}
        heads = [RewardHead(hidden_size, **member) for _ in range(num_heads)]  # type: ignore[arg-type]
        self.members: list[RewardHead] = nn.ModuleList(heads)  # type: ignore[assignment]
        self.hidden_size, self.num_heads, self.bootstrap, self.seed = hidden_size, num_heads, bootstrap, seed
        self.draws = 0

    @property
    def num_outputs(self) -> int:
        """K: one output per head."""
        return self.num_heads

    @property
    def output_layer(self) -> nn.Linear:
        """The first member's output layer (its dtype is every member's)."""
        return self.members[0].output_layer

    def config(self) -> dict[str, Any]:
        """JSON-able constructor arguments; ``RewardEnsemble(**ensemble.config())`` rebuilds the architecture."""
        member = self.members[0].config()
        return {
            "hidden_size": self.hidden_size,
            "num_heads": self.num_heads,
            **{name: member[name] for name in ("kind", "hidden", "num_layers", "dropout", "bias")},
            "bootstrap": self.bootstrap,
            "seed": self.seed,
        }

    @shape_checked
    def forward(self, hidden_states: Float[Tensor, "batch hidden"]) -> Float[Tensor, "batch heads"]:
        """Per-head rewards ``[batch, K]`` from hidden states ``[batch, hidden]``."""
        return torch.stack([member(hidden_states) for member in self.members], dim=-1)

    @shape_checked
    def combine(self, outputs: Float[Tensor, "batch heads"]) -> Float[Tensor, " batch"]:
        """The scalar reward ``[batch]``: the mean of the heads' rewards (what :meth:`forward` returned)."""
        if outputs.ndim != 2 or outputs.shape[1] != self.num_heads:
            raise ValueError(f"outputs of this ensemble have shape [batch, {self.num_heads}], got {outputs.shape}")
        return outputs.mean(dim=-1)

    @shape_checked
    def reward(self, hidden_states: Float[Tensor, "batch hidden"]) -> Float[Tensor, " batch"]:
        """The scalar reward ``[batch]``: the heads' mean."""
        return self.combine(self(hidden_states))

    def bootstrap_weights(
        self, pairs: int, *, device: torch.device | str | None = None
    ) -> Float[Tensor, "pairs heads"]:
        """The next draw of bootstrap counts ``[pairs, K]`` (float32): how often pair p is in head k's resample."""
        if isinstance(pairs, bool) or not isinstance(pairs, int) or pairs < 1:
            raise ValueError(f"pairs must be a positive integer, got {pairs!r}")
        generator = torch.Generator().manual_seed(hash((self.seed, self.draws)) % 2**63)
        self.draws += 1
        if self.bootstrap is None:
            weights = torch.ones(pairs, self.num_heads)
        elif self.bootstrap == "poisson":
            weights = torch.poisson(torch.ones(pairs, self.num_heads), generator=generator)
        else:
            picks = torch.randint(pairs, (self.num_heads, pairs), generator=generator)
            weights = torch.zeros(self.num_heads, pairs).scatter_add_(1, picks, torch.ones(self.num_heads, pairs)).T
        return weights.contiguous().to(device)

    def reset_bootstrap(self, seed: int | None = None) -> None:
        """Restart the bootstrap draws from draw 0 (of ``seed``, default the ensemble's own)."""
        if seed is not None:
            if isinstance(seed, bool) or not isinstance(seed, int):
                raise ValueError(f"seed must be an int, got {seed!r}")
            self.seed = seed
        self.draws = 0

    def extra_repr(self) -> str:
        return f"num_heads={self.num_heads}, bootstrap={self.bootstrap!r}, seed={self.seed}"
