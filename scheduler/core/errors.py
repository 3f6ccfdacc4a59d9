"""One error hierarchy: user errors (exit 2) apart from system errors."""


class CostwiseError(Exception):
    """Base of every error costwise raises on purpose."""

    exit_code = 1


class UserError(CostwiseError):
    """Bad input from a person or a document: exit code 2, one-line message."""

    exit_code = 2


class SpecError(UserError):
    """A document or a field in it is invalid."""

    def __init__(self, message: str, field: str | None = None, value: object = None):
        super().__init__(message)
        self.field = field
        self.value = value


class NotFound(UserError):
    """A named shape, job, pipeline or run does not exist."""


class Conflict(UserError):
    """The request contradicts what the catalog holds (e.g. delete with live runs)."""


class CatalogTooNew(CostwiseError):
    """The catalog was written by a newer costwise than this one: upgrade costwise to open it."""


SchemaTooOld = CatalogTooNew  # the former name (it meant "this costwise's schema is too old")


class ConditionError(SpecError):
    """A pipeline step's `when` compares values that have no order or equality between them
    (a string with a number, a JSON null with a threshold): the step fails rather than guessing."""
