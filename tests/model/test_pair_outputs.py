"""pair_outputs + objective: the outputs/loss split, open needs, batch columns, and device reads per forward."""

import sys
from pathlib import Path

import pytest
import torch
from torch.overrides import TorchFunctionMode

import rmreg
from rmreg import functional
from rmreg.data import PairCollator
from rmreg.heads import RewardHead
from rmreg.model import RegularizedRewardModel
from rmreg.objectives import PRESETS, Needs, PairInputs, Term
from rmreg.objectives import objective as make_objective
from rmreg.testing import tiny_causal_lm, tiny_tokenizer

TOK = tiny_tokenizer()
PAIRS = [
    {"prompt": "Name a fruit:", "chosen": "apple", "rejected": "a rock", "margin": 1.0, "quality": 0.9},
    {"prompt": "2+2=", "chosen": "4", "rejected": "five or six", "margin": 0.5, "quality": 0.2},
    {"prompt": "Hi", "chosen": "Hello, how are you?", "rejected": "Go.", "margin": 2.0, "quality": 0.5},
]


def model_for(objective=None, layout: str = "concat", dtype: torch.dtype = torch.float64, **kwargs):
    lm = tiny_causal_lm("llama", dtype=dtype)
    head = RewardHead(lm.config.hidden_size, hidden=16).to(dtype)
    return RegularizedRewardModel(lm, reward_head=head, objective=objective, layout=layout, **kwargs).eval()


@pytest.mark.parametrize("padding_side", ["left", "right"])
@pytest.mark.parametrize("layout", ["concat", "interleaved"])
@pytest.mark.parametrize("name", PRESETS)
def test_pair_outputs_then_objective_equals_forward(name: str, layout: str, padding_side: str) -> None:
    objective = make_objective(name, alpha=0.3)
    model = model_for(objective, layout, reference="copy" if name == "grm-dpo" else None)
    batch = PairCollator(TOK, layout=layout, padding_side=padding_side)(PAIRS)
    loss = model(**batch).loss
    inputs = model.pair_outputs(**batch, needs=objective.needs)
    torch.testing.assert_close(
        objective(inputs).loss, loss, rtol=1e-12, atol=1e-12
    )  # the fused path sums in another order
    assert set(objective.needs.names) <= set(inputs)


def test_only_what_is_needed_is_computed(monkeypatch: pytest.MonkeyPatch) -> None:
    model = model_for()
    batch = PairCollator(TOK)(PAIRS)

    def forbidden(*args, **kwargs):
        raise AssertionError("the LM head ran although nothing needed it")

    monkeypatch.setattr(rmreg.model.causal_lm, "response_logprobs", forbidden)
    inputs = model.pair_outputs(**batch, needs=Needs())
    assert set(inputs) == {"chosen_rewards", "rejected_rewards", "margin", "quality"}  # columns pass through
    with pytest.raises(ValueError, match="has no objective"):
        model(**batch)


def test_a_bare_term_is_an_objective() -> None:
    model = model_for(rmreg.SFTRegularizer(beta=0.1))
    assert isinstance(model.objective, rmreg.Objective)
    out = model(**PairCollator(TOK)(PAIRS))
    assert sorted(out.terms) == ["sft"]
    with pytest.raises(TypeError, match=r"an rmreg\.Objective or a Term"):
        model_for("grm-sft")


class LengthNormalizedSFT(Term):
    """A user's regularizer on per-token log-probs: −mean_t log p(y_t), the chosen response's average NLL."""

    needs = Needs("chosen_token_logps", "chosen_token_mask")
    default_name = "sft_per_token"

    def per_pair(self, inputs: PairInputs) -> torch.Tensor:
        logps = inputs.require("chosen_token_logps", self)
        mask = inputs.require("chosen_token_mask", self)
        return -(logps * mask).sum(-1) / mask.sum(-1)


class QualityWeightedBT(Term):
    """A user's term on a dataset column rmreg has never heard of: Bradley–Terry weighted by ``quality``."""

    needs = Needs("quality")
    default_name = "quality_bt"

    def per_pair(self, inputs: PairInputs) -> torch.Tensor:
        bt = functional.bradley_terry_loss(inputs.chosen_rewards, inputs.rejected_rewards, reduction="none")
        return inputs.require("quality", self) * bt


