"""Which encoder and settings an export uses: libx264/libx265 on CPU, NVENC on GPU workers.

Settings come from configuration; the defaults suit surveillance footage (mostly static
scenes, where constant quality spends bits only when something moves).
"""

from __future__ import annotations

from fractions import Fraction

from tasks.exports.spec import ExportType
from tasks.platform.settings import Settings
from workers.media.encoder_probe import has_nvenc
from workers.media.mp4_writer import EncoderChoice

CODEC_FOR_TYPE = {ExportType.H264: "h264", ExportType.H265: "hevc"}


def output_size(width: int, height: int, max_height: int) -> tuple[int, int]:
    """Keep the aspect ratio, cap the height, and keep both even (4:2:0 needs it)."""
    if height > max_height:
        width, height = round(width * max_height / height), max_height
    return max(2, width - width % 2), max(2, height - height % 2)


def gpu_wanted(settings: Settings) -> bool:
    """A GPU worker's processes (the launcher sets use_nvenc) encode with NVENC where it opens."""
    return settings.use_nvenc and has_nvenc()


def choose_encoder(
    export_type: ExportType, width: int, height: int, rate: Fraction, settings: Settings, gpu: bool = False
) -> EncoderChoice:
    codec = CODEC_FOR_TYPE[export_type]
    out_w, out_h = output_size(width, height, settings.encode_max_height)
    keyint = max(1, round(float(rate) * 2))  # a keyframe every 2 s: seekable, still cheap
    if gpu:
        name = "h264_nvenc" if codec == "h264" else "hevc_nvenc"
        options = {"preset": "p4", "rc": "vbr", "cq": str(settings.encode_crf), "g": str(keyint), "bf": "0"}
    elif codec == "h264":
        name = "libx264"
        options = {
            "preset": settings.encode_preset,
            "crf": str(settings.encode_crf),
            "x264-params": f"keyint={keyint}:min-keyint={keyint}:scenecut=0",
        }
    else:
        name = "libx265"
        options = {
            "preset": settings.encode_preset,
            "crf": str(settings.encode_crf),
            "x265-params": f"keyint={keyint}:min-keyint={keyint}:scenecut=0:log-level=error",
        }
    return EncoderChoice(name=name, codec=codec, width=out_w, height=out_h, rate=rate, options=options)
