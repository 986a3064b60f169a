"""Configuration of an rmreg reward model: a causal LM's decoder and a reward head (needs torch + transformers).

Written by rmreg into a checkpoint; ``AutoConfig.from_pretrained(directory, trust_remote_code=True)`` reads it.
"""

from transformers import AutoConfig, PretrainedConfig


class RmregRewardConfig(PretrainedConfig):
    """The backbone's own config (as a dict, with its ``model_type``) and the reward head's.

    Args:
        backbone_config: the decoder's config, ``PretrainedConfig.to_dict()`` of the causal LM.
        reward_head: ``hidden_size``, ``kind`` (``"mlp"`` or ``"linear"``), ``hidden``, ``num_layers``,
            ``dropout``, ``num_outputs``, ``bias`` (of the output layer) and ``dtype`` of the head; for an ensemble,
            ``num_heads`` instead of ``num_outputs``.
    """

    model_type = "rmreg_reward_model"

    def __init__(self, backbone_config: dict | None = None, reward_head: dict | None = None, **kwargs) -> None:
        if isinstance(backbone_config, PretrainedConfig):
            backbone_config = backbone_config.to_dict()
        self.backbone_config = dict(backbone_config or {})
        self.reward_head = dict(reward_head or {})
        super().__init__(**kwargs)

    def backbone(self) -> PretrainedConfig:
        """The decoder's config object, with this config's attention implementation (when one was chosen)."""
        fields = dict(self.backbone_config)
        config = AutoConfig.for_model(fields.pop("model_type"), **fields)
        chosen = getattr(self, "_attn_implementation_internal", None)
        if chosen is not None:
            config._attn_implementation = chosen
        return config
