"""The driver: study specs, search spaces, the Ray Tune runner and the CLI."""