@pytest.mark.parametrize("padding_side", ["left", "right"])
def test_a_term_on_per_token_logprobs_matches_the_full_logits(padding_side: str) -> None:
    model = model_for(QualityWeightedBT() + 0.5 * LengthNormalizedSFT(), layout="interleaved")
    batch = PairCollator(TOK, layout="interleaved", padding_side=padding_side)(PAIRS)
    out = model(**batch)
    expected_sft, expected_bt = [], []
    for pair, row in enumerate(range(0, 6, 2)):
        keep = batch["attention_mask"][row].bool()
        ids, labels = batch["input_ids"][row][keep][None], batch["labels"][row][keep][None]
        logits = model.causal_lm(input_ids=ids).logits
        tokens = int((labels[:, 1:] != -100).sum())
        expected_sft.append(-float(functional.sequence_logprobs(logits, labels)[0]) / tokens)
        margin = out.chosen_rewards[pair] - out.rejected_rewards[pair]
        expected_bt.append(PAIRS[pair]["quality"] * float(torch.nn.functional.softplus(-margin)))
    torch.testing.assert_close(out.terms["sft_per_token"], torch.tensor(expected_sft).mean().double())
    torch.testing.assert_close(out.terms["quality_bt"], torch.tensor(expected_bt).mean().double())
    total = torch.tensor(expected_bt).mean() + 0.5 * torch.tensor(expected_sft).mean()
    torch.testing.assert_close(out.loss, total.double())
    torch.testing.assert_close(out.inputs["chosen_logps"], (out.inputs["chosen_token_logps"]).sum(-1))
    out.loss.backward()  # the per-token path is differentiable
    assert model.causal_lm.lm_head.weight.grad.abs().sum() > 0


def test_response_lengths_and_hidden_states_on_request() -> None:
    model = model_for()
    batch = PairCollator(TOK)(PAIRS)
    inputs = model.pair_outputs(**batch, needs=Needs("chosen_lengths", "rejected_lengths", hidden_states=True))
    responses = (batch["labels"][:, 1:] != -100).sum(-1)
    assert inputs["chosen_lengths"].tolist() == responses[:3].tolist()
    assert inputs["rejected_lengths"].tolist() == responses[3:].tolist()
    assert inputs["chosen_hidden"].shape == (3, model.causal_lm.config.hidden_size)


def test_missing_and_misshapen_columns_fail_before_compute() -> None:
    model = model_for(QualityWeightedBT())
    batch = PairCollator(TOK)([{k: v for k, v in pair.items() if k != "quality"} for pair in PAIRS])
    with pytest.raises(ValueError, match=r"needs the per-pair input\(s\) \['quality'\]"):
        model(**batch)
    with pytest.raises(ValueError, match="'quality' must have shape"):
        model(**batch, quality=torch.ones(4))
    with pytest.raises(ValueError, match="computed by the model"):
        model(**batch, quality=torch.ones(3), chosen_logps=torch.ones(3))


RMREG = str(Path(rmreg.__file__).parent)


class DeviceReads(TorchFunctionMode):
    """Counts the calls made by rmreg's own code that read a tensor's value back to the host (each one a GPU
    synchronization). Reads inside transformers' own forward pass are not rmreg's to remove, and are not counted."""

    READS = frozenset({"item", "tolist", "__bool__", "__int__", "__float__", "__index__", "nonzero", "cpu", "numpy"})

    def __init__(self) -> None:
        super().__init__()
        self.reads: list[str] = []

    def __torch_function__(self, func, types, args=(), kwargs=None):
        name = getattr(func, "__name__", "")
        boolean_index = name == "__getitem__" and any(
            isinstance(index, torch.Tensor) and index.dtype == torch.bool
            for index in (args[1] if isinstance(args[1], tuple) else (args[1],))
        )
        if name in self.READS or boolean_index:
            caller = sys._getframe(1)
            while caller is not None and "/torch/" in caller.f_code.co_filename:
                caller = caller.f_back
            if caller is not None and caller.f_code.co_filename.startswith(RMREG):
                self.reads.append(f"{name} at {Path(caller.f_code.co_filename).name}:{caller.f_lineno}")
        return func(*args, **(kwargs or {}))


@pytest.mark.parametrize(("name", "most"), [("bt", 1), ("grm-sft", 6), ("grm-dpo-noref", 6), ("grm-dpo", 9)])
def test_device_reads_per_forward(name: str, most: int) -> None:
    """One read checks the batch's values; selecting the response tokens and the LM-head op's spans make the rest
    (15 reads for a grm-sft forward before the outputs/loss split). Two of them read the fused op's group ids and
    sequence weights, which live on the host: free on a GPU, but counted here, where every tensor is on the CPU.

    A GPU pays a synchronization for each read; the model keeps them few and independent of the batch size.
    """
    reference = "copy" if name == "grm-dpo" else None  # the reference pass selects its response tokens too
    model = model_for(make_objective(name), dtype=torch.float32, reference=reference).train()
    for pairs in (PAIRS, PAIRS * 4):
        batch = PairCollator(TOK)(pairs)
        with rmreg.typechecking(False), DeviceReads() as counter:
            model(**batch).loss.backward()
        assert len(counter.reads) <= most, counter.reads


def test_debug_checks_find_a_nan_reward_inside_the_model() -> None:
    model = model_for(make_objective("bt"))
    with torch.no_grad():
        model.reward_head.output_layer.weight.fill_(float("nan"))
    batch = PairCollator(TOK)(PAIRS)
    assert torch.isnan(model(**batch).loss)  # the hot path does not read the rewards back
    rmreg.set_debug_checks(True)
    try:
        with pytest.raises(ValueError, match="NaN"):
            model(**batch)
    finally:
        rmreg.set_debug_checks(False)
