class ActionRefused(Exception):
    """A business action the user asked for cannot be done as asked.

    ``message`` is translated and meant for the person; ``field`` names the
    form field it belongs next to, if any. Raised before anything changes, so
    the transaction rolls back whole.
    """

    def __init__(self, message, *, field: str | None = None):
        super().__init__(str(message))
        self.message = message
        self.field = field

    def add_to(self, form) -> None:
        """Show this refusal next to its field (or above the form)."""
        form.add_error(self.field if self.field in form.fields else None, str(self.message))
