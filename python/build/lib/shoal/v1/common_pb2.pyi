from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class ProtocolVersion(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    PROTOCOL_VERSION_UNSPECIFIED: _ClassVar[ProtocolVersion]
    PROTOCOL_VERSION_CURRENT: _ClassVar[ProtocolVersion]
PROTOCOL_VERSION_UNSPECIFIED: ProtocolVersion
PROTOCOL_VERSION_CURRENT: ProtocolVersion

class VersionInfo(_message.Message):
    __slots__ = ("protocol_version", "runtime_version")
    PROTOCOL_VERSION_FIELD_NUMBER: _ClassVar[int]
    RUNTIME_VERSION_FIELD_NUMBER: _ClassVar[int]
    protocol_version: int
    runtime_version: str
    def __init__(self, protocol_version: _Optional[int] = ..., runtime_version: _Optional[str] = ...) -> None: ...

class Empty(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class TaskPayload(_message.Message):
    __slots__ = ("builtin", "python")
    BUILTIN_FIELD_NUMBER: _ClassVar[int]
    PYTHON_FIELD_NUMBER: _ClassVar[int]
    builtin: BuiltinTask
    python: PythonTask
    def __init__(self, builtin: _Optional[_Union[BuiltinTask, _Mapping]] = ..., python: _Optional[_Union[PythonTask, _Mapping]] = ...) -> None: ...

class BuiltinTask(_message.Message):
    __slots__ = ("noop", "sleep_ms", "concat", "sum", "allocate_bytes", "fail", "constant")
    NOOP_FIELD_NUMBER: _ClassVar[int]
    SLEEP_MS_FIELD_NUMBER: _ClassVar[int]
    CONCAT_FIELD_NUMBER: _ClassVar[int]
    SUM_FIELD_NUMBER: _ClassVar[int]
    ALLOCATE_BYTES_FIELD_NUMBER: _ClassVar[int]
    FAIL_FIELD_NUMBER: _ClassVar[int]
    CONSTANT_FIELD_NUMBER: _ClassVar[int]
    noop: Empty
    sleep_ms: int
    concat: Empty
    sum: int
    allocate_bytes: int
    fail: str
    constant: bytes
    def __init__(self, noop: _Optional[_Union[Empty, _Mapping]] = ..., sleep_ms: _Optional[int] = ..., concat: _Optional[_Union[Empty, _Mapping]] = ..., sum: _Optional[int] = ..., allocate_bytes: _Optional[int] = ..., fail: _Optional[str] = ..., constant: _Optional[bytes] = ...) -> None: ...

class PythonTask(_message.Message):
    __slots__ = ("pickled", "shared")
    PICKLED_FIELD_NUMBER: _ClassVar[int]
    SHARED_FIELD_NUMBER: _ClassVar[int]
    pickled: bytes
    shared: int
    def __init__(self, pickled: _Optional[bytes] = ..., shared: _Optional[int] = ...) -> None: ...

class SharedBlob(_message.Message):
    __slots__ = ("id", "data")
    ID_FIELD_NUMBER: _ClassVar[int]
    DATA_FIELD_NUMBER: _ClassVar[int]
    id: int
    data: bytes
    def __init__(self, id: _Optional[int] = ..., data: _Optional[bytes] = ...) -> None: ...

class TaskError(_message.Message):
    __slots__ = ("kind", "message", "detail", "worker", "exception")
    KIND_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    DETAIL_FIELD_NUMBER: _ClassVar[int]
    WORKER_FIELD_NUMBER: _ClassVar[int]
    EXCEPTION_FIELD_NUMBER: _ClassVar[int]
    kind: str
    message: str
    detail: str
    worker: str
    exception: bytes
    def __init__(self, kind: _Optional[str] = ..., message: _Optional[str] = ..., detail: _Optional[str] = ..., worker: _Optional[str] = ..., exception: _Optional[bytes] = ...) -> None: ...
