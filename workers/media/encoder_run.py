"""One run of a video encoder, in a thread of its own, muxing into the clip's writer.

Split out of workers.media.transcode: a frame-accurate export starts a run for the whole clip
(full transcode) or one per encoded stretch between copied GOPs (smart cut).
"""

from __future__ import annotations

import queue
import threading
from typing import cast

import av

from workers.media.mp4_writer import TICK, EncoderChoice, Mp4Writer


class EncoderRun:
    """One encoder run, in a thread of its own so decoding and encoding overlap (PyAV drops the
    GIL inside libavcodec); packets come back to the calling thread, which alone muxes."""

    QUEUE_FRAMES = 8  # decoded 1080p frames waiting for the encoder: ~25 MB at most

    def __init__(self, choice: EncoderChoice, writer: Mp4Writer, spliced: bool) -> None:
        self.writer = writer
        if spliced:
            ctx = cast(av.VideoCodecContext, av.CodecContext.create(choice.name, "w"))
            ctx.width, ctx.height, ctx.pix_fmt = choice.width, choice.height, "yuv420p"
            ctx.time_base, ctx.framerate = TICK, choice.rate
            options = dict(choice.options)
            params = "x264-params" if choice.codec == "h264" else "x265-params"
            if params in options:
                # No B-frames: encoded runs keep dts == pts next to copied GOPs. No lookahead: a run
                # is a partial GOP, and a lookahead only delays its first and last packets.
                options[params] += ":bframes=0:rc-lookahead=0:sync-lookahead=0"
            ctx.options = options
        else:
            writer.add_encoded_video(choice)
            assert writer.video is not None
            ctx = writer.video.codec_context
        # PyAV defaults to slice threads, which makes libx264 use its slower sliced threading;
        # FRAME|SLICE is what the ffmpeg CLI uses, and gives x264 frame threads.
        ctx.thread_type = "AUTO"
        self.ctx = ctx
        self._inbox: queue.Queue[av.VideoFrame | None] = queue.Queue(maxsize=self.QUEUE_FRAMES)
        self._outbox: queue.SimpleQueue[list[av.Packet] | BaseException] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None

    def encode(self, frame: av.VideoFrame, pts: int) -> None:
        if (frame.width, frame.height, frame.format.name) != (self.ctx.width, self.ctx.height, "yuv420p"):
            frame = frame.reformat(width=self.ctx.width, height=self.ctx.height, format="yuv420p")
        frame.pts, frame.time_base = pts, TICK
        if self._thread is None:
            if not self.ctx.is_open:  # open here, not in the thread: the muxer checks it for the header
                self.ctx.open()
            self._thread = threading.Thread(target=self._run, name="encoder", daemon=True)
            self._thread.start()
        while True:
            try:
                self._inbox.put(frame, timeout=1.0)
                break
            except queue.Full:
                self._mux_ready()  # raises the encoder's error, if that is why it stopped taking frames
                if not self._thread.is_alive():
                    raise RuntimeError("the encoder thread stopped") from None
        self._mux_ready()

    def _run(self) -> None:
        while (frame := self._inbox.get()) is not None:
            try:
                self._outbox.put(self.ctx.encode(frame))
            except BaseException as exc:  # handed to the muxing thread, which raises it
                self._outbox.put(exc)
                return

    def _mux_ready(self) -> None:
        while not self._outbox.empty():
            item = self._outbox.get()
            if isinstance(item, BaseException):
                raise item
            for packet in item:
                self.writer.mux_video(packet)

    def stop(self) -> None:
        """On failure: end the thread without flushing into a file that is being abandoned."""
        if self._thread is not None:
            while not self._inbox.empty():
                self._inbox.get_nowait()
            self._inbox.put(None)
            self._thread.join()
            self._thread = None

    def flush(self) -> None:
        if self._thread is None:
            return
        self._inbox.put(None)
        self._thread.join()
        self._thread = None
        self._mux_ready()
        for packet in self.ctx.encode(None):
            self.writer.mux_video(packet)
