"""Taller: a chat-first, local-first assistant over a complete deep-learning workshop.

The package is import-light on purpose: heavy libraries (torch, langgraph, chromadb, textual)
are imported inside the functions that need them, so ``taller --help`` answers at once.
"""

__version__ = "0.1.0"
