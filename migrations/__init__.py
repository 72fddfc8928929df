"""The schema migrations: numbered SQL files per read model, applied by adapters/migrations.py.

A package only so that the SQL files are installed with Arbiter; it exports no Python names.
"""

__all__: list[str] = []
