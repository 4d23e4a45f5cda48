"""``python -m nexapod`` runs the command line."""

from nexapod.cli.main import app

app()
