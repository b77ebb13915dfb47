"""Taller knowledge package."""
