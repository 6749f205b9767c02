"""Errors that mean "the user asked for something that cannot work".

Binaries catch `UserError` and print its message as one line with a non-zero exit code,
so bad input never reaches a user as a traceback. Library code raises it for anything
caused by arguments, files or flags (as opposed to bugs, which should stay loud).
"""


class UserError(ValueError):
    """Bad input from a user: a flag value, a path, a file of the wrong kind."""
