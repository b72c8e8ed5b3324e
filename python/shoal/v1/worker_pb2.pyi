from shoal.v1 import common_pb2 as _common_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class WorkerMessage(_message.Message):
    __slots__ = ("register", "heartbeat", "finished", "failed", "data_added", "transfers", "lost")
    REGISTER_FIELD_NUMBER: _ClassVar[int]
    HEARTBEAT_FIELD_NUMBER: _ClassVar[int]
    FINISHED_FIELD_NUMBER: _ClassVar[int]
    FAILED_FIELD_NUMBER: _ClassVar[int]
    DATA_ADDED_FIELD_NUMBER: _ClassVar[int]
    TRANSFERS_FIELD_NUMBER: _ClassVar[int]
    LOST_FIELD_NUMBER: _ClassVar[int]
    register: Register
    heartbeat: Heartbeat
    finished: TasksFinished
    failed: TasksFailed
    data_added: DataAdded
    transfers: Transfers
    lost: DataLost
    def __init__(self, register: _Optional[_Union[Register, _Mapping]] = ..., heartbeat: _Optional[_Union[Heartbeat, _Mapping]] = ..., finished: _Optional[_Union[TasksFinished, _Mapping]] = ..., failed: _Optional[_Union[TasksFailed, _Mapping]] = ..., data_added: _Optional[_Union[DataAdded, _Mapping]] = ..., transfers: _Optional[_Union[Transfers, _Mapping]] = ..., lost: _Optional[_Union[DataLost, _Mapping]] = ...) -> None: ...

class SchedulerMessage(_message.Message):
    __slots__ = ("registered", "assign", "release", "cancel", "peers", "replicate", "shutdown")
    REGISTERED_FIELD_NUMBER: _ClassVar[int]
    ASSIGN_FIELD_NUMBER: _ClassVar[int]
    RELEASE_FIELD_NUMBER: _ClassVar[int]
    CANCEL_FIELD_NUMBER: _ClassVar[int]
    PEERS_FIELD_NUMBER: _ClassVar[int]
    REPLICATE_FIELD_NUMBER: _ClassVar[int]
    SHUTDOWN_FIELD_NUMBER: _ClassVar[int]
    registered: Registered
    assign: AssignTasks
    release: ReleaseData
    cancel: CancelTasks
    peers: PeersChanged
    replicate: Replicate
    shutdown: Shutdown
    def __init__(self, registered: _Optional[_Union[Registered, _Mapping]] = ..., assign: _Optional[_Union[AssignTasks, _Mapping]] = ..., release: _Optional[_Union[ReleaseData, _Mapping]] = ..., cancel: _Optional[_Union[CancelTasks, _Mapping]] = ..., peers: _Optional[_Union[PeersChanged, _Mapping]] = ..., replicate: _Optional[_Union[Replicate, _Mapping]] = ..., shutdown: _Optional[_Union[Shutdown, _Mapping]] = ...) -> None: ...

class Register(_message.Message):
    __slots__ = ("version", "name", "cores", "memory_limit", "data_address", "group", "resources")
    class ResourcesEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: float
        def __init__(self, key: _Optional[str] = ..., value: _Optional[float] = ...) -> None: ...
    VERSION_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    CORES_FIELD_NUMBER: _ClassVar[int]
    MEMORY_LIMIT_FIELD_NUMBER: _ClassVar[int]
    DATA_ADDRESS_FIELD_NUMBER: _ClassVar[int]
    GROUP_FIELD_NUMBER: _ClassVar[int]
    RESOURCES_FIELD_NUMBER: _ClassVar[int]
    version: _common_pb2.VersionInfo
    name: str
    cores: int
    memory_limit: int
    data_address: str
    group: str
    resources: _containers.ScalarMap[str, float]
    def __init__(self, version: _Optional[_Union[_common_pb2.VersionInfo, _Mapping]] = ..., name: _Optional[str] = ..., cores: _Optional[int] = ..., memory_limit: _Optional[int] = ..., data_address: _Optional[str] = ..., group: _Optional[str] = ..., resources: _Optional[_Mapping[str, float]] = ...) -> None: ...

class Registered(_message.Message):
    __slots__ = ("worker_id", "version", "heartbeat_interval_ms")
    WORKER_ID_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    HEARTBEAT_INTERVAL_MS_FIELD_NUMBER: _ClassVar[int]
    worker_id: int
    version: _common_pb2.VersionInfo
    heartbeat_interval_ms: int
    def __init__(self, worker_id: _Optional[int] = ..., version: _Optional[_Union[_common_pb2.VersionInfo, _Mapping]] = ..., heartbeat_interval_ms: _Optional[int] = ...) -> None: ...

