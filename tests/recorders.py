"""Recordings written the way real recorders write them, made at test time.

The ffmpeg CLI plays the recorder: frames are piped in as rawvideo from Python, each carrying
its own index in its pixels (scripts.samples.index_plane), and ffmpeg's own libx264/libx265/aac
encoders and HLS muxer write segments and playlists with their defaults (B-frames, scene cuts,
open GOPs, adaptive B-frames). What other recorders do differently (nginx-rtmp's fragment
names, GStreamer hlssink2's playlists, cameras that restart timestamps every segment,
percent-encoded or absolute URIs) is produced by rewriting ffmpeg's output the way those
recorders lay it out. A recording knows when each frame is shown on the recording's timeline,
so a test can say exactly which frames an export must hold.
"""

from __future__ import annotations

import re
import subprocess
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any
from urllib.parse import quote

import numpy as np

from scripts.samples import index_plane

PDT_MS = 1_700_000_000_000  # where playlists that carry #EXT-X-PROGRAM-DATE-TIME start
WIDTH, HEIGHT = 160, 96  # small, and still >= 64x64 for libx265
AES_KEYS = (bytes(range(16)), bytes(range(100, 116)))  # the packager's two keys (a rotation)
AES_IV = bytes.fromhex("0123456789abcdef0123456789abcdef")
CLICK = "aevalsrc='if(lt(mod(t\\,1)\\,0.02)\\,0.8*sin(2*PI*1000*t)\\,0)':s=48000"  # a click a second


@dataclass(frozen=True)
class RecorderCase:
    """One way a recorder writes a recording; `layout` names the post-processing."""

    name: str
    video: str | None = "libx264"  # None: audio only
    audio: bool = True
    fps: int = 25
    seconds: float = 6.0
    gop: int = 50  # -g: recorders set a keyframe interval of about 2 s
    video_args: tuple[str, ...] = ()
    pix_fmt: str = "yuv420p"
    x265_params: tuple[str, ...] = ()
    fmp4: bool = False
    single_file: bool = False
    vfr: bool = False
    layout: str = "plain"  # see record() and _rewrite_layout()
    width: int = WIDTH
    height: int = HEIGHT


@dataclass
class Recording:
    case: RecorderCase
    directory: Path
    origin_ms: float  # the timeline position of frame 0
    frame_times: list[float] = field(default_factory=list)  # s after origin when each frame shows
    files: list[Path] = field(default_factory=list)  # what goes into S3, relative to directory

    def shown_in(self, start_s: float, end_s: float) -> list[int]:
        """Frames on screen at some instant of [start_s, end_s): exactly what types 1/2 hold."""
        times = self.frame_times
        shown: list[int] = []
        for index, at in enumerate(times):
            until = times[index + 1] if index + 1 < len(times) else at + 1 / self.case.fps
            if at < end_s - 1e-6 and until > start_s + 1e-6:
                shown.append(index)
        return shown


VFR_SLOW_FROM = 60  # the VFR camera halves its frame rate from this frame on (low light)
VFR_SETPTS = (  # vfr_time as an ffmpeg expression
    f"(if(lt(N\\,{VFR_SLOW_FROM})\\,N*0.04\\,{VFR_SLOW_FROM}*0.04+(N-{VFR_SLOW_FROM})*0.08)-mod(N\\,2)*0.01)"
)


def vfr_time(index: int) -> float:
    """Frame times of the VFR case: 30 ms and 50 ms alternately, then 70 ms and 90 ms from
    VFR_SLOW_FROM on; nominally 25 fps throughout."""
    if index < VFR_SLOW_FROM:
        return index * 0.04 - (index % 2) * 0.01
    return VFR_SLOW_FROM * 0.04 + (index - VFR_SLOW_FROM) * 0.08 - (index % 2) * 0.01


