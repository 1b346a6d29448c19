"""macrowatch: watch price levels and macro releases, evaluate YAML rules, push alerts."""

__version__ = "0.1.0"
