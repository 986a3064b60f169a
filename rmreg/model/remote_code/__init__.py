"""The modeling code rmreg writes into a checkpoint, for ``trust_remote_code=True`` loading without rmreg.

The two files here are copied verbatim into every checkpoint whose reward head is not a bias-free linear layer
(the paper's MLP head, a linear head with a bias, an fp32 head on a bf16 backbone, a pad token that is the EOS):
``configuration_rmreg.py`` and ``modeling_rmreg.py`` import only torch and transformers, so that
``AutoModelForSequenceClassification.from_pretrained(directory, trust_remote_code=True)`` loads the reward model
anywhere. They are a package here only so that rmreg can read them and tests can import them.
"""

from importlib import resources

__all__ = ["MODULE_FILES", "source"]

#: The files copied into a checkpoint, in the order transformers imports them.
MODULE_FILES = ("configuration_rmreg.py", "modeling_rmreg.py")


def source(name: str) -> bytes:
    """The bytes of one of :data:`MODULE_FILES`, as shipped with rmreg."""
    if name not in MODULE_FILES:
        raise ValueError(f"unknown remote-code file {name!r}; expected one of {MODULE_FILES}")
    return resources.files(__name__).joinpath(name).read_bytes()
