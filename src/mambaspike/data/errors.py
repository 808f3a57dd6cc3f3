"""The one error type the data layer raises for bad data, missing data and bad options."""


class DatasetError(ValueError):
    """A data set is missing, malformed, or was asked for with invalid options.

    The message is one line that names the file, folder or option at fault and what was expected.
    """


class DatasetMissing(DatasetError):
    """A data set is not under the data directory (the message names the expected layout and source)."""
