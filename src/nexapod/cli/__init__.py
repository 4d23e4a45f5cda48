"""The ``nexapod`` command line (Typer + Rich); the only place that prints."""

__all__: list[str] = []