class Heartbeat(_message.Message):
    __slots__ = ("memory_used", "stored_bytes", "spilled_bytes", "running", "state", "cpu", "shared_written_bytes")
    MEMORY_USED_FIELD_NUMBER: _ClassVar[int]
    STORED_BYTES_FIELD_NUMBER: _ClassVar[int]
    SPILLED_BYTES_FIELD_NUMBER: _ClassVar[int]
    RUNNING_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    CPU_FIELD_NUMBER: _ClassVar[int]
    SHARED_WRITTEN_BYTES_FIELD_NUMBER: _ClassVar[int]
    memory_used: int
    stored_bytes: int
    spilled_bytes: int
    running: int
    state: _common_pb2.WorkerState
    cpu: float
    shared_written_bytes: int
    def __init__(self, memory_used: _Optional[int] = ..., stored_bytes: _Optional[int] = ..., spilled_bytes: _Optional[int] = ..., running: _Optional[int] = ..., state: _Optional[_Union[_common_pb2.WorkerState, str]] = ..., cpu: _Optional[float] = ..., shared_written_bytes: _Optional[int] = ...) -> None: ...

class Transfers(_message.Message):
    __slots__ = ("transfers",)
    TRANSFERS_FIELD_NUMBER: _ClassVar[int]
    transfers: _containers.RepeatedCompositeFieldContainer[Transfer]
    def __init__(self, transfers: _Optional[_Iterable[_Union[Transfer, _Mapping]]] = ...) -> None: ...

class Transfer(_message.Message):
    __slots__ = ("bytes", "objects", "duration_us", "ended_ago_us")
    FROM_FIELD_NUMBER: _ClassVar[int]
    BYTES_FIELD_NUMBER: _ClassVar[int]
    OBJECTS_FIELD_NUMBER: _ClassVar[int]
    DURATION_US_FIELD_NUMBER: _ClassVar[int]
    ENDED_AGO_US_FIELD_NUMBER: _ClassVar[int]
    bytes: int
    objects: int
    duration_us: int
    ended_ago_us: int
    def __init__(self, bytes: _Optional[int] = ..., objects: _Optional[int] = ..., duration_us: _Optional[int] = ..., ended_ago_us: _Optional[int] = ..., **kwargs) -> None: ...

class TasksFinished(_message.Message):
    __slots__ = ("tasks",)
    TASKS_FIELD_NUMBER: _ClassVar[int]
    tasks: _containers.RepeatedCompositeFieldContainer[TaskFinished]
    def __init__(self, tasks: _Optional[_Iterable[_Union[TaskFinished, _Mapping]]] = ...) -> None: ...

class TaskFinished(_message.Message):
    __slots__ = ("task", "size", "duration_us")
    TASK_FIELD_NUMBER: _ClassVar[int]
    SIZE_FIELD_NUMBER: _ClassVar[int]
    DURATION_US_FIELD_NUMBER: _ClassVar[int]
    task: int
    size: int
    duration_us: int
    def __init__(self, task: _Optional[int] = ..., size: _Optional[int] = ..., duration_us: _Optional[int] = ...) -> None: ...

class TasksFailed(_message.Message):
    __slots__ = ("tasks",)
    TASKS_FIELD_NUMBER: _ClassVar[int]
    tasks: _containers.RepeatedCompositeFieldContainer[TaskFailed]
    def __init__(self, tasks: _Optional[_Iterable[_Union[TaskFailed, _Mapping]]] = ...) -> None: ...

class TaskFailed(_message.Message):
    __slots__ = ("task", "error", "missing_input", "missing_task", "missing_from")
    TASK_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    MISSING_INPUT_FIELD_NUMBER: _ClassVar[int]
    MISSING_TASK_FIELD_NUMBER: _ClassVar[int]
    MISSING_FROM_FIELD_NUMBER: _ClassVar[int]
    task: int
    error: _common_pb2.TaskError
    missing_input: bool
    missing_task: int
    missing_from: int
    def __init__(self, task: _Optional[int] = ..., error: _Optional[_Union[_common_pb2.TaskError, _Mapping]] = ..., missing_input: _Optional[bool] = ..., missing_task: _Optional[int] = ..., missing_from: _Optional[int] = ...) -> None: ...

class DataLost(_message.Message):
    __slots__ = ("tasks",)
    TASKS_FIELD_NUMBER: _ClassVar[int]
    tasks: _containers.RepeatedScalarFieldContainer[int]
    def __init__(self, tasks: _Optional[_Iterable[int]] = ...) -> None: ...

