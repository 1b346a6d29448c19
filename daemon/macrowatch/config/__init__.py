"""The config language: YAML parsed once, strictly, into frozen typed objects (types in config.types)."""

from macrowatch.config.load import load_config
from macrowatch.config.problems import ConfigError, Loc, Problem
from macrowatch.config.types import Config

__all__ = ["Config", "ConfigError", "Loc", "Problem", "load_config"]
