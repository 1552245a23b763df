"""A lab's own IMU recordings described by a TOML spec (see README.md)."""