class DataAdded(_message.Message):
    __slots__ = ("tasks",)
    TASKS_FIELD_NUMBER: _ClassVar[int]
    tasks: _containers.RepeatedScalarFieldContainer[int]
    def __init__(self, tasks: _Optional[_Iterable[int]] = ...) -> None: ...

class AssignTasks(_message.Message):
    __slots__ = ("tasks", "blobs")
    TASKS_FIELD_NUMBER: _ClassVar[int]
    BLOBS_FIELD_NUMBER: _ClassVar[int]
    tasks: _containers.RepeatedCompositeFieldContainer[TaskAssignment]
    blobs: _containers.RepeatedCompositeFieldContainer[_common_pb2.SharedBlob]
    def __init__(self, tasks: _Optional[_Iterable[_Union[TaskAssignment, _Mapping]]] = ..., blobs: _Optional[_Iterable[_Union[_common_pb2.SharedBlob, _Mapping]]] = ...) -> None: ...

class TaskAssignment(_message.Message):
    __slots__ = ("task", "key", "payload", "inputs", "wanted", "families")
    TASK_FIELD_NUMBER: _ClassVar[int]
    KEY_FIELD_NUMBER: _ClassVar[int]
    PAYLOAD_FIELD_NUMBER: _ClassVar[int]
    INPUTS_FIELD_NUMBER: _ClassVar[int]
    WANTED_FIELD_NUMBER: _ClassVar[int]
    FAMILIES_FIELD_NUMBER: _ClassVar[int]
    task: int
    key: str
    payload: _common_pb2.TaskPayload
    inputs: _containers.RepeatedCompositeFieldContainer[DataLocation]
    wanted: bool
    families: _containers.RepeatedScalarFieldContainer[int]
    def __init__(self, task: _Optional[int] = ..., key: _Optional[str] = ..., payload: _Optional[_Union[_common_pb2.TaskPayload, _Mapping]] = ..., inputs: _Optional[_Iterable[_Union[DataLocation, _Mapping]]] = ..., wanted: _Optional[bool] = ..., families: _Optional[_Iterable[int]] = ...) -> None: ...

class DataLocation(_message.Message):
    __slots__ = ("task", "workers")
    TASK_FIELD_NUMBER: _ClassVar[int]
    WORKERS_FIELD_NUMBER: _ClassVar[int]
    task: int
    workers: _containers.RepeatedScalarFieldContainer[int]
    def __init__(self, task: _Optional[int] = ..., workers: _Optional[_Iterable[int]] = ...) -> None: ...

class ReleaseData(_message.Message):
    __slots__ = ("tasks",)
    TASKS_FIELD_NUMBER: _ClassVar[int]
    tasks: _containers.RepeatedScalarFieldContainer[int]
    def __init__(self, tasks: _Optional[_Iterable[int]] = ...) -> None: ...

class CancelTasks(_message.Message):
    __slots__ = ("tasks",)
    TASKS_FIELD_NUMBER: _ClassVar[int]
    tasks: _containers.RepeatedScalarFieldContainer[int]
    def __init__(self, tasks: _Optional[_Iterable[int]] = ...) -> None: ...

class PeersChanged(_message.Message):
    __slots__ = ("added", "removed")
    ADDED_FIELD_NUMBER: _ClassVar[int]
    REMOVED_FIELD_NUMBER: _ClassVar[int]
    added: _containers.RepeatedCompositeFieldContainer[Peer]
    removed: _containers.RepeatedScalarFieldContainer[int]
    def __init__(self, added: _Optional[_Iterable[_Union[Peer, _Mapping]]] = ..., removed: _Optional[_Iterable[int]] = ...) -> None: ...

class Peer(_message.Message):
    __slots__ = ("worker_id", "name", "data_address")
    WORKER_ID_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    DATA_ADDRESS_FIELD_NUMBER: _ClassVar[int]
    worker_id: int
    name: str
    data_address: str
    def __init__(self, worker_id: _Optional[int] = ..., name: _Optional[str] = ..., data_address: _Optional[str] = ...) -> None: ...

class Replicate(_message.Message):
    __slots__ = ("tasks",)
    TASKS_FIELD_NUMBER: _ClassVar[int]
    tasks: _containers.RepeatedCompositeFieldContainer[DataLocation]
    def __init__(self, tasks: _Optional[_Iterable[_Union[DataLocation, _Mapping]]] = ...) -> None: ...

class Shutdown(_message.Message):
    __slots__ = ("reason",)
    REASON_FIELD_NUMBER: _ClassVar[int]
    reason: str
    def __init__(self, reason: _Optional[str] = ...) -> None: ...
