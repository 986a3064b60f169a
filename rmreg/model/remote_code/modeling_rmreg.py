"""An rmreg reward model as a transformers sequence classifier (needs only torch and transformers).

Written by rmreg into a checkpoint; ``AutoModelForSequenceClassification.from_pretrained(directory,
trust_remote_code=True)`` loads it. The logit of a row is rmreg's reward: the decoder's final hidden state at
the row's last real token (by ``attention_mask``, whatever the padding side and whatever the pad token is, EOS
included), with positions counted over real tokens, through the reward head in its own dtype (float32 by default).
"""

from typing import cast

import torch
from torch import nn
from transformers import AutoModel, PreTrainedModel
from transformers.modeling_outputs import SequenceClassifierOutputWithPast

from .configuration_rmreg import RmregRewardConfig


class RewardHead(nn.Module):
    """``[Dropout] → [Linear → ReLU] × num_layers → Linear`` (``kind="mlp"``) or ``[Dropout] → Linear``."""

    def __init__(self, hidden_size, kind, hidden, num_layers, dropout, num_outputs, bias, **_) -> None:
        super().__init__()
        layers: list[nn.Module] = [nn.Dropout(dropout)] if dropout > 0 else []
        width = hidden_size
        if kind == "mlp":
            for _layer in range(num_layers):
                layers += [nn.Linear(width, hidden), nn.ReLU()]
                width = hidden
        elif kind != "linear":
            raise ValueError(f"unknown reward head kind {kind!r}")
        layers.append(nn.Linear(width, num_outputs, bias=bias))
        self.layers = nn.Sequential(*layers)

    def forward(self, hidden_states: torch.Tensor) -> torch.Tensor:
        output = cast(nn.Linear, self.layers[-1])
        return self.layers(hidden_states.to(output.weight.dtype))


class RewardEnsemble(nn.Module):
    """``num_heads`` one-output heads on the same hidden state: logits ``[batch, num_heads]``, one per head."""

    def __init__(self, hidden_size, num_heads, kind, hidden, num_layers, dropout, bias, **_) -> None:
        super().__init__()
        member = {"kind": kind, "hidden": hidden, "num_layers": num_layers, "dropout": dropout, "bias": bias}
        self.members = nn.ModuleList(RewardHead(hidden_size, num_outputs=1, **member) for _ in range(num_heads))

    def forward(self, hidden_states: torch.Tensor) -> torch.Tensor:
        return torch.cat([member(hidden_states) for member in self.members], dim=-1)


def reward_head(config: dict) -> nn.Module:
    """The head a config describes: an ensemble when it has ``num_heads``, else one head."""
    return RewardEnsemble(**config) if "num_heads" in config else RewardHead(**config)


class RmregRewardModel(PreTrainedModel):
    """Decoder + reward head; ``logits`` ``[batch, num_outputs]`` are the rewards of the rows (an ensemble's: one
    per head; the reward rmreg trains is their mean)."""

    config_class = RmregRewardConfig
    base_model_prefix = "model"
    supports_gradient_checkpointing = True
    _supports_sdpa = True
    _supports_flash_attn = True
    _supports_flex_attn = True
    _supports_attention_backend = True

    def __init__(self, config: RmregRewardConfig) -> None:
        super().__init__(config)
        self.model = AutoModel.from_config(config.backbone())
        self.score = reward_head(config.reward_head)
        self._no_split_modules = getattr(self.model, "_no_split_modules", None)
        self.post_init()
        if config.reward_head.get("dtype") == "float32":
            # loaded in bf16 or fp16, the backbone takes that dtype and the head stays float32, as it was trained
            self._keep_in_fp32_modules_strict = {*(self._keep_in_fp32_modules_strict or ()), "score"}

    def _init_weights(self, module: nn.Module) -> None:
        self.model._init_weights(module)

    def get_input_embeddings(self) -> nn.Module:
        return self.model.get_input_embeddings()

    def set_input_embeddings(self, value: nn.Module) -> None:
        self.model.set_input_embeddings(value)

    def forward(
        self,
        input_ids: torch.LongTensor | None = None,
        attention_mask: torch.Tensor | None = None,
        position_ids: torch.Tensor | None = None,
        inputs_embeds: torch.Tensor | None = None,
        **kwargs,
    ) -> SequenceClassifierOutputWithPast:
        reference: torch.Tensor
        if input_ids is not None:
            reference = input_ids
        elif inputs_embeds is not None:
            reference = inputs_embeds[..., 0]
        else:
            raise TypeError("RmregRewardModel.forward needs input_ids or inputs_embeds")
        if attention_mask is None:
            attention_mask = torch.ones_like(reference, dtype=torch.long)
        mask = attention_mask.long()
        if position_ids is None:
            position_ids = (mask.cumsum(-1) - 1).clamp(min=0)
        outputs = self.model(
            input_ids=input_ids,
            attention_mask=attention_mask,
            position_ids=position_ids,
            inputs_embeds=inputs_embeds,
            use_cache=False,
            **kwargs,
        )
        hidden = outputs.last_hidden_state
        positions = torch.arange(mask.shape[-1], device=mask.device)
        last = (positions * mask.bool()).argmax(-1)
        pooled = hidden[torch.arange(hidden.shape[0], device=hidden.device), last]
        return SequenceClassifierOutputWithPast(
            logits=self.score(pooled), hidden_states=outputs.hidden_states, attentions=outputs.attentions
        )
