"""User-facing errors. The CLI prints their message on one line and exits non-zero, no traceback."""


class MambaspikeError(Exception):
    """Base class of errors caused by input, options or files (not by a bug)."""


class CheckpointError(MambaspikeError):
    """A checkpoint or run directory is missing, incomplete or does not match the model."""


class TrainingError(MambaspikeError):
    """Training cannot continue (e.g. the loss became non-finite)."""


class ConfigError(MambaspikeError):
    """An option has a value that cannot work."""


class ExportError(MambaspikeError):
    """A model cannot be exported as asked, or the exported file does not reproduce it."""
