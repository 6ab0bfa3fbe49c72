"""What runs on worker nodes, grouped by what it does. Nothing here imports `app`.

- `archive/`   which segments of a recording cover a time range: playlists, the archive index.
- `media/`     the PyAV pipeline: packet timeline, cut, remux, transcode, audio, MP4 writing,
               thumbnail, verification, encoder probing and choice.
- `transfer/`  bytes between S3 and the node: segment prefetch, the streaming MP4 upload.
- `jobs/`      one export or restore as plain functions: pipeline, attempt, progress, restore.
- `runtime/`   the Celery side: tasks, the worker entry point and launcher, lifecycle, reaper.
- `errors.py`  export failures with their API ErrorCode, raised anywhere below.

Imports flow one way: archive <- media <- transfer <- jobs <- runtime (a package may import
those to its left and `tasks/`); only `runtime/` knows Celery. tests/unit/test_layering.py
checks it.
"""
