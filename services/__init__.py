"""Entry points and long-running processes, one package per kind: ``api`` (the HTTP API),
``cli`` (the command line) and the processes; plus the modules several of them share (publishing
with verdicts, backups, the demo tournament)."""

__all__: list[str] = []
