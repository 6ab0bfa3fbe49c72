"""CPU and GPU worker pools: which queues a node serves, and where an export is routed."""

from __future__ import annotations

import fakeredis

from tasks.exports.routing import export_queue
from tasks.exports.spec import ExportSpec, ExportType, S3Location
from tasks.platform.celery_app import Queue
from tasks.platform.registry import WorkerInfo, WorkerView, announce
from tasks.platform.settings import Settings
from workers.media.encoder_choice import choose_encoder, output_size
from workers.media.encoder_probe import encoder_works, working_encoders
from workers.runtime.launch import choose_queues


def spec(export_type: ExportType) -> ExportSpec:
    loc = S3Location("b", "us-east-1")
    return ExportSpec("u", loc, "p", 0, 1000, export_type, loc, "x.mp4")


def test_queues_follow_the_encoders_that_work() -> None:
    assert choose_queues(False, (), nvenc=False)[0] == "export.cpu"
    assert "export.copy" in choose_queues(False, (), nvenc=False)
    assert choose_queues(False, (), nvenc=True)[0] == "export.gpu"
    assert choose_queues(True, (), nvenc=True) == ["export.gpu"]
    assert choose_queues(True, (), nvenc=False) == ["export.cpu"]  # a GPU node without NVENC says so
    assert choose_queues(False, ("restore",), nvenc=True) == ["restore"]


def test_encodes_go_to_gpu_only_while_a_gpu_worker_lives() -> None:
    client = fakeredis.FakeRedis()
    view = WorkerView(client)
    assert export_queue(spec(ExportType.H264), view) is Queue.EXPORT_CPU
    announce(client, WorkerInfo("gpu@a", ("export.gpu",), 3, ("h264_nvenc",)), Settings().heartbeat_ttl_s)
    view = WorkerView(client)  # the cache is per instance; production refreshes every few seconds
    assert export_queue(spec(ExportType.H264), view) is Queue.EXPORT_GPU
    assert export_queue(spec(ExportType.COPY), view) is Queue.EXPORT_COPY  # copies never wait for a GPU
    assert view.slots("export.gpu") == 3


def test_this_node_really_encodes_on_cpu() -> None:
    assert {"libx264", "libx265"} <= set(working_encoders())
    assert not encoder_works("no_such_encoder")


def test_encoder_settings_come_from_configuration() -> None:
    settings = Settings(encode_crf=30, encode_preset="fast", encode_max_height=720)
    choice = choose_encoder(ExportType.H265, 1920, 1080, 25, settings)  # type: ignore[arg-type]
    assert (choice.name, choice.width, choice.height) == ("libx265", 1280, 720)
    assert choice.options["crf"] == "30" and choice.options["preset"] == "fast"
    assert output_size(1001, 563, 2000) == (1000, 562)
    gpu = choose_encoder(ExportType.H264, 1280, 720, 25, settings, gpu=True)  # type: ignore[arg-type]
    assert gpu.name == "h264_nvenc"
