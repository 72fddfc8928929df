"""The API's start-up warm-up (services/api/warm_up.py): every page template is compiled before
the first page is asked for, and a failure there is logged, never raised."""

from __future__ import annotations

import logging

import pytest
from arbiter.services.api.warm_up import warm_up
from arbiter.services.web.templating import template_config


def test_every_template_is_compiled() -> None:
    engine = template_config().engine_instance
    env = engine.engine
    assert not env.cache  # nothing compiled yet
    warm_up(engine)
    compiled = {key[1] for key in env.cache}
    assert compiled == set(env.list_templates())


def test_a_failed_warm_up_is_only_logged(caplog: pytest.LogCaptureFixture) -> None:
    class Broken:
        engine = None

    with caplog.at_level(logging.WARNING, logger="arbiter.api.warm_up"):
        warm_up(Broken())
    assert "warm-up failed" in caplog.text
