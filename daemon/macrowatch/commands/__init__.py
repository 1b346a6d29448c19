"""The command line: cli.py (click) and one module per command; the top layer, imported by nothing in the package."""
