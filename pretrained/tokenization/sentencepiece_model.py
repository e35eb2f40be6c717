"""Read a SentencePiece `.model` file (a protobuf `ModelProto`) without `sentencepiece` or `protobuf`.

Only the fields a tokenizer needs are decoded: the pieces (text, score, type), the trainer spec
(model type, unk/bos/eos/pad ids and pieces, byte fallback) and the normalizer spec (precompiled
charsmap, dummy prefix, whitespace handling). Unknown fields are skipped, as protobuf does.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field

# Piece types in sentencepiece_model.proto
NORMAL, UNKNOWN, CONTROL, USER_DEFINED, UNUSED, BYTE = 1, 2, 3, 4, 5, 6
# TrainerSpec.model_type
UNIGRAM, BPE, WORD, CHAR = 1, 2, 3, 4


@dataclass
class Piece:
    """One vocabulary entry."""

    piece: str
    score: float = 0.0
    type: int = NORMAL


@dataclass
class SentencePieceModel:
    """The parts of a `ModelProto` a tokenizer uses; defaults are the protobuf defaults."""

    pieces: list[Piece] = field(default_factory=list)
    model_type: int = UNIGRAM
    unk_id: int = 0
    bos_id: int = 1
    eos_id: int = 2
    pad_id: int = -1
    unk_piece: str = "<unk>"
    bos_piece: str = "<s>"
    eos_piece: str = "</s>"
    pad_piece: str = "<pad>"
    byte_fallback: bool = False
    precompiled_charsmap: bytes = b""
    add_dummy_prefix: bool = True
    remove_extra_whitespaces: bool = True


def _varint(data: bytes, pos: int) -> tuple[int, int]:
    result = shift = 0
    while True:
        if pos >= len(data):
            raise ValueError("truncated varint")
        byte = data[pos]
        pos += 1
        result |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return result, pos
        shift += 7
        if shift > 70:
            raise ValueError("varint too long")


def _fields(data: bytes) -> list[tuple[int, int, int | bytes]]:
    """Split a message into `(field number, wire type, value)`; values are ints or raw bytes."""
    out: list[tuple[int, int, int | bytes]] = []
    pos = 0
    while pos < len(data):
        key, pos = _varint(data, pos)
        number, wire = key >> 3, key & 7
        if wire == 0:
            value, pos = _varint(data, pos)
        elif wire == 1:
            value, pos = data[pos : pos + 8], pos + 8
        elif wire == 2:
            size, pos = _varint(data, pos)
            value, pos = data[pos : pos + size], pos + size
        elif wire == 5:
            value, pos = data[pos : pos + 4], pos + 4
        else:
            raise ValueError(f"unsupported protobuf wire type {wire}")
        if pos > len(data):
            raise ValueError("truncated message")
        out.append((number, wire, value))
    return out


def _int32(value: int) -> int:
    # Negative int32 values are sent as 64-bit two's complement varints.
    return value - (1 << 64) if value >= 1 << 63 else value


def parse_sentencepiece_model(data: bytes) -> SentencePieceModel:
    """Decode the bytes of a `.model` file."""
    model = SentencePieceModel()
    for number, _, value in _fields(data):
        if number == 1 and isinstance(value, bytes):
            piece = Piece("")
            for n, wire, v in _fields(value):
                if n == 1 and isinstance(v, bytes):
                    piece.piece = v.decode("utf-8")
                elif n == 2 and wire == 5:
                    piece.score = struct.unpack("<f", v)[0]
                elif n == 3 and wire == 0:
                    piece.type = int(v)
            model.pieces.append(piece)
        elif number == 2 and isinstance(value, bytes):
            for n, wire, v in _fields(value):
                if wire == 0:
                    ints = {3: "model_type", 40: "unk_id", 41: "bos_id", 42: "eos_id", 43: "pad_id"}
                    if n in ints:
                        setattr(model, ints[n], _int32(int(v)))
                    elif n == 35:
                        model.byte_fallback = bool(v)
                elif wire == 2:
                    strings = {45: "unk_piece", 46: "bos_piece", 47: "eos_piece", 48: "pad_piece"}
                    if n in strings:
                        setattr(model, strings[n], v.decode("utf-8"))
        elif number == 3 and isinstance(value, bytes):
            for n, wire, v in _fields(value):
                if n == 2 and wire == 2:
                    model.precompiled_charsmap = bytes(v)
                elif n == 3 and wire == 0:
                    model.add_dummy_prefix = bool(v)
                elif n == 4 and wire == 0:
                    model.remove_extra_whitespaces = bool(v)
    if not model.pieces:
        raise ValueError("not a SentencePiece model: it has no pieces")
    return model


def read_sentencepiece_model(path: str) -> SentencePieceModel:
    """Read and decode a SentencePiece `.model` file.

    Raises:
        ValueError: The file is not a valid SentencePiece model (the message names the file).
    """
    with open(path, "rb") as f:
        data = f.read()
    try:
        return parse_sentencepiece_model(data)
    except (ValueError, UnicodeDecodeError, struct.error) as error:
        raise ValueError(f"{path} is not a valid SentencePiece model file: {error}") from None
