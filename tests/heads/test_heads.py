"""RewardHead architecture and checks; RetainedLMHead log-probs, freezing and tied weights."""

import naive
import pytest
import torch
from torch import nn

import rmreg
from rmreg import RetainedLMHead, RewardHead


def test_mlp_head_is_the_papers():
    head = RewardHead(16)
    kinds = [type(layer) for layer in head.layers]
    assert kinds == [nn.Dropout, nn.Linear, nn.ReLU, nn.Linear]
    assert head.layers[0].p == 0.1
    assert head.layers[1].weight.shape == (1024, 16) and head.layers[3].weight.shape == (1, 1024)


def test_deeper_wider_and_multi_output_heads():
    head = RewardHead(8, hidden=32, num_layers=3, num_outputs=4, dropout=0.0).eval()
    assert [type(layer) for layer in head.layers] == [nn.Linear, nn.ReLU] * 3 + [nn.Linear]
    assert head(torch.randn(5, 8)).shape == (5, 4)


@pytest.mark.parametrize("bias", [False, True])
def test_linear_head_is_one_linear_layer_and_matches_by_hand(bias):
    head = RewardHead(8, kind="linear", bias=bias)
    assert [type(layer) for layer in head.layers] == [nn.Linear]
    assert (head.output_layer.bias is not None) == bias
    hidden = torch.randn(3, 8, dtype=torch.float64)
    head.double()
    weight = head.output_layer.weight[0].tolist()
    expected = [sum(h * w for h, w in zip(row, weight, strict=True)) for row in hidden.tolist()]
    expected = torch.tensor(expected, dtype=torch.float64) + (head.output_layer.bias[0].item() if bias else 0.0)
    torch.testing.assert_close(head(hidden), expected.detach())


@pytest.mark.parametrize("bias", [False, True])
def test_mlp_head_matches_by_hand_in_eval_mode(bias):
    head = RewardHead(6, hidden=10, bias=bias).eval()
    hidden = torch.randn(4, 6)
    first, last = head.layers[1], head.layers[3]
    assert first.bias is not None  # the hidden layer always has one; ``bias`` is the output layer's
    expected = torch.relu(hidden @ first.weight.T + first.bias) @ last.weight.T
    expected = (expected + last.bias if bias else expected).squeeze(-1)
    torch.testing.assert_close(head(hidden), expected)


def test_heads_have_no_output_bias_by_default_like_trls():
    """Bradley–Terry (and every loss on reward differences) gives a constant offset exactly zero gradient."""
    assert RewardHead(8).output_layer.bias is None and RewardHead(8, kind="linear").output_layer.bias is None
    head = RewardHead(8, hidden=4, bias=True, dropout=0.0)
    hidden_c, hidden_r = torch.randn(5, 8), torch.randn(5, 8)
    rmreg.functional.bradley_terry_loss(head(hidden_c), head(hidden_r)).backward()
    assert head.output_layer.bias.grad.abs().max() < 1e-7
    assert head.output_layer.weight.grad.abs().max() > 1e-4


def test_head_returns_float32_rewards_for_bf16_hidden_states():
    head = RewardHead(8).eval()
    rewards = head(torch.randn(2, 8, dtype=torch.bfloat16))
    assert rewards.dtype == torch.float32


@pytest.mark.parametrize("bias", [False, True])
def test_config_rebuilds_the_same_architecture(bias):
    head = RewardHead(8, kind="mlp", hidden=12, num_layers=2, dropout=0.2, num_outputs=3, bias=bias)
    rebuilt = RewardHead(**head.config())
    assert rebuilt.config() == head.config() and head.config()["bias"] is bias
    rebuilt.load_state_dict(head.state_dict())


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"kind": "conv"}, "kind must be 'mlp' or 'linear'"),
        ({"hidden": 0}, "hidden must be a positive integer"),
        ({"num_layers": 0}, "num_layers must be a positive integer"),
        ({"dropout": 1.0}, r"dropout must be in \[0, 1\)"),
        ({"num_outputs": 0}, "num_outputs must be a positive integer"),
        ({"bias": 1}, "bias must be True or False"),
    ],
)
def test_bad_head_arguments(kwargs, message):
    with pytest.raises(ValueError, match=message):
        RewardHead(8, **kwargs)


