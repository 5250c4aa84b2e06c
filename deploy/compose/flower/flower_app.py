"""The Celery app Flower runs with (``celery -A flower_app flower``), mounted by compose.yaml.

The workers serialize task messages and their replies to control commands (inspect, ping) with
orjson, content type ``application/x-orjson``; a Celery app that only accepts JSON drops those
replies, and Flower would show no worker details. orjson writes standard JSON, so this module
registers that content type with the standard library's json and accepts it. The mher/flower
image has no orjson, and needs none.
"""

from __future__ import annotations

import json

from celery import Celery
from kombu.serialization import register

register("orjson", json.dumps, json.loads, content_type="application/x-orjson")

app = Celery("cable_ingest")
app.conf.accept_content = ["orjson", "json"]
app.conf.result_accept_content = ["orjson", "json"]
