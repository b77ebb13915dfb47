"""Taller's own tables in ``$TALLER_HOME/chat.sqlite``, with a schema version and migrations.

``threads`` holds :class:`ThreadStore` (open, list, touch, rename, delete, title);
``migrations`` holds the ordered schema steps and the code that applies them on every open;
``search`` the FTS5 index of every thread's messages; ``tree`` reads the shape of a thread's
checkpoint tree (its branches) from LangGraph's table without deserialising the states.
The layout follows oterm's ``store/`` and simonw/llm's ``migrations.py``.
"""

from taller.agent.store.migrations import MIGRATIONS, SchemaVersionError, apply_migrations, schema_version
from taller.agent.store.threads import ThreadStore, ThreadStoreError

__all__ = ["MIGRATIONS", "SchemaVersionError", "ThreadStore", "ThreadStoreError", "apply_migrations",
           "schema_version"]