def _picture(index: int, width: int, height: int) -> bytes:
    luma = index_plane(index, width, height, None)
    scene = (index // 37) % 2  # a hard scene change every 37 frames, for x264's scenecut
    if scene:
        luma[height // 2 :, :] = 235 - luma[height // 2 :, :] // 2
    chroma = np.full((height // 2, width), 96 + 64 * scene, dtype=np.uint8)
    return luma.tobytes() + chroma.tobytes()


def _run_ffmpeg(
    case: RecorderCase, directory: Path, playlist: str, first: int, frames: int, prefix: str
) -> None:
    """One ffmpeg run acting as the recorder: frames [first, first + frames) into an HLS folder."""
    seconds = frames / case.fps
    cmd = ["ffmpeg", "-v", "error", "-y"]  # ffmpeg >= 5.1: -fps_mode and -enc_time_base for VFR
    if case.video is None:
        cmd.append("-nostdin")  # nothing is piped in: never read the terminal
    if case.video is not None:
        size = f"{case.width}x{case.height}"
        cmd += ["-f", "rawvideo", "-pix_fmt", "yuv420p", "-s", size, "-r", str(case.fps), "-i", "pipe:0"]
    if case.audio:
        cmd += ["-f", "lavfi", "-t", f"{seconds:.3f}", "-i", CLICK]
    if case.video is not None:
        cmd += ["-c:v", case.video, "-g", str(case.gop), "-pix_fmt", case.pix_fmt, *case.video_args]
        if case.video == "libx265":
            cmd += ["-x265-params", ":".join(["log-level=error", *case.x265_params])]
        if case.vfr:
            cmd += ["-vf", f"settb=1/1000,setpts='{VFR_SETPTS}/TB'", "-fps_mode", "passthrough"]
            cmd += ["-enc_time_base", "1:1000"]
    if case.layout.startswith("abr"):  # the ladder: the source size, and twice it
        cmd += ["-filter_complex", f"[0:v]split=2[lo][hi0];[hi0]scale={2 * case.width}:{2 * case.height}[hi]"]
        cmd += ["-map", "[lo]", "-map", "[hi]", "-map", "1:a", "-map", "1:a"]
    if case.audio:
        cmd += ["-c:a", "aac", "-ac", "1"]
    ext = "m4s" if case.fmp4 else "ts"
    cmd += ["-f", "hls", "-hls_time", "2", "-hls_list_size", "0"]
    if case.fmp4:
        cmd += ["-hls_segment_type", "fmp4", "-hls_fmp4_init_filename", f"{prefix}init.mp4"]
    if case.layout == "aes":  # the key beside the segments, a relative URI, an explicit IV
        (directory / "k0.key").write_bytes(AES_KEYS[0])
        (directory / "keyinfo").write_text(f"k0.key\nk0.key\n{AES_IV.hex()}\n")
        cmd += ["-hls_key_info_file", "keyinfo"]
    if case.single_file:
        cmd += ["-hls_flags", "single_file"]
    elif case.layout == "abr_folders":  # ffmpeg's -var_stream_map: a master, a folder per rendition
        cmd += ["-var_stream_map", "v:0,a:0 v:1,a:1", "-master_pl_name", playlist]
        cmd += ["-hls_segment_filename", "stream_%v/seg%03d.ts"]
        playlist = "stream_%v/playlist.m3u8"
    elif case.layout == "abr_flat":  # ... or every rendition beside the master
        cmd += ["-var_stream_map", "v:0,a:0 v:1,a:1", "-master_pl_name", playlist]
        cmd += ["-hls_segment_filename", "stream_%v_%03d.ts"]
        playlist = "stream_%v.m3u8"
    else:
        cmd += ["-hls_segment_filename", f"{prefix}%03d.{ext}"]
    cmd.append(playlist)
    pictures = b"".join(_picture(first + i, case.width, case.height) for i in range(frames))
    run = subprocess.run(cmd, cwd=directory, input=pictures if case.video else None, capture_output=True)
    if run.returncode:
        raise RuntimeError(f"ffmpeg recorder failed: {run.stderr.decode(errors='replace')[-2000:]}")


def _with_pdt(text: str, start_ms: float) -> str:
    """Give a playlist #EXT-X-PROGRAM-DATE-TIME from `start_ms` (ffmpeg would use the wall clock)."""
    from datetime import UTC, datetime

    stamp = datetime.fromtimestamp(start_ms / 1000, tz=UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"
    return re.sub(r"(#EXT-X-MEDIA-SEQUENCE:\d+\n)", rf"\1#EXT-X-PROGRAM-DATE-TIME:{stamp}\n", text, count=1)


def _entries(text: str) -> tuple[list[str], list[tuple[list[str], str]]]:
    """A playlist as its header lines and (tag lines, URI) per entry; ENDLIST dropped."""
    header: list[str] = []
    entries: list[tuple[list[str], str]] = []
    tags: list[str] = []
    for line in text.splitlines():
        if not line or line == "#EXT-X-ENDLIST":
            continue
        if (
            line.startswith("#EXTINF")
            or line.startswith("#EXT-X-BYTERANGE")
            or line.startswith("#EXT-X-DISC")
        ):
            tags.append(line)
        elif line.startswith("#"):
            (tags if entries or tags else header).append(line)
        else:
            entries.append((tags, line))
            tags = []
    return header, entries


def _join(header: list[str], entries: list[tuple[list[str], str]], endlist: bool = True) -> str:
    lines = list(header)
    for tags, uri in entries:
        lines += [*tags, uri]
    return "\n".join([*lines, *(["#EXT-X-ENDLIST"] if endlist else [])]) + "\n"


def _extinf_s(tags: list[str]) -> float:
    return sum(float(t.split(":", 1)[1].rstrip(",").split(",")[0]) for t in tags if t.startswith("#EXTINF"))


def upload(s3: Any, rec: Recording, folder: str) -> None:
    """The recording's files under `folder` of the archive bucket (`s3`: a boto3 client)."""
    for relative in rec.files:
        s3.upload_file(str(rec.directory / relative), "archive", f"{folder}/{relative}")


def record(case: RecorderCase, directory: Path) -> Recording:
    """Write `case` into `directory` and say what it holds."""
    directory.mkdir(parents=True, exist_ok=True)
    frames = round(case.seconds * case.fps)
    times = [vfr_time(i) if case.vfr else i / case.fps for i in range(frames)] if case.video else []
    rec = Recording(case, directory, 0.0, times)
    if case.layout in {"restart", "resize", "map_change", "overlap"}:  # two encoder runs
        half = frames // 2
        # "overlap": the restarted recorder re-sends its last second (timestamps restarted too)
        resent = case.fps if case.layout == "overlap" else 0
        _run_ffmpeg(case, directory, "hour1.m3u8", 0, half, "a")
        second = case if case.layout != "resize" else replace(case, width=192, height=112)
        _run_ffmpeg(second, directory, "hour2.m3u8", half - resent, frames - half + resent, "b")
        first_text = (directory / "hour1.m3u8").read_text()
        hour2 = (directory / "hour2.m3u8").read_text()
        first_s = sum(_extinf_s(tags) for tags, _ in _entries(first_text)[1])
        assert abs(first_s - half / case.fps) < 0.25, first_s  # x265 rounds its last EXTINF up
        if case.layout == "map_change":  # one playlist; the restart brings a new #EXT-X-MAP
            header, entries = _entries(first_text)
            header2, entries2 = _entries(hour2)
            new_map = [line for line in header2 if line.startswith("#EXT-X-MAP")]
            entries2[0] = (["#EXT-X-DISCONTINUITY", *new_map, *entries2[0][0]], entries2[0][1])
            (directory / "index.m3u8").write_text(_join(header, entries + entries2))
            (directory / "hour1.m3u8").unlink()
            (directory / "hour2.m3u8").unlink()
        else:  # a playlist per run (an hourly rollover), placed by PROGRAM-DATE-TIME
            (directory / "hour1.m3u8").write_text(_with_pdt(first_text, PDT_MS))
            second_ms = PDT_MS + (half - resent) / case.fps * 1000
            (directory / "hour2.m3u8").write_text(_with_pdt(hour2, second_ms))
            rec.origin_ms = PDT_MS
    else:
        _run_ffmpeg(case, directory, "index.m3u8", 0, frames, "seg")
        _rewrite_layout(case, directory, rec)
    if case.layout.startswith("abr"):  # the master is named for what it is
        (directory / "index.m3u8").rename(directory / "master.m3u8")
    rec.files = sorted(p.relative_to(directory) for p in directory.rglob("*") if p.is_file())
    return rec


def _aes(key: bytes, iv: bytes, data: bytes, encrypt: bool) -> bytes:
    """AES-128-CBC with PKCS#7 padding, as HLS packagers encrypt whole segments."""
    from cryptography.hazmat.primitives import padding
    from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

    cipher = Cipher(algorithms.AES(key), modes.CBC(iv))
    if encrypt:
        padder = padding.PKCS7(128).padder()
        padded = padder.update(data) + padder.finalize()
        encryptor = cipher.encryptor()
        return encryptor.update(padded) + encryptor.finalize()
    decryptor = cipher.decryptor()
    unpadder = padding.PKCS7(128).unpadder()
    return unpadder.update(decryptor.update(data) + decryptor.finalize()) + unpadder.finalize()


def _rotate_keys(directory: Path, header: list[str], entries: list[tuple[list[str], str]]) -> str:
    """ffmpeg encrypted every segment with key 0 and an explicit IV; a packager that rotates keys
    moves to key 1 (in a keys/ folder, IV implicit: the media sequence number) for the second and
    third segments, and ends encryption (METHOD=NONE) from the fourth."""
    (directory / "keyinfo").unlink()
    (directory / "keys").mkdir()
    (directory / "keys" / "k1.key").write_bytes(AES_KEYS[1])
    for n, (tags, uri) in enumerate(entries[1:], start=1):
        clear = _aes(AES_KEYS[0], AES_IV, (directory / uri).read_bytes(), encrypt=False)
        if n <= 2:
            (directory / uri).write_bytes(_aes(AES_KEYS[1], n.to_bytes(16, "big"), clear, encrypt=True))
            if n == 1:
                tags.insert(0, '#EXT-X-KEY:METHOD=AES-128,URI="keys/k1.key"')
        else:
            (directory / uri).write_bytes(clear)
            if n == 3:
                tags.insert(0, "#EXT-X-KEY:METHOD=NONE")
    return _join(header, entries)


ID3_TAG = b"ID3\x04\x00\x00\x00\x00\x00\x15TXXX\x00\x00\x00\x0b\x00\x00\x03cue\x00ad-break"


def _crc32_mpeg(data: bytes) -> int:
    crc = 0xFFFFFFFF
    for byte in data:
        crc ^= byte << 24
        for _ in range(8):
            crc = (crc << 1) ^ 0x04C11DB7 if crc & 0x80000000 else crc << 1
            crc &= 0xFFFFFFFF
    return crc


def _scte35_null() -> bytes:
    """A splice_info_section holding a splice_null(): what packagers send as a heartbeat."""
    body = bytes.fromhex("fc301100000000000000fff000000000")
    return body + _crc32_mpeg(body).to_bytes(4, "big")


def _with_data_streams(segment: Path) -> None:
    """Rewrite a TS segment with a timed ID3 stream and a SCTE-35 stream beside its video and
    audio, an ID3 tag and a splice_null() on every keyframe and each second, as packagers (AWS
    Elemental, Wowza) carry timed metadata and ad markers. PyAV writes them: the ffmpeg CLI has
    no encoder for either (it can only copy them)."""
    import av

    with (
        av.open(str(segment)) as source,
        av.open(str(segment.with_suffix(".tmp")), "w", format="mpegts") as out,
    ):
        video, audio = source.streams.video[0], source.streams.audio[0]
        outputs = {
            video.index: out.add_stream_from_template(video),
            audio.index: out.add_stream_from_template(audio),
        }
        id3, scte = out.add_data_stream(codec_name="timed_id3"), out.add_data_stream(codec_name="scte_35")
        for n, packet in enumerate(source.demux(video, audio)):
            if packet.dts is None:
                continue
            if packet.stream.index == video.index and (packet.is_keyframe or n % 25 == 0):
                for stream, payload in ((id3, ID3_TAG), (scte, _scte35_null())):
                    data = av.Packet(payload)
                    data.stream, data.pts, data.dts, data.time_base = (
                        stream,
                        packet.dts,
                        packet.dts,
                        packet.time_base,
                    )
                    out.mux(data)
            packet.stream = outputs[packet.stream.index]
            out.mux(packet)
    segment.with_suffix(".tmp").replace(segment)


def _rewrite_layout(case: RecorderCase, directory: Path, rec: Recording) -> None:
    if case.layout.startswith("abr"):  # the master is the recording's only playlist at the top
        return
    playlist = directory / "index.m3u8"
    header, entries = _entries(playlist.read_text())
    if case.layout in {"rollover", "bare_pdt"}:  # one encoder, a new playlist on the hour
        cut = len(entries) // 2
        first_s = sum(_extinf_s(tags) for tags, _ in entries[:cut])
        first = _with_pdt(_join(header, entries[:cut]), PDT_MS)
        second = _with_pdt(_join(header, entries[cut:]), PDT_MS + first_s * 1000)
        if case.layout == "bare_pdt":  # a camera writing PROGRAM-DATE-TIME without an offset (UTC)
            first, second = (re.sub(r"(#EXT-X-PROGRAM-DATE-TIME:\S+)Z", r"\1", t) for t in (first, second))
        (directory / "hour1.m3u8").write_text(first)
        (directory / "hour2.m3u8").write_text(second)
        playlist.unlink()
        rec.origin_ms = PDT_MS
    elif case.layout == "subfolder":  # "2024 06/seg 000.ts" referenced as 2024%2006/seg%20000.ts
        folder = directory / "2024 06"
        folder.mkdir()
        moved = []
        for tags, uri in entries:
            target = f"seg {uri}"
            (directory / uri).rename(folder / target)
            moved.append((tags, quote(f"2024 06/{target}")))
        playlist.write_text(_join(header, moved))
    elif case.layout == "data_streams":
        for _tags, uri in entries:
            _with_data_streams(directory / uri)
    elif case.layout == "aes":
        playlist.write_text(_rotate_keys(directory, header, entries))
    elif case.layout == "gap":  # the packager marks the second entry missing; its object holds
        # other media (the first segment's), which must never be read
        tags, uri = entries[1]
        (directory / uri).write_bytes((directory / entries[0][1]).read_bytes())
        entries[1] = (["#EXT-X-GAP", *tags], uri)
        playlist.write_text(_join(header, entries))
    elif case.layout == "absolute":  # the second entry points at a CDN: that entry is a gap
        tags, uri = entries[1]
        entries[1] = (tags, f"https://cdn.example.com/live/{uri}")
        playlist.write_text(_join(header, entries))
    elif case.layout == "nginx":  # nginx-rtmp: {stream}-{n}.ts, no ENDLIST while live
        renamed = []
        for n, (tags, uri) in enumerate(entries):
            (directory / uri).rename(directory / f"cam1-{n + 17}.ts")
            renamed.append(([t.replace("000,", ",") for t in tags], f"cam1-{n + 17}.ts"))
        head = ["#EXTM3U", "#EXT-X-VERSION:3", "#EXT-X-MEDIA-SEQUENCE:17", "#EXT-X-TARGETDURATION:2"]
        playlist.unlink()
        (directory / "cam1.m3u8").write_text(_join(head, renamed, endlist=False))
    elif case.layout == "hlssink2":  # GStreamer: segment%05d.ts, playlist.m3u8, version 3
        renamed = []
        for n, (tags, uri) in enumerate(entries):
            (directory / uri).rename(directory / f"segment{n:05d}.ts")
            extinf = _extinf_s(tags)
            renamed.append(([f"#EXTINF:{extinf:.16f},"], f"segment{n:05d}.ts"))
        head = ["#EXTM3U", "#EXT-X-VERSION:3", "#EXT-X-ALLOW-CACHE:NO", "#EXT-X-MEDIA-SEQUENCE:0"]
        playlist.unlink()
        (directory / "playlist.m3u8").write_text(_join([*head, "#EXT-X-TARGETDURATION:3"], renamed))
    elif case.layout == "ts_reset":  # a camera whose every segment starts its clock again
        for _tags, uri in entries:
            source = directory / uri
            reset = directory / f"reset-{uri}"
            run = subprocess.run(
                ["ffmpeg", "-v", "error", "-y", "-i", str(source), "-c", "copy", "-map", "0", str(reset)],
                capture_output=True,
            )
            if run.returncode:
                raise RuntimeError(run.stderr.decode(errors="replace"))
            reset.replace(source)


LIVE_SECONDS = 16.0  # room for a 10 s range on segment boundaries, [4 s, 14 s)
# What real-time encoders run: one representative per family first (in the default suite), the
# sweep after (slow).
LIVE_PRESETS: list[RecorderCase] = [
    RecorderCase(
        "live_x264_ultrafast_zerolatency",
        video_args=("-preset", "ultrafast", "-tune", "zerolatency"),
        seconds=LIVE_SECONDS,
    ),
    RecorderCase(
        "live_x265_ultrafast", video="libx265", video_args=("-preset", "ultrafast"), seconds=LIVE_SECONDS
    ),
    RecorderCase("live_x264_superfast", video_args=("-preset", "superfast"), seconds=LIVE_SECONDS),
    RecorderCase("live_x264_veryfast", video_args=("-preset", "veryfast"), seconds=LIVE_SECONDS),
    RecorderCase("live_x264_ultrafast", video_args=("-preset", "ultrafast"), seconds=LIVE_SECONDS),
    RecorderCase(
        "live_x265_superfast", video="libx265", video_args=("-preset", "superfast"), seconds=LIVE_SECONDS
    ),
    RecorderCase(
        "live_x265_veryfast", video="libx265", video_args=("-preset", "veryfast"), seconds=LIVE_SECONDS
    ),
    RecorderCase(
        "live_x265_ultrafast_zerolatency",
        video="libx265",
        video_args=("-preset", "ultrafast", "-tune", "zerolatency"),
        seconds=LIVE_SECONDS,
    ),
]

CASES: list[RecorderCase] = [
    RecorderCase("x264_bframes_scenecut"),
    RecorderCase("x265_open_gop", video="libx265"),
    RecorderCase("x265_main10", video="libx265", pix_fmt="yuv420p10le"),
    RecorderCase("fmp4_cmaf", fmp4=True),
    # ffmpeg 5.1's fMP4 muxer mis-stamps open-GOP leading pictures (its own copy misorders them):
    # HEVC in fMP4 is recorded closed-GOP, as CMAF recorders do.
    RecorderCase("x265_fmp4", video="libx265", fmp4=True, x265_params=("open-gop=0",)),
    RecorderCase("single_file_byteranges", single_file=True),
    RecorderCase("fmp4_single_file", fmp4=True, single_file=True),
    RecorderCase("rollover_same_encoder", layout="rollover"),
    RecorderCase("rollover_encoder_restart", layout="restart"),
    RecorderCase("x265_encoder_restart", video="libx265", layout="restart"),
    RecorderCase("restart_new_resolution", layout="resize"),
    RecorderCase("fmp4_encoder_restart", fmp4=True, layout="restart"),
    RecorderCase("fmp4_map_change", fmp4=True, layout="map_change"),
    RecorderCase("fmp4_new_resolution", fmp4=True, layout="resize"),
    RecorderCase("fps60", fps=60, gop=120, seconds=5.0),
    RecorderCase("vfr", vfr=True),
    RecorderCase("video_only", audio=False),
    RecorderCase("audio_only", video=None),
    RecorderCase("percent_encoded_subfolder", layout="subfolder"),
    RecorderCase("absolute_uri", layout="absolute"),
    RecorderCase("nginx_rtmp", layout="nginx"),
    RecorderCase("gstreamer_hlssink2", layout="hlssink2"),
    RecorderCase("camera_ts_reset", layout="ts_reset"),
    # Packagers (issue 20): ABR ladders, AES-128, #EXT-X-GAP, live encoder presets.
    RecorderCase("abr_ladder_subfolders", layout="abr_folders"),
    RecorderCase("abr_ladder_one_folder", layout="abr_flat"),
    RecorderCase("aes128_key_rotation", layout="aes", seconds=8.0),  # k0, k1, k1, clear
    RecorderCase("gap_entry", layout="gap"),
    RecorderCase("ts_id3_scte35", layout="data_streams"),
    *LIVE_PRESETS[:2],
    RecorderCase("overlap_restarted_timestamps", layout="overlap"),
    # without B-frames the handover is clean: a copy leaves the re-sent second out, no re-encode
    RecorderCase("overlap_without_bframes", layout="overlap", video_args=("-bf", "0")),
    RecorderCase("camera_pdt_without_offset", layout="bare_pdt"),
]
BY_NAME = {case.name: case for case in [*CASES, *LIVE_PRESETS]}
