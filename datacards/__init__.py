"""datacards."""
