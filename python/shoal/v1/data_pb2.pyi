from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class FetchParams(_message.Message):
    __slots__ = ("tasks", "files")
    TASKS_FIELD_NUMBER: _ClassVar[int]
    FILES_FIELD_NUMBER: _ClassVar[int]
    tasks: _containers.RepeatedScalarFieldContainer[int]
    files: bool
    def __init__(self, tasks: _Optional[_Iterable[int]] = ..., files: _Optional[bool] = ...) -> None: ...

class FetchChunk(_message.Message):
    __slots__ = ("pieces",)
    PIECES_FIELD_NUMBER: _ClassVar[int]
    pieces: _containers.RepeatedCompositeFieldContainer[ObjectPiece]
    def __init__(self, pieces: _Optional[_Iterable[_Union[ObjectPiece, _Mapping]]] = ...) -> None: ...

class ObjectPiece(_message.Message):
    __slots__ = ("task", "data", "offset", "total_size", "missing", "path")
    TASK_FIELD_NUMBER: _ClassVar[int]
    DATA_FIELD_NUMBER: _ClassVar[int]
    OFFSET_FIELD_NUMBER: _ClassVar[int]
    TOTAL_SIZE_FIELD_NUMBER: _ClassVar[int]
    MISSING_FIELD_NUMBER: _ClassVar[int]
    PATH_FIELD_NUMBER: _ClassVar[int]
    task: int
    data: bytes
    offset: int
    total_size: int
    missing: bool
    path: str
    def __init__(self, task: _Optional[int] = ..., data: _Optional[bytes] = ..., offset: _Optional[int] = ..., total_size: _Optional[int] = ..., missing: _Optional[bool] = ..., path: _Optional[str] = ...) -> None: ...
