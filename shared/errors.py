"""The one exception type for mistakes a user can fix."""


class UserError(ValueError):
    """A user mistake (bad path, flag value, corrupt file). The CLI prints it as one line and exits 2."""
