"""Placeholder: filled in by its command module."""
