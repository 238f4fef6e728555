"""The one exception type a user should ever see: the CLI prints its message and exits 2."""


class TriggerscopeError(Exception):
    """Bad input or an unusable environment, with a message saying how to fix it."""
