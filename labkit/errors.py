"""The one exception type labkit raises for user mistakes and bad data."""


class LabkitError(Exception):
    """A problem the user can fix: the message says what was wrong and how to fix it."""
