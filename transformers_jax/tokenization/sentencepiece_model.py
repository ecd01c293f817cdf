"""Reading a SentencePiece model file (``spiece.model``, ``sentencepiece.bpe.model``, ``spm.model``).

Only what HF v5's tokenizer classes take from it: the pieces with their scores and types, the unknown piece's id, the
model type and the normalizer's precompiled charsmap. The file is a ``ModelProto``; it is parsed with the schema
the ``sentencepiece`` package ships (``sentencepiece.sentencepiece_model_pb2``, which needs ``protobuf``). Both are
imported only here, so only folders without ``tokenizer.json`` need them.
"""
from __future__ import annotations

import dataclasses
from pathlib import Path

# SentencePiece.Type values (sentencepiece_model.proto).
NORMAL, UNKNOWN, CONTROL, USER_DEFINED, UNUSED, BYTE = 1, 2, 3, 4, 5, 6
# TrainerSpec.ModelType values.
MODEL_TYPES = {1: "unigram", 2: "bpe", 3: "word", 4: "char"}


@dataclasses.dataclass(frozen=True)
class SentencePieceModel:
    """What a SentencePiece model file holds, as far as the tokenizer classes use it.

    Attributes:
        pieces: ``(piece, score)`` in id order.
        types: each piece's ``SentencePiece.Type`` (1 normal, 2 unknown, 3 control, 4 user-defined, ...).
        unk_id: the trainer's ``unk_id``.
        model_type: ``"unigram"``, ``"bpe"``, ``"word"`` or ``"char"``.
        precompiled_charsmap: the normalizer's compiled rules, or ``None`` when it has none.
    """

    pieces: list[tuple[str, float]]
    types: list[int]
    unk_id: int
    model_type: str
    precompiled_charsmap: bytes | None


def _model_proto_class():
    try:
        from sentencepiece import sentencepiece_model_pb2
    except ImportError as err:
        raise ImportError(
            "Reading a SentencePiece model file needs the `sentencepiece` package (and `protobuf`, which it uses for "
            f'the model schema): pip install "sentencepiece[protobuf]". ({err})'
        ) from err
    except Exception as err:  # protobuf refuses a schema generated for a newer protobuf (VersionError)
        raise ImportError(
            f"The `sentencepiece` package's model schema does not load with the installed `protobuf`: {err}. "
            "Upgrade protobuf (pip install -U protobuf)."
        ) from err
    return sentencepiece_model_pb2.ModelProto


def read_sentencepiece_model(path: str | Path) -> SentencePieceModel:
    """Parse the SentencePiece model file at ``path``; a ``ValueError`` naming the file if it is not one."""
    proto_class = _model_proto_class()
    proto = proto_class()
    data = Path(path).read_bytes()
    try:
        proto.ParseFromString(data)
    except Exception as err:  # google.protobuf.message.DecodeError
        raise ValueError(f"{path} is not a SentencePiece model file: {err}") from err
    pieces = [(piece.piece, float(piece.score)) for piece in proto.pieces]
    types = [int(piece.type) for piece in proto.pieces]
    if UNKNOWN not in types:  # every trained model has its unknown piece
        raise ValueError(f"{path} is not a SentencePiece model file: it has no unknown piece among its {len(types)}.")
    charsmap = bytes(proto.normalizer_spec.precompiled_charsmap) or None
    model_type = MODEL_TYPES.get(int(proto.trainer_spec.model_type), str(proto.trainer_spec.model_type))
    return SentencePieceModel(pieces, types, int(proto.trainer_spec.unk_id), model_type, charsmap)
