"""Soft-capped and scaled LM heads of real transformers families: RetainedLMHead against the model's own logits.

Each tiny model (random weights, float64) runs its own forward pass, whose logits include the family's transform
(Gemma's soft-cap, Cohere's and Granite's scales, ...); the retained head, built from the config by
``RetainedLMHead.from_causal_lm``, computes the same log-probs and LM-head weight gradient from the decoder's final
hidden states.
"""

import pytest
import torch
import transformers

from rmreg.heads import RetainedLMHead
from rmreg.heads.lm_head import logit_transform

COMMON = {
    "vocab_size": 64,
    "hidden_size": 16,
    "intermediate_size": 32,
    "num_hidden_layers": 1,
    "num_attention_heads": 2,
    "num_key_value_heads": 2,
    "tie_word_embeddings": False,
    "pad_token_id": 0,
}
FAMILIES = {  # config class name, options, attention, the (softcap, scale) transformers applies
    "gemma2": ("Gemma2Config", {"final_logit_softcapping": 3.0, "head_dim": 8}, "eager", (3.0, None)),
    "gemma3_text": ("Gemma3TextConfig", {"final_logit_softcapping": 2.0, "head_dim": 8}, "sdpa", (2.0, None)),
    "vaultgemma": ("VaultGemmaConfig", {"final_logit_softcapping": 2.5, "head_dim": 8}, "eager", (2.5, None)),
    "cohere": ("CohereConfig", {"logit_scale": 0.5}, "sdpa", (None, 0.5)),
    "cohere2": ("Cohere2Config", {"logit_scale": 0.25}, "sdpa", (None, 0.25)),
    "granite": ("GraniteConfig", {"logits_scaling": 0.25}, "sdpa", (None, 4.0)),
    "hyperclovax": ("HyperCLOVAXConfig", {"logits_scaling": 0.5}, "sdpa", (None, 0.5)),
    "minicpm3": (
        "MiniCPM3Config",
        {
            "dim_model_base": 4,
            "q_lora_rank": 8,
            "kv_lora_rank": 8,
            "qk_nope_head_dim": 4,
            "qk_rope_head_dim": 4,
            "v_head_dim": 4,
        },
        "sdpa",
        (None, 0.25),  # hidden states divided by hidden_size / dim_model_base = 4
    ),
    "falcon_h1": ("FalconH1Config", {"lm_head_multiplier": 3.0}, "sdpa", (None, 3.0)),
}


def tiny_lm(family):
    name, options, attention, _ = FAMILIES[family]
    torch.manual_seed(0)
    config = getattr(transformers, name)(**COMMON, **options)
    model = transformers.AutoModelForCausalLM.from_config(config, attn_implementation=attention).double().eval()
    with torch.no_grad():  # logits of size ~10, so that the soft-cap bends them
        model.get_output_embeddings().weight.mul_(60)
    return model


@pytest.mark.parametrize("family", FAMILIES)
def test_logit_transform_reads_the_config_as_transformers_applies_it(family):
    assert logit_transform(tiny_lm(family).config) == FAMILIES[family][3]


@pytest.mark.parametrize("family", FAMILIES)
def test_head_matches_the_models_own_logits_float64(family):
    model = tiny_lm(family)
    ids = torch.randint(1, 64, (2, 9), generator=torch.Generator().manual_seed(1))
    targets = torch.randint(0, 64, (2, 9), generator=torch.Generator().manual_seed(2))
    upstream = torch.randn(2, 9, dtype=torch.float64, generator=torch.Generator().manual_seed(3))
    head_weight = model.get_output_embeddings().weight
    logits = model(input_ids=ids).logits
    assert logits.dtype == torch.float64
    expected = logits.log_softmax(-1).gather(-1, targets[..., None]).squeeze(-1)
    (expected * upstream).sum().backward()
    expected_grad, head_weight.grad = head_weight.grad, None
    with torch.no_grad():
        hidden = model.base_model(input_ids=ids).last_hidden_state.reshape(18, -1)
    plain = model.get_output_embeddings()(hidden).log_softmax(-1).gather(-1, targets.reshape(-1, 1)).squeeze(-1)
    assert (plain - expected.reshape(-1)).abs().max() > 0.1  # the transform matters at this size
    head = RetainedLMHead.from_causal_lm(model, trainable=True)
    got = head.logprobs(hidden, targets.reshape(-1))
    torch.testing.assert_close(got, expected.reshape(-1).detach(), atol=1e-10, rtol=0)
    (got * upstream.reshape(-1)).sum().backward()
    torch.testing.assert_close(head_weight.grad, expected_grad, atol=1e-10, rtol=1e-10)
    head_weight.grad = None
    sums = head.sequence_logprobs(hidden, targets.reshape(-1), torch.arange(2).repeat_interleave(9))
    torch.testing.assert_close(sums, expected.sum(-1).detach(), atol=1e-10, rtol=0)
    # fp32: the head on fp32-rounded hidden states and weight, against the float64 model (error ≤ 1e-6 relative)
    fp32 = RetainedLMHead(torch.nn.Linear(16, 64, bias=False), softcap=head.softcap, scale=head.scale)
    fp32.lm_head.weight.data = head_weight.detach().float()
    got32 = fp32.logprobs(hidden.float(), targets.reshape(-1)).double()
    reference = expected.reshape(-1).detach()
    assert ((got32 - reference).abs() <= 1e-6 * (1 + reference.abs()) + 1e-6).all()


