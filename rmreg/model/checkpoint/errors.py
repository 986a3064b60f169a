"""One line of an error message: checkpoint errors name the file and say what is wrong in a single line."""

__all__ = ["first_line"]


def first_line(error: BaseException) -> str:
    """The first non-empty line of ``error``'s message (its type's name when it has none)."""
    for line in str(error).splitlines():
        if line.strip():
            return line.strip()
    return type(error).__name__
