"""Speech-to-text adapters (the port is `base.py`)."""
