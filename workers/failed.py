"""The dead-letter view behind ``igrelay failed``: ``config.deadletters``, which the web console shares."""

from __future__ import annotations

from config.deadletters import DEAD_ENTRY as DEAD_ENTRY
from config.deadletters import PRESET_BY_JOB as PRESET_BY_JOB
from config.deadletters import describe as describe
from config.deadletters import describe_entry as describe_entry
from config.deadletters import list_failed as list_failed
from config.deadletters import replay as replay
from config.deadletters import replay_entries as replay_entries
