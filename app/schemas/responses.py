"""Response bodies, for the OpenAPI document: what each API answers, field names exact."""

from __future__ import annotations

from marshmallow import Schema, fields


class ExportResponseSchema(Schema):
    ErrorCode = fields.Integer(
        required=True, metadata={"enum": [1, 2, 3, 4, 5, 6, 7, 8], "description": "see the ErrorCode table"}
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