def test_head_size_mismatch_is_a_clear_error():
    head = RewardHead(8)
    with rmreg.typechecking(False), pytest.raises(ValueError, match="hidden_size the backbone's hidden size"):
        head(torch.randn(2, 9))
    with pytest.raises(rmreg.TypeCheckError):
        head(torch.randn(2, 8, 1))


def _naive_token_logprobs(hidden, weight, bias, targets):
    """Per-token log-probs from float64 loops: a 2-position sequence whose only target is the token."""
    logits = (hidden @ weight.T + (bias if bias is not None else 0)).double()
    return torch.tensor(
        [
            0.0 if target == -100 else naive.sequence_logprobs([[logits[t].tolist(), [0.0]]], [[-100, target]])[0]
            for t, target in enumerate(targets.tolist())
        ],
        dtype=torch.float64,
    )


@pytest.mark.parametrize("bias", [False, True])
def test_retained_lm_head_logprobs_match_naive(bias):
    lm_head = nn.Linear(6, 11, bias=bias).double()
    head = RetainedLMHead(lm_head)
    hidden = torch.randn(7, 6, dtype=torch.float64)
    targets = torch.tensor([0, 10, -100, 3, 3, -100, 5])
    expected = _naive_token_logprobs(hidden, lm_head.weight.detach(), lm_head.bias, targets)
    torch.testing.assert_close(head.logprobs(hidden, targets), expected.detach(), rtol=1e-6, atol=1e-6)


def test_frozen_head_passes_gradient_to_hidden_states_only():
    lm_head = nn.Linear(4, 9, bias=False)
    hidden = torch.randn(5, 4, requires_grad=True)
    RetainedLMHead(lm_head, trainable=False).logprobs(hidden, torch.tensor([1, 2, 3, 4, 5])).sum().backward()
    assert lm_head.weight.grad is None
    assert hidden.grad is not None and hidden.grad.abs().sum() > 0
    RetainedLMHead(lm_head, trainable=True).logprobs(hidden, torch.tensor([1, 2, 3, 4, 5])).sum().backward()
    assert lm_head.weight.grad is not None and lm_head.weight.grad.abs().sum() > 0


def test_tied_head_stays_tied_and_freezing_it_does_not_freeze_the_embeddings():
    embeddings = nn.Embedding(9, 4)
    lm_head = nn.Linear(4, 9, bias=False)
    lm_head.weight = embeddings.weight
    head = RetainedLMHead(lm_head, trainable=False)
    assert head.lm_head.weight is embeddings.weight
    assert embeddings.weight.requires_grad  # freezing the regularizer's path leaves the embeddings trainable
    hidden = embeddings(torch.tensor([1, 2, 3]))
    head.logprobs(hidden, torch.tensor([2, 3, 4])).sum().backward()
    assert embeddings.weight.grad is not None  # reached through the embedding lookup only


def test_default_follows_the_weights_requires_grad():
    lm_head = nn.Linear(4, 9, bias=False).requires_grad_(False)
    assert not RetainedLMHead(lm_head).weight.requires_grad
    assert RetainedLMHead(lm_head.requires_grad_(True)).weight.requires_grad


def test_retained_head_checks_its_input():
    with pytest.raises(ValueError, match="2-D weight"):
        RetainedLMHead(nn.ReLU())
    head = RetainedLMHead(nn.Linear(4, 9))
    with rmreg.typechecking(False), pytest.raises(ValueError, match="LM head expects 4"):
        head.logprobs(torch.randn(2, 5), torch.tensor([1, 2]))
    with pytest.raises(rmreg.TypeCheckError):
        head.logprobs(torch.randn(2, 4), torch.tensor([1, 2, 3]))
