"""The one exception type users see: a message they can act on, turned into one line by the CLI."""


class LassbenchError(Exception):
    """A problem with the user's input or environment (bad file, missing data, offline hub...).

    The CLI prints ``error: <message>`` and exits with status 2; library callers catch it as usual.
    """
