"""Response bodies, for the OpenAPI document: what each API answers, field names exact."""

from __future__ import annotations

from marshmallow import Schema, fields


class ExportResponseSchema(Schema):
    ErrorCode = fields.Integer(
        required=True,
        metadata={"enum": [1, 2, 3, 4, 5, 6, 7, 8, 9], "description": "see the ErrorCode table"},
    )
    ErrorMessage = fields.String(required=True, metadata={"description": "for 2 it names every bad field"})
    TimeWait = fields.Integer(
        metadata={
            "description": "with 1, 7 and 8: whole seconds (>= 1) to wait before polling again; an"
            " estimate from the measured speed of the job's queue, the media the range holds and the"
            " work queued ahead (0 with 5)"
        }
    )
    VideoPath = fields.String(metadata={"description": "with 5: a URL that downloads the MP4"})
    ImagePath = fields.String(metadata={"description": "with 5: a URL of the clip's first frame (JPEG)"})
    S3Dir = fields.String(metadata={"description": "with 5: the key prefix holding the video and the image"})
    Version = fields.String(metadata={"description": "with 5: the video's S3 VersionId, else its ETag"})
    LackLength = fields.Integer(
        metadata={
            "description": "with 5: ms of the requested Duration the clip lacks (gaps in the recording,"
            " the range running past its end); Duration minus the exported duration, 0 when complete"
        }
    )
    JobId = fields.String(
        metadata={
            "description": "the job's id, stable for identical requests; in every answer about a job"
            " (1, 4, 5, 6, 8 and a 3 a worker found), not in a 2, 3 or 7 refused before a job exists"
        }
    )
    Progress = fields.Integer(metadata={"description": "with 1 and 8: how far the job got, 0-100"})


class SpanSchema(Schema):
    Start = fields.Integer(required=True, metadata={"description": "timeline ms, inclusive"})
    End = fields.Integer(required=True, metadata={"description": "timeline ms, exclusive"})


class RenditionSchema(Schema):
    Name = fields.String(
        required=True,
        metadata={
            "description": 'the variant\'s NAME, else its URI relative to LivePath; "" for a plain recording'
        },
    )
    Width = fields.Integer(required=True, metadata={"description": "0 where the playlists do not say"})
    Height = fields.Integer(required=True)
    Bandwidth = fields.Integer(required=True, metadata={"description": "bits/s from BANDWIDTH; 0 unknown"})
    Codec = fields.String(required=True, metadata={"description": "CODECS as the master playlist lists it"})


class SpansResponseSchema(Schema):
    ErrorCode = fields.Integer(required=True, metadata={"enum": [0, 2, 3, 4, 6]})
    ErrorMessage = fields.String(required=True)
    Spans = fields.List(
        fields.Nested(SpanSchema), metadata={"description": "readable media, maximal, in order"}
    )
    Gaps = fields.List(fields.Nested(SpanSchema), metadata={"description": "the holes between the spans"})
    Renditions = fields.List(fields.Nested(RenditionSchema))
    Cursor = fields.String(metadata={"description": 'send it back for the next page; "" on the last'})


class ImgbedResponseSchema(Schema):
    errCode = fields.Integer(required=True, metadata={"enum": [0, 1, 2, 3, 4, 5]})
    message = fields.String(required=True)


class ImgbedUploadResponseSchema(ImgbedResponseSchema):
    path = fields.String()
    filename = fields.String()
    url = fields.String(metadata={"description": "GET it for the image bytes"})


class ImgbedDeleteRequestSchema(Schema):
    path = fields.String(required=True)
    filename = fields.String(required=True)


class CodeMessageSchema(Schema):
    code = fields.Integer(required=True)
    message = fields.String(required=True)


class RestoreAcceptedSchema(CodeMessageSchema):
    task_id = fields.String()


class FileStatusSchema(Schema):
    file_name = fields.String(required=True)
    file_code = fields.Integer(required=True, metadata={"enum": [0, 1, 2]})


class RestoreStatusSchema(CodeMessageSchema):
    task_id = fields.String()
    state = fields.String(metadata={"enum": ["restoring", "settled", "delivered", "delivery_failed"]})
    file_dir = fields.String()
    file_list_status = fields.List(fields.Dict())
    callback_attempts = fields.List(fields.Dict())
    created_at = fields.Float()


class PutRestoreResultSchema(Schema):
    """What the service POSTs to a client's callback_url (the client implements it)."""

    code = fields.Integer(required=True, metadata={"description": "0: all files restored"})
    message = fields.String(required=True)
    type = fields.Integer(
        required=True, metadata={"enum": [0, 1], "description": "0: network test, 1: result"}
    )
    task_id = fields.String(required=True)
    file_dir = fields.String(required=True)
    file_list_status = fields.List(fields.Nested(FileStatusSchema), required=True)


class HealthSchema(Schema):
    status = fields.String(required=True)
    checks = fields.Dict()


class ExportListSchema(Schema):
    """GET /resource/v1/i/exports: a page of the caller's exports, newest first."""

    ErrorCode = fields.Integer(required=True, metadata={"enum": [0, 2, 3]})
    ErrorMessage = fields.String(metadata={"description": "with 2 and 3"})
    Exports = fields.List(
        fields.Dict(),
        metadata={
            "description": "each: JobId, Kind (export/snapshot), State (queued, running, parked, done,"
            " failed, cancelled), Progress, Source {Bucket, Region, Root}, LivePath, StartPos, Duration,"
            " ExportType, Rendition, Destination {Bucket, Region, S3Dir, Keys}, CreatedAt, EndedAt"
            " (epoch ms), Answer (the final answer once ended, else null); User for a service session"
        },
    )
    Cursor = fields.String(metadata={"description": 'the next page\'s cursor; "" on the last'})
