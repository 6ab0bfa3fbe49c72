"""The recording's archive: HLS playlists parsed onto one timeline, and which segments cover a
range. Imports only `tasks/` (S3 through `tasks.storage`); no PyAV, no Celery."""
