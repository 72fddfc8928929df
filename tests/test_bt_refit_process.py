"""The Bradley-Terry refit process (services/api/queries/bt_fits.py, ``_elsewhere``): it fits
what a thread of the API fits, without importing the API, and goes with the API process that
started it, even when that one is killed with SIGKILL (a pool's process would otherwise wait on
its queue forever)."""

from __future__ import annotations

import signal
import subprocess
import sys
import textwrap
import time

import psutil

SCRIPT = textwrap.dedent(
    """
    import asyncio, os
    from arbiter.services.api.queries import bt_fits

    ROWS = [("a", "b", 3, 1, 0), ("b", "c", 2, 2, 1)]

    async def main() -> None:
        args = (ROWS, (400.0, 10.0, 1000.0), bt_fits.BTOptions(rounds=5), None)
        assert await bt_fits._elsewhere(bt_fits.fit_pairs, *args) == bt_fits.fit_pairs(*args)
        # The refit process has what the fit needs, not the API's framework.
        loaded = "__import__('sys').modules.keys() & {'litestar', 'arbiter.services.api'}"
        print(await bt_fits._elsewhere(eval, loaded), flush=True)
        print(await bt_fits._elsewhere(os.getpid), flush=True)  # the refit process's pid
        await asyncio.sleep(120)

    asyncio.run(main())
    """
)


def test_the_refit_process_exits_with_a_killed_api() -> None:
    api = subprocess.Popen([sys.executable, "-c", SCRIPT], stdout=subprocess.PIPE, text=True)
    try:
        assert api.stdout is not None
        assert api.stdout.readline().strip() == "set()"  # nothing of the API in the refit process
        refit = psutil.Process(int(api.stdout.readline()))
        assert refit.is_running() and refit.pid != api.pid
    finally:
        api.send_signal(signal.SIGKILL)
        api.wait(10)
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        try:
            if refit.status() == psutil.STATUS_ZOMBIE:  # exited; reaped by whoever adopted it
                return
        except psutil.NoSuchProcess:
            return
        time.sleep(0.1)
    refit.kill()
    raise AssertionError("the refit process outlived the API by 15 s")
