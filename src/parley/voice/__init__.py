"""Voice: speech in, speech out, around the usual turn (SPEC C12; docs/voice.md)."""
