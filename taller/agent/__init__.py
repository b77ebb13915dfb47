"""Taller agent package."""
