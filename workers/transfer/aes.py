"""AES-128 segment decryption (HLS #EXT-X-KEY METHOD=AES-128), streamed file to file.

A packager encrypts each whole segment with AES-128-CBC and PKCS#7 padding (RFC 8216 4.3.2.4).
The segment is downloaded as it is stored and decrypted a chunk at a time into the file the
demuxer opens, so memory stays one chunk whatever the segment's size. Keys are secrets: they
are held only in memory for the export, and no message here ever carries their bytes.
"""

from __future__ import annotations

from pathlib import Path

from cryptography.hazmat.primitives import padding
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

CHUNK = 1024 * 1024
KEY_BYTES = 16


class UndecryptableSegment(Exception):
    """An encrypted entry that cannot be decrypted: its key is missing or not a key, or its bytes
    are not AES-128-CBC with that key. The entry is a gap; the message is the reason."""


def decrypt_file(encrypted: Path, clear: Path, key: bytes, iv: bytes) -> int:
    """Decrypt `encrypted` into `clear` chunk by chunk; returns the clear bytes written."""
    if len(key) != KEY_BYTES:
        raise UndecryptableSegment("its AES-128 key object is not 16 bytes")
    decryptor = Cipher(algorithms.AES(key), modes.CBC(iv)).decryptor()
    unpadder = padding.PKCS7(128).unpadder()
    written = 0
    with encrypted.open("rb") as source, clear.open("wb") as target:
        while chunk := source.read(CHUNK):
            written += target.write(unpadder.update(decryptor.update(chunk)))
        try:
            written += target.write(unpadder.update(decryptor.finalize()) + unpadder.finalize())
        except ValueError as exc:  # not a multiple of 16 bytes, or bad padding: wrong key or IV
            raise UndecryptableSegment("it does not decrypt with its AES-128 key and IV") from exc
    return written
