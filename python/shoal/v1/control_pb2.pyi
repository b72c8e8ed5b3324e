from shoal.v1 import common_pb2 as _common_pb2
from shoal.v1 import client_pb2 as _client_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class RetireWorkersParams(_message.Message):
    __slots__ = ("names", "deadline_seconds")
    NAMES_FIELD_NUMBER: _ClassVar[int]
    DEADLINE_SECONDS_FIELD_NUMBER: _ClassVar[int]
    names: _containers.RepeatedScalarFieldContainer[str]
    deadline_seconds: float
    def __init__(self, names: _Optional[_Iterable[str]] = ..., deadline_seconds: _Optional[float] = ...) -> None: ...

class RetireWorkersResult(_message.Message):
    __slots__ = ("retired", "refused")
    class RefusedEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    RETIRED_FIELD_NUMBER: _ClassVar[int]
    REFUSED_FIELD_NUMBER: _ClassVar[int]
    retired: _containers.RepeatedScalarFieldContainer[str]
    refused: _containers.ScalarMap[str, str]
    def __init__(self, retired: _Optional[_Iterable[str]] = ..., refused: _Optional[_Mapping[str, str]] = ...) -> None: ...

class WorkerLostParams(_message.Message):
    __slots__ = ("name", "reason", "cause", "memory_limit")
    NAME_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    CAUSE_FIELD_NUMBER: _ClassVar[int]
    MEMORY_LIMIT_FIELD_NUMBER: _ClassVar[int]
    name: str
    reason: str
    cause: _common_pb2.LossCause
    memory_limit: int
    def __init__(self, name: _Optional[str] = ..., reason: _Optional[str] = ..., cause: _Optional[_Union[_common_pb2.LossCause, str]] = ..., memory_limit: _Optional[int] = ...) -> None: ...

class WorkerLostResult(_message.Message):
    __slots__ = ("running", "running_total", "known")
    RUNNING_FIELD_NUMBER: _ClassVar[int]
    RUNNING_TOTAL_FIELD_NUMBER: _ClassVar[int]
    KNOWN_FIELD_NUMBER: _ClassVar[int]
    running: _containers.RepeatedScalarFieldContainer[str]
    running_total: int
    known: bool
    def __init__(self, running: _Optional[_Iterable[str]] = ..., running_total: _Optional[int] = ..., known: _Optional[bool] = ...) -> None: ...

class AdaptiveParams(_message.Message):
    __slots__ = ("groups", "target_duration_seconds")
    GROUPS_FIELD_NUMBER: _ClassVar[int]
    TARGET_DURATION_SECONDS_FIELD_NUMBER: _ClassVar[int]
    groups: _containers.RepeatedCompositeFieldContainer[_common_pb2.WorkerGroupSpec]
    target_duration_seconds: float
    def __init__(self, groups: _Optional[_Iterable[_Union[_common_pb2.WorkerGroupSpec, _Mapping]]] = ..., target_duration_seconds: _Optional[float] = ...) -> None: ...
