"""The one user-error type: the CLI prints it as one line and exits with code 2."""


class ResbenchError(Exception):
    """A problem the user can fix (bad input, missing file, unknown name).

    The message names the input and says what was expected; it is printed
    without a traceback.
    """
