"""``rmreg score``: rewards of responses (to a prompt) from a saved reward model."""

import argparse
from typing import Any

from rmreg.cli.errors import CLIError
from rmreg.cli.options import positive_int, require, row_length

__all__ = ["add_parser", "run"]


def add_parser(subparsers: Any) -> None:
    """Register ``score`` and its options."""
    parser = subparsers.add_parser(
        "score",
        help="score responses with a saved reward model",
        description="Score responses (to a prompt) with a saved reward model. Prints one line per response: the "
        "reward, a tab, the response.",
    )
    parser.add_argument("model", metavar="MODEL_DIR", help="a directory written by 'rmreg train' or save_pretrained")
    parser.add_argument("--prompt", default="", help="the prompt the --response texts answer (default: none)")
    parser.add_argument("--response", action="append", default=[], help="a response to score (repeatable)")
    parser.add_argument(
        "--file",
        metavar="FILE",
        help="texts to score: 'response' and optional 'prompt' columns, "
        "or a 'messages' column (.jsonl, .json, .csv, .parquet)",
    )
    parser.add_argument("--batch-size", type=positive_int, default=32, help="rows per forward pass (default: 32)")
    parser.add_argument(
        "--max-length", type=row_length, help="tokens per row (default: 1024, or the model's positions if fewer)"
    )
    parser.set_defaults(run=run)


def _shown(item: Any) -> str:
    response = item[1] if isinstance(item, tuple) else item[-1:]
    text = response if isinstance(response, str) else " ".join(str(m.get("content", "")) for m in response)
    return text.replace("\t", " ").replace("\n", " ")


def _items(args: argparse.Namespace) -> list[Any]:
    """The texts to score, every one checked (and the file read) before the model loads."""
    from rmreg.data.files import read_texts
    from rmreg.data.rows import RowError, check_text_row

    if not args.response and not args.file:
        raise CLIError("nothing to score; pass --response TEXT (with --prompt TEXT) or --file FILE")
    items: list[Any] = []
    for number, response in enumerate(args.response, 1):
        try:
            items.append(check_text_row({"prompt": args.prompt, "response": response}))
        except RowError as error:
            raise CLIError(f"--response number {number}: {error}".replace("field 'response': ", "")) from None
    return items + (read_texts(args.file) if args.file else [])


def run(args: argparse.Namespace) -> int:
    """Print the reward of each response."""
    require("transformers", "hf")
    from rmreg.model.causal_lm import unwrap
    from rmreg.pretrained import load_reward_model, quiet_transformers, resolve_max_length

    quiet_transformers()
    items = _items(args)
    model, tokenizer = load_reward_model(args.model)
    max_length = resolve_max_length(unwrap(model.causal_lm).config, args.max_length)
    try:
        rewards = model.score_texts(tokenizer, items, batch_size=args.batch_size, max_length=max_length)
    except ValueError as error:
        raise CLIError(f"cannot score the texts: {error}") from None
    for reward, item in zip(rewards.tolist(), items, strict=True):
        print(f"{reward:+.4f}\t{_shown(item)}")
    return 0
