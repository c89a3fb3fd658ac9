"""The one exception type that means "the user asked for something we cannot do".

The CLI turns a `MnistlabError` into a one-line message on stderr and exit
code 2, with no traceback. Anything else is a bug and keeps its traceback.
Messages name the file or value at fault and say what to do about it.
"""


class MnistlabError(Exception):
    """Bad input: a missing or corrupt file, an invalid value, an unusable folder."""


def check(condition, message):
    """Raise `MnistlabError(message)` unless `condition` holds."""
    if not condition:
        raise MnistlabError(message)
