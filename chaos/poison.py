"""A worker plugin for the poison scenario (``celery -A worker.app worker -I chaos.poison``):
parsing a cable that holds :data:`MARKER` kills the pool process at once (SIGKILL), as the
kernel would kill a process that a cable made use too much memory. Only the chaos suite loads
this module; the product has no such hook."""

from __future__ import annotations

import os
import signal
from collections.abc import Mapping
from typing import Any

from worker.core import pipeline
from worker.record import CableRecord

MARKER = "CHAOS-POISON-7d1f"
_parse = pipeline.parse


def _parse_or_die(envelope: Mapping[str, Any]) -> CableRecord | pipeline.Failure:
    if MARKER in str(envelope.get("text", "")):
        os.kill(os.getpid(), signal.SIGKILL)
    return _parse(envelope)


pipeline.parse = _parse_or_die
