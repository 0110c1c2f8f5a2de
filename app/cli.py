"""The `docproc` command."""
from __future__ import annotations

import sys

import click


@click.group()
def main():
    """docproc: document processing service and its client."""


@main.command()
def serve():
    """Run the service (settings from DOCPROC_* environment variables)."""
    from .server import serve as run

    sys.exit(run())
