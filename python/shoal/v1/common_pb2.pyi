from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class ProtocolVersion(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    PROTOCOL_VERSION_UNSPECIFIED: _ClassVar[ProtocolVersion]
    PROTOCOL_VERSION_CURRENT: _ClassVar[ProtocolVersion]

class LossCause(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    LOSS_CAUSE_UNSPECIFIED: _ClassVar[LossCause]
    LOSS_CAUSE_OOM_KILLED: _ClassVar[LossCause]
    LOSS_CAUSE_CRASHED: _ClassVar[LossCause]
    LOSS_CAUSE_REMOVED: _ClassVar[LossCause]

class WorkerState(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    WORKER_STATE_RUNNING: _ClassVar[WorkerState]
    WORKER_STATE_PAUSED: _ClassVar[WorkerState]
PROTOCOL_VERSION_UNSPECIFIED: ProtocolVersion
PROTOCOL_VERSION_CURRENT: ProtocolVersion
LOSS_CAUSE_UNSPECIFIED: LossCause
LOSS_CAUSE_OOM_KILLED: LossCause
LOSS_CAUSE_CRASHED: LossCause
LOSS_CAUSE_REMOVED: LossCause
WORKER_STATE_RUNNING: WorkerState
WORKER_STATE_PAUSED: WorkerState

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
    __slots__ = ("kind", "message", "detail", "worker", "exception", "losses", "memory")
    KIND_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    DETAIL_FIELD_NUMBER: _ClassVar[int]
    WORKER_FIELD_NUMBER: _ClassVar[int]
    EXCEPTION_FIELD_NUMBER: _ClassVar[int]
    LOSSES_FIELD_NUMBER: _ClassVar[int]
    MEMORY_FIELD_NUMBER: _ClassVar[int]
    kind: str
    message: str
    detail: str
    worker: str
    exception: bytes
    losses: _containers.RepeatedCompositeFieldContainer[WorkerLoss]
    memory: MemoryFigures
    def __init__(self, kind: _Optional[str] = ..., message: _Optional[str] = ..., detail: _Optional[str] = ..., worker: _Optional[str] = ..., exception: _Optional[bytes] = ..., losses: _Optional[_Iterable[_Union[WorkerLoss, _Mapping]]] = ..., memory: _Optional[_Union[MemoryFigures, _Mapping]] = ...) -> None: ...

class WorkerLoss(_message.Message):
    __slots__ = ("worker", "cause", "memory_limit", "detail")
    WORKER_FIELD_NUMBER: _ClassVar[int]
    CAUSE_FIELD_NUMBER: _ClassVar[int]
    MEMORY_LIMIT_FIELD_NUMBER: _ClassVar[int]
    DETAIL_FIELD_NUMBER: _ClassVar[int]
    worker: str
    cause: LossCause
    memory_limit: int
    detail: str
    def __init__(self, worker: _Optional[str] = ..., cause: _Optional[_Union[LossCause, str]] = ..., memory_limit: _Optional[int] = ..., detail: _Optional[str] = ...) -> None: ...

class MemoryFigures(_message.Message):
    __slots__ = ("used", "limit", "threshold", "task_used")
    USED_FIELD_NUMBER: _ClassVar[int]
    LIMIT_FIELD_NUMBER: _ClassVar[int]
    THRESHOLD_FIELD_NUMBER: _ClassVar[int]
    TASK_USED_FIELD_NUMBER: _ClassVar[int]
    used: int
    limit: int
    threshold: float
    task_used: int
    def __init__(self, used: _Optional[int] = ..., limit: _Optional[int] = ..., threshold: _Optional[float] = ..., task_used: _Optional[int] = ...) -> None: ...

class WorkerGroupSpec(_message.Message):
    __slots__ = ("name", "cores", "memory_limit", "resources")
    class ResourcesEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: float
        def __init__(self, key: _Optional[str] = ..., value: _Optional[float] = ...) -> None: ...
    NAME_FIELD_NUMBER: _ClassVar[int]
    CORES_FIELD_NUMBER: _ClassVar[int]
    MEMORY_LIMIT_FIELD_NUMBER: _ClassVar[int]
    RESOURCES_FIELD_NUMBER: _ClassVar[int]
    name: str
    cores: int
    memory_limit: int
    resources: _containers.ScalarMap[str, float]
    def __init__(self, name: _Optional[str] = ..., cores: _Optional[int] = ..., memory_limit: _Optional[int] = ..., resources: _Optional[_Mapping[str, float]] = ...) -> None: ...

class GroupTarget(_message.Message):
    __slots__ = ("name", "desired_workers", "reason", "retire_order", "workers")
    NAME_FIELD_NUMBER: _ClassVar[int]
    DESIRED_WORKERS_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    RETIRE_ORDER_FIELD_NUMBER: _ClassVar[int]
    WORKERS_FIELD_NUMBER: _ClassVar[int]
    name: str
    desired_workers: int
    reason: str
    retire_order: _containers.RepeatedScalarFieldContainer[str]
    workers: int
    def __init__(self, name: _Optional[str] = ..., desired_workers: _Optional[int] = ..., reason: _Optional[str] = ..., retire_order: _Optional[_Iterable[str]] = ..., workers: _Optional[int] = ...) -> None: ...

class AdaptiveTarget(_message.Message):
    __slots__ = ("groups", "idle_seconds", "clients", "unfinished_tasks")
    GROUPS_FIELD_NUMBER: _ClassVar[int]
    IDLE_SECONDS_FIELD_NUMBER: _ClassVar[int]
    CLIENTS_FIELD_NUMBER: _ClassVar[int]
    UNFINISHED_TASKS_FIELD_NUMBER: _ClassVar[int]
    groups: _containers.RepeatedCompositeFieldContainer[GroupTarget]
    idle_seconds: float
    clients: int
    unfinished_tasks: int
    def __init__(self, groups: _Optional[_Iterable[_Union[GroupTarget, _Mapping]]] = ..., idle_seconds: _Optional[float] = ..., clients: _Optional[int] = ..., unfinished_tasks: _Optional[int] = ...) -> None: ...
