"""The PyAV pipeline: segments in, one MP4 out, packet by packet. Timeline, copy cut, remux,
frame-accurate transcode, audio, MP4 writing and box layout, thumbnail, verification, and which
encoder to use. May import `workers.archive`, `workers.errors` and `tasks/`; never S3 or Celery."""
