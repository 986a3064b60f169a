"""TRL's ``RewardTrainer`` with rmreg's model, tokenization and objectives (GRM, arXiv 2406.10216).

:class:`RegularizedRewardTrainer` is a drop-in for ``trl.RewardTrainer`` (TRL ≥ 1.0): change the import, keep the
script, the ``RewardConfig``, the datasets, the callbacks and the metrics; ``objective=`` chooses the loss
(default GRM's ``(1 − α)·Bradley–Terry + α·SFT regularizer``). The model is a
:class:`~rmreg.model.RegularizedRewardModel`: a causal LM that keeps its LM head, beside a reward head.

The same as TRL (its arguments, defaults, warnings and errors):

* Model: an id or path loads with ``args.model_init_kwargs`` (float32 unless they say otherwise),
  ``args.trust_remote_code`` and ``quantization_config``; the tokenizer, when ``processing_class`` is None, is the
  one saved with the model. ``args.eos_token``, ``args.pad_token`` (else the tokenizer's, else EOS),
  ``args.chat_template_path`` (a Jinja file, or a tokenizer whose template and tokens are cloned), ``peft_config``,
  ``args.disable_dropout`` (default ``True``: dropout off everywhere, the reward head's included; ``False`` trains
  with the paper's head dropout of 0.1), gradient checkpointing and activation offloading apply as in TRL.
* Data: every TRL preference format (standard or conversational, explicit or implicit prompt, pre-tokenized
  ``chosen_ids``/``rejected_ids``, TRL's legacy ``chosen_input_ids``/``rejected_input_ids`` renamed with its
  warning), ``tools`` and ``chat_template_kwargs`` columns, ``Dataset`` or ``IterableDataset``, ``eval_dataset``
  as a dict; a row's ids are the ids TRL builds (see :mod:`rmreg.data.encoding`); pairs longer than
  ``args.max_length`` are left out.
* Loss under TRL's semantics: a dataset's ``margin`` column is subtracted by every Bradley–Terry term
  (``use_margin="auto"``), whatever the objective; ``args.center_rewards_coefficient`` c adds the term
  ``c·(r_c + r_r)²`` (``rmreg.RewardCentering``, logged as ``terms/centering``).
* Logs and evaluation: TRL's ``accuracy``, ``margin``, ``min/mean/max_reward`` and ``num_tokens``;
  ``compute_metrics`` receives TRL's ``EvalPrediction``, whose predictions are the rewards ``[2P, 1]`` of each
  batch, chosen rows then rejected rows. The model carries the tags ``trl``, ``reward-trainer`` (and ``rmreg``).

What differs, and why:

* A causal LM id or instance stays a causal LM (GRM's regularizers need its LM head), with the paper's MLP reward
  head unless ``reward_head=`` says otherwise; TRL loads it as a sequence classifier with a new bias-free linear
  ``score`` layer. ``reward_head=rmreg.RewardHead(H, kind="linear", bias=False)`` gives TRL's head. A sequence
  classifier (id or instance) is trained as TRL trains it, its ``score`` layer being the reward head, with
  objectives that read rewards only (default ``"bt"``); a GRM objective asks for the causal LM instead.
* The reward head is float32 whatever the backbone's dtype (a bf16 or fp16 backbone still gives fp32 rewards).
* Pad token = EOS: TRL's classifier skips every token with the pad id, so it reads the reward at the token before
  the final EOS; rmreg reads it at the last token of the attention mask, the EOS itself, as its scoring and saved
  checkpoints do. The trainer warns; a pad token of its own makes the two equal.
* Logs also hold each objective term's unweighted mean, ``terms/<name>`` (``eval_terms/<name>``).
* Prepared datasets keep the prompt apart: ``prompt_ids + chosen_ids`` is TRL's ``chosen_ids``.
* Checkpoints (``checkpoint-*/`` and ``save_model``) are written by ``RegularizedRewardModel.save_pretrained``
  with the tokenizer, and the training arguments as JSON (``training_args.json``, no pickle);
  ``trainer.train(resume_from_checkpoint=...)`` continues the same run. They are written from the unwrapped module,
  which holds all weights under DDP and DeepSpeed ZeRO-1/2; FSDP and ZeRO-3 are refused (use an Accelerate loop,
  ``examples/accelerate_loop.py``). No TRL model card is written.

Example:
    >>> from datasets import Dataset
    >>> from trl import RewardConfig
    >>> from rmreg.integrations.trl import RegularizedRewardTrainer
    >>> from rmreg.testing import tiny_causal_lm, tiny_tokenizer, toy_pairs
    >>> args = RewardConfig("out", max_steps=2, bf16=False, save_strategy="no", report_to="none", disable_tqdm=True)
    >>> trainer = RegularizedRewardTrainer(
    ...     tiny_causal_lm("llama"),
    ...     args,
    ...     train_dataset=Dataset.from_list(toy_pairs(8)),
    ...     processing_class=tiny_tokenizer(),
    ...     objective="grm-sft",
    ... )
    >>> result = trainer.train()  # doctest: +ELLIPSIS
    {'train_runtime': ..., 'terms/bradley_terry': ..., 'terms/sft': ..., 'epoch': '2'}
    >>> result.global_step
    2
    >>> metrics = trainer.evaluate(Dataset.from_list(toy_pairs(8, seed=1)))  # doctest: +ELLIPSIS
    {'eval_loss': ..., 'eval_accuracy': ..., 'eval_margin': ..., 'eval_terms/sft': ..., 'epoch': '2'}
"""

try:  # tests/integrations/test_trl_trainer.py hides `trl` to check this message
    import datasets  # noqa: F401
    import trl
    from packaging.version import Version
except ImportError as error:
    raise ImportError(
        f'rmreg.integrations.trl needs TRL and datasets ({error}); install them with: pip install "rmreg[trl]"'
    ) from error

if Version(trl.__version__) < Version("1.0"):
    raise ImportError(f'rmreg.integrations.trl needs TRL >= 1.0, found {trl.__version__}: pip install "rmreg[trl]"')

from rmreg.integrations.trl.trainer import RegularizedRewardTrainer

__all__ = ["RegularizedRewardTrainer"]
