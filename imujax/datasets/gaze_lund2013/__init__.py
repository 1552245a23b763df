"""gaze_lund2013: hand-annotated Lund 2013 eye-movement events (see README)."""
