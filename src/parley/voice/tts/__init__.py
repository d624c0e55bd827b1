"""Text-to-speech adapters (the port is `base.py`)."""
