"""``python -m arbiter.services.cli``: the same CLI as the ``arbiter`` console script (the tests
and benchmarks start services this way, with the interpreter they run under)."""

from arbiter.services.cli import main

main()
