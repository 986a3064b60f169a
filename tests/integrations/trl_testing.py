"""Local stand-ins for the hub models and datasets of TRL's reward-trainer tests, built in code (no network).

TRL's ``tests/test_reward_trainer.py`` loads ``trl-internal-testing/tiny-*`` models and the ``zen`` and
``toolcall`` datasets from the hub. Here each is a directory or a ``datasets.Dataset`` of the same kind, written
once per test session: tiny models of the same families saved in bfloat16 (as the hub's tiny models are, so that
TRL's float32 default matters), with a tokenizer of the same kind (byte-level BPE with ChatML and no BOS for the
Qwen models, no chat template and no pad token for GPT-NeoX, a character-level one with BOS for Llama), a custom-code
model for ``trust_remote_code``, a sequence classifier, and a tokenizer to clone a chat template from.
"""

import json
from pathlib import Path
from typing import Any

import torch
from bpe_testing import CHATML, ZEN, bpe_tokenizer
from datasets import Dataset, DatasetDict

from rmreg.testing import tiny_causal_lm, tiny_tokenizer

__all__ = ["Hub", "config", "toolcall", "zen"]

_TRAIN, _TEST = 16, 2


def _split(sentence: str) -> tuple[str, str]:
    words = sentence.split(" ")
    middle = max(1, len(words) // 2)
    return " ".join(words[:middle]), " " + " ".join(words[middle:])


def _standard(index: int) -> dict[str, str]:
    prompt, chosen = _split(ZEN[index % len(ZEN)])
    _, rejected = _split(ZEN[(index + 5) % len(ZEN)])
    return {"prompt": prompt, "chosen": chosen, "rejected": rejected}


def _example(index: int, config_name: str) -> dict[str, Any]:
    example = _standard(index)
    if config_name.startswith("conversational"):
        example = {
            "prompt": [{"role": "user", "content": example["prompt"]}],
            "chosen": [{"role": "assistant", "content": example["chosen"].strip()}],
            "rejected": [{"role": "assistant", "content": example["rejected"].strip()}],
        }
    if "implicit_prompt" in config_name:
        prompt = example.pop("prompt")
        example = {"chosen": prompt + example["chosen"], "rejected": prompt + example["rejected"]}
    return example


def zen(config_name: str, split: str | None = None) -> Dataset | DatasetDict:
    """The ``zen`` preference configs (``standard_preference``, ``conversational_implicit_prompt_preference``, ...)
    with a 16-pair train split and a 2-pair test split; ``split=None`` gives both."""
    splits = {
        "train": Dataset.from_list([_example(i, config_name) for i in range(_TRAIN)]),
        "test": Dataset.from_list([_example(_TRAIN + i, config_name) for i in range(_TEST)]),
    }
    return DatasetDict(splits) if split is None else splits[split]


TOOLS = [
    {
        "type": "function",
        "function": {
            "name": "get_weather",
            "description": "The weather in a city.",
            "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
        },
    }
]


def toolcall() -> Dataset:
    """The ``toolcall`` preference config: prompt, chosen (a tool call) and rejected messages, ``tools`` as JSON."""
    rows = []
    for i, city in enumerate(["Paris", "Lima", "Oslo", "Accra"] * 2):
        call = {"type": "function", "function": {"name": "get_weather", "arguments": {"city": city}}}
        rows.append(
            {
                "prompt": [{"role": "user", "content": f"Is it sunny in {city} today?"}],
                "chosen": [{"role": "assistant", "content": "", "tool_calls": [call]}],
                "rejected": [{"role": "assistant", "content": ZEN[i]}],
                "tools": json.dumps(TOOLS),
            }
        )
    return Dataset.from_list(rows)


def config(output_dir: Any, **overrides: Any) -> Any:
    """``RewardConfig(output_dir, report_to="none", ...)`` as TRL's tests write it, plus ``bf16=False`` (TRL's default
    bf16=True refuses a machine without GPU) and no progress bars."""
    from trl import RewardConfig

    return RewardConfig(output_dir=str(output_dir), report_to="none", bf16=False, disable_tqdm=True, **overrides)


_SYSTEM = (
    "{{ '<|im_start|>' + ('SYSTEM' if role_capital else 'system') + '\\nYou are a helpful assistant.<|im_end|>\\n' }}"
)
SYSTEM_PROMPT_TEMPLATE = _SYSTEM + CHATML
"""ChatML with a default system turn whose role ``chat_template_kwargs={"role_capital": True}`` capitalizes."""

_REMOTE_CONFIG = """from transformers import Qwen2Config


class RemoteConfig(Qwen2Config):
    model_type = "remote"
"""
_REMOTE_MODELING = """from transformers import Qwen2ForCausalLM

from .configuration_remote import RemoteConfig


class RemoteForCausalLM(Qwen2ForCausalLM):
    config_class = RemoteConfig
"""


def _qwen3_moe(vocab_size: int) -> torch.nn.Module:
    from transformers import AutoModelForCausalLM, Qwen3MoeConfig

    config = Qwen3MoeConfig(
        vocab_size=vocab_size,
        hidden_size=32,
        intermediate_size=64,
        moe_intermediate_size=16,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        head_dim=8,
        num_experts=4,
        num_experts_per_tok=2,
    )
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        return AutoModelForCausalLM.from_config(config)


def _gpt_neox(vocab_size: int) -> torch.nn.Module:
    from transformers import AutoModelForCausalLM, GPTNeoXConfig

    config = GPTNeoXConfig(
        vocab_size=vocab_size,
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        hidden_dropout=0.0,
        attention_dropout=0.0,
    )
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        return AutoModelForCausalLM.from_config(config)


class Hub:
    """Model directories named after TRL's hub ids, written on first use under ``root``."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def __call__(self, name: str) -> str:
        """The local path standing in for ``trl-internal-testing/<name>`` (or for ``Qwen/Qwen3-4B``)."""
        path = self.root / name
        if not path.exists():
            getattr(self, "_" + name.replace("-", "_").replace(".", "_"))(path)
        return str(path)

    @staticmethod
    def _save(path: Path, model: torch.nn.Module, tokenizer: Any) -> None:
        config = model.config
        config.pad_token_id, config.eos_token_id = tokenizer.pad_token_id, tokenizer.eos_token_id
        config.bos_token_id = tokenizer.bos_token_id
        model.to(torch.bfloat16).save_pretrained(path)
        tokenizer.save_pretrained(path)

    def _tiny_Qwen2ForCausalLM_2_5(self, path: Path) -> None:
        tokenizer = bpe_tokenizer()
        self._save(path, tiny_causal_lm("qwen2", vocab_size=len(tokenizer)), tokenizer)

    def _tiny_Qwen3MoeForCausalLM(self, path: Path) -> None:
        tokenizer = bpe_tokenizer()
        self._save(path, _qwen3_moe(len(tokenizer)), tokenizer)

    def _tiny_LlamaForCausalLM_3_2(self, path: Path) -> None:
        tokenizer = tiny_tokenizer()
        self._save(path, tiny_causal_lm("llama", vocab_size=len(tokenizer)), tokenizer)

    def _tiny_GPTNeoXForCausalLM(self, path: Path) -> None:
        tokenizer = bpe_tokenizer(pad_token=None, chat_template=None)
        self._save(path, _gpt_neox(len(tokenizer)), tokenizer)

    def _tiny_Qwen2ForSequenceClassification_2_5(self, path: Path) -> None:
        from transformers import AutoModelForSequenceClassification

        tokenizer = bpe_tokenizer()
        config = tiny_causal_lm("qwen2", vocab_size=len(tokenizer)).config
        config.num_labels = 1
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(1)
            self._save(path, AutoModelForSequenceClassification.from_config(config), tokenizer)

    def _tiny_RemoteForCausalLM(self, path: Path) -> None:
        self._tiny_Qwen2ForCausalLM_2_5(path)
        (path / "configuration_remote.py").write_text(_REMOTE_CONFIG)
        (path / "modeling_remote.py").write_text(_REMOTE_MODELING)
        config = json.loads((path / "config.json").read_text())
        config |= {
            "model_type": "remote",
            "architectures": ["RemoteForCausalLM"],
            "auto_map": {
                "AutoConfig": "configuration_remote.RemoteConfig",
                "AutoModelForCausalLM": "modeling_remote.RemoteForCausalLM",
            },
        }
        (path / "config.json").write_text(json.dumps(config, indent=2))

    def _chat_template_source(self, path: Path) -> None:
        """A tokenizer to clone a chat template from (TRL uses Qwen/Qwen3-4B): ChatML and two tokens of its own."""
        tokenizer = bpe_tokenizer()
        tokenizer.add_tokens(["<think>", "</think>"])
        tokenizer.save_pretrained(path)
