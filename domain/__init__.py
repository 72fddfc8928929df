"""The domain: events, their validation, the decisions of the ingest and the rating maths.

Pure by rule (tests/test_architecture.py): only the standard library's computing modules,
msgspec and numpy, so every fold, check and rating here can be replayed anywhere, with no
servers, and gives the same answer.
"""

__all__: list[str] = []
