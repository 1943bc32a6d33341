"""Engines schedule per-unit and per-bucket functions; they know nothing of the algorithm."""
