"""``python -m taller.knowledge.sql``: see :mod:`taller.knowledge.sql.cli`."""

from taller.knowledge.sql.cli import main

if __name__ == "__main__":
    raise SystemExit(main())
