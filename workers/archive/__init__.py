"""The recording's archive: HLS playlists parsed onto one timeline, and which segments cover a
range, through the archive index (a cache in Redis; docs/archive-index.md). Imports only
`tasks/` (S3 through `tasks.storage`, key names from `tasks.platform.keys`) and redis; no PyAV, no Celery."""
