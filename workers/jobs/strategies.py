"""Which way a clip is made, and making it anew when that way fails partway.

A stream copy can meet parameters one MP4 track cannot carry (an encoder restart at a new size)
and a smart cut can fail its decode check; either is found only while the file is being written
and streamed. The file and the upload streaming it belong to the strategy that wrote them, so a
change of strategy starts both over: nothing of the abandoned file reaches an object.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

from tasks.exports.spec import ExportType
from workers.media.remux import ParametersChanged

log = logging.getLogger(__name__)

REENCODE_AS = {"hevc": ExportType.H265}  # a copy export that must be re-encoded keeps its codec
T = TypeVar("T")


class SpliceRejected(Exception):
    """A smart-cut file that does not decode frame for frame; it is redone as a full encode."""


@dataclass(frozen=True)
class Strategy:
    """How the clip is made. An upload belongs to exactly one strategy: when the strategy changes
    (a copy meets parameters one MP4 track cannot carry, a splice fails its decode check), the
    upload that carried the abandoned file is aborted and a new one begun for the new file."""

    export_type: ExportType
    smart_cut: bool

    def after(self, failure: ParametersChanged | SpliceRejected) -> Strategy:
        if isinstance(failure, ParametersChanged):  # re-encode the whole clip, in the source's codec
            return Strategy(REENCODE_AS.get(failure.codec, ExportType.H264), False)
        return Strategy(self.export_type, False)  # a rejected splice: a full encode


def with_strategies(first: Strategy, clip: Path, make: Callable[[Strategy], T], key: str) -> T:
    """Run `make` under `first`, then under each strategy its failures call for. The clip file is
    removed before each run, so nothing (an upload's watcher included) ever sees the bytes of an
    abandoned one. Each change is logged ("upload aborted"): when `make` streams an upload, one
    change is exactly one aborted upload."""
    strategy = first
    while True:
        clip.unlink(missing_ok=True)
        try:
            return make(strategy)
        except (ParametersChanged, SpliceRejected) as failure:
            after = strategy.after(failure)
            if after == strategy:  # the fallback failed the same way: no strategy is left
                raise
            log.warning(
                "%s: upload aborted, the clip is made anew (%s)",
                "copy export re-encoded" if isinstance(failure, ParametersChanged) else "smart cut rejected",
                failure,
                extra={
                    "key": key,
                    "from_type": int(strategy.export_type),
                    "to_type": int(after.export_type),
                    "smart_cut": after.smart_cut,
                },
            )
            strategy = after
