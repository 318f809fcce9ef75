"""The ``inrstore`` command line: a thin typer + rich shell over the Python API."""
