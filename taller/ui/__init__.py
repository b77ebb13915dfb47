"""Widgets and screens of the Textual chat (``taller chat``); the App itself is :mod:`taller.tui`."""
