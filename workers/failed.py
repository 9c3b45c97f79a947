"""The dead-letter view behind ``igrelay failed``: ``config.deadletters``, which the web console shares."""

from __future__ import annotations

from config.deadletters import PRESET_BY_JOB as PRESET_BY_JOB
from config.deadletters import describe as describe
from config.deadletters import list_failed as list_failed
from config.deadletters import replay as replay
