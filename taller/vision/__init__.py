"""Taller vision package."""