def test_multimodal_gemma3_applies_no_softcap_and_mpt_ignores_logit_scale():
    gemma3 = transformers.Gemma3Config(text_config={"final_logit_softcapping": 5.0})
    assert logit_transform(gemma3) == (None, None)  # Gemma3ForConditionalGeneration does not soft-cap
    assert logit_transform(transformers.Gemma3TextConfig(final_logit_softcapping=5.0)) == (5.0, None)
    assert logit_transform(transformers.MptConfig(logit_scale=2.0)) == (None, None)
    assert logit_transform(transformers.GraniteConfig(logits_scaling=1.0)) == (None, None)
    assert logit_transform(transformers.Gemma3TextConfig()) == (None, None)  # default: no soft-cap


def test_unknown_transform_and_bad_values_raise():
    custom = transformers.PretrainedConfig(final_logit_softcapping=5.0)
    custom.model_type = "my_gemma"
    with pytest.raises(ValueError, match=r"my_gemma.*final_logit_softcapping=5\.0"):
        logit_transform(custom)
    plain = transformers.PretrainedConfig(logits_scaling=1.0)
    plain.model_type = "my_llama"
    assert logit_transform(plain) == (None, None)  # a scale of 1 changes nothing
    with pytest.raises(ValueError, match=r"logit_scale=0\.0"):
        logit_transform(transformers.CohereConfig(logit_scale=0.0))
    with pytest.raises(ValueError, match="softcap"):
        RetainedLMHead(torch.nn.Linear(4, 8), softcap=-1.0)


def test_lm_head_docstring_examples_run():
    import doctest

    from rmreg.heads import lm_head

    assert doctest.testmod(lm_head, optionflags=doctest.ELLIPSIS).failed == 0


def test_fused_loss_of_a_soft_capped_head_matches_the_models_logits():
    """The head's bounded fused loss (DPO-shaped, two pairs) against the model's own float64 logits."""
    model = tiny_lm("gemma2")
    ids = torch.randint(1, 64, (4, 9), generator=torch.Generator().manual_seed(1))
    targets = torch.randint(0, 64, (4, 9), generator=torch.Generator().manual_seed(2))
    head_weight = model.get_output_embeddings().weight

    def dpo(logps):
        return -torch.nn.functional.logsigmoid(0.1 * (logps[:2] - logps[2:])).mean()

    expected = dpo(model(input_ids=ids).logits.log_softmax(-1).gather(-1, targets[..., None]).squeeze(-1).sum(-1))
    expected.backward()
    expected_grad, head_weight.grad = head_weight.grad, None
    with torch.no_grad():
        hidden = model.base_model(input_ids=ids).last_hidden_state.reshape(36, -1)
    head = RetainedLMHead.from_causal_lm(model, trainable=True)
    sequence_ids = torch.arange(4).repeat_interleave(9)
    for grouping in ({"num_sequences": 4}, {"group_ids": torch.tensor([0, 1, 0, 1])}):  # two passes, one pass
        head_weight.grad = None
        loss, _ = head.logprob_loss(hidden, targets.reshape(-1), sequence_ids, dpo, **grouping)
        loss.backward()
        torch.testing.assert_close(loss, expected.detach(), atol=1e-10, rtol=0)
        torch.testing.assert_close(head_weight.grad, expected_grad, atol=1e-10, rtol=1e-10)
