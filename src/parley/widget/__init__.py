"""The embeddable chat widget: its public API and its JavaScript."""
