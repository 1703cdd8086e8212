"""gemmalab: what each of Gemma 2's architecture ideas is worth, one switch per idea."""

__version__ = "0.1.0"
