"""The project's error types, in one module every layer may import.

Each message is meant to be shown as it is: one line naming what went wrong and what to do
(the CLI prints ``kappalake: <message>`` and exits non-zero, without a traceback).
"""

from __future__ import annotations


class KappalakeError(Exception):
    """Base of the errors the CLI reports as one line."""


class ConfigError(KappalakeError, ValueError):
    """Bad configuration; the message names the key and the fix."""


class BrokerError(KappalakeError, RuntimeError):
    """The local broker could not be fetched, started or stopped."""


class PipelineError(KappalakeError, RuntimeError):
    """A streaming query failed; the message names the pipeline and Spark's error."""


class CheckpointError(PipelineError):
    """The checkpoint cannot tell what the stream has processed; the message says what to do."""


class QualityGateError(KappalakeError, RuntimeError):
    """A ``fail`` expectation was violated: the message names the rule and quotes failing rows."""


class NotifyError(KappalakeError):
    """A notifier could not deliver an alert; retried unless ``retryable`` is false."""

    def __init__(self, message: str, retryable: bool = True):
        super().__init__(message)
        self.retryable = retryable
