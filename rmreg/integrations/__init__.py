"""Integrations with training frameworks, each behind its optional extra.

Nothing is imported here: ``import rmreg.integrations.trl`` loads TRL (``pip install "rmreg[trl]"``) and gives
:class:`~rmreg.integrations.trl.RegularizedRewardTrainer`. Accelerate and plain PyTorch loops need no
integration: see ``examples/accelerate_loop.py`` and ``examples/plain_pytorch.py``.
"""
