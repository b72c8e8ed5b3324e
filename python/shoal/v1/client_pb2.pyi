from shoal.v1 import common_pb2 as _common_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class TaskStreamParams(_message.Message):
    __slots__ = ("since_unix_us", "title")
    SINCE_UNIX_US_FIELD_NUMBER: _ClassVar[int]
    TITLE_FIELD_NUMBER: _ClassVar[int]
    since_unix_us: int
    title: str
    def __init__(self, since_unix_us: _Optional[int] = ..., title: _Optional[str] = ...) -> None: ...

class TaskStream(_message.Message):
    __slots__ = ("tasks", "transfers", "dropped")
    TASKS_FIELD_NUMBER: _ClassVar[int]
    TRANSFERS_FIELD_NUMBER: _ClassVar[int]
    DROPPED_FIELD_NUMBER: _ClassVar[int]
    tasks: _containers.RepeatedCompositeFieldContainer[TaskRecord]
    transfers: _containers.RepeatedCompositeFieldContainer[TransferRecord]
    dropped: int
    def __init__(self, tasks: _Optional[_Iterable[_Union[TaskRecord, _Mapping]]] = ..., transfers: _Optional[_Iterable[_Union[TransferRecord, _Mapping]]] = ..., dropped: _Optional[int] = ...) -> None: ...

class TaskRecord(_message.Message):
    __slots__ = ("key", "prefix", "worker", "start_unix_us", "stop_unix_us", "nbytes", "ok")
    KEY_FIELD_NUMBER: _ClassVar[int]
    PREFIX_FIELD_NUMBER: _ClassVar[int]
    WORKER_FIELD_NUMBER: _ClassVar[int]
    START_UNIX_US_FIELD_NUMBER: _ClassVar[int]
    STOP_UNIX_US_FIELD_NUMBER: _ClassVar[int]
    NBYTES_FIELD_NUMBER: _ClassVar[int]
    OK_FIELD_NUMBER: _ClassVar[int]
    key: str
    prefix: str
    worker: str
    start_unix_us: int
    stop_unix_us: int
    nbytes: int
    ok: bool
    def __init__(self, key: _Optional[str] = ..., prefix: _Optional[str] = ..., worker: _Optional[str] = ..., start_unix_us: _Optional[int] = ..., stop_unix_us: _Optional[int] = ..., nbytes: _Optional[int] = ..., ok: _Optional[bool] = ...) -> None: ...

class TransferRecord(_message.Message):
    __slots__ = ("from_worker", "to_worker", "start_unix_us", "stop_unix_us", "bytes", "objects")
    FROM_WORKER_FIELD_NUMBER: _ClassVar[int]
    TO_WORKER_FIELD_NUMBER: _ClassVar[int]
    START_UNIX_US_FIELD_NUMBER: _ClassVar[int]
    STOP_UNIX_US_FIELD_NUMBER: _ClassVar[int]
    BYTES_FIELD_NUMBER: _ClassVar[int]
    OBJECTS_FIELD_NUMBER: _ClassVar[int]
    from_worker: str
    to_worker: str
    start_unix_us: int
    stop_unix_us: int
    bytes: int
    objects: int
    def __init__(self, from_worker: _Optional[str] = ..., to_worker: _Optional[str] = ..., start_unix_us: _Optional[int] = ..., stop_unix_us: _Optional[int] = ..., bytes: _Optional[int] = ..., objects: _Optional[int] = ...) -> None: ...

class PerformanceReport(_message.Message):
    __slots__ = ("html",)
    HTML_FIELD_NUMBER: _ClassVar[int]
    html: str
    def __init__(self, html: _Optional[str] = ...) -> None: ...

class ResourceAmount(_message.Message):
    __slots__ = ("name", "amount")
    NAME_FIELD_NUMBER: _ClassVar[int]
    AMOUNT_FIELD_NUMBER: _ClassVar[int]
    name: str
    amount: float
    def __init__(self, name: _Optional[str] = ..., amount: _Optional[float] = ...) -> None: ...

class HandshakeParams(_message.Message):
    __slots__ = ("version", "client_name")
    VERSION_FIELD_NUMBER: _ClassVar[int]
    CLIENT_NAME_FIELD_NUMBER: _ClassVar[int]
    version: _common_pb2.VersionInfo
    client_name: str
    def __init__(self, version: _Optional[_Union[_common_pb2.VersionInfo, _Mapping]] = ..., client_name: _Optional[str] = ...) -> None: ...

class HandshakeResult(_message.Message):
    __slots__ = ("version", "session_id", "cluster_name", "workers")
    VERSION_FIELD_NUMBER: _ClassVar[int]
    SESSION_ID_FIELD_NUMBER: _ClassVar[int]
    CLUSTER_NAME_FIELD_NUMBER: _ClassVar[int]
    WORKERS_FIELD_NUMBER: _ClassVar[int]
    version: _common_pb2.VersionInfo
    session_id: int
    cluster_name: str
    workers: int
    def __init__(self, version: _Optional[_Union[_common_pb2.VersionInfo, _Mapping]] = ..., session_id: _Optional[int] = ..., cluster_name: _Optional[str] = ..., workers: _Optional[int] = ...) -> None: ...

class GraphChunk(_message.Message):
    __slots__ = ("session_id", "tasks", "blobs")
    SESSION_ID_FIELD_NUMBER: _ClassVar[int]
    TASKS_FIELD_NUMBER: _ClassVar[int]
    BLOBS_FIELD_NUMBER: _ClassVar[int]
    session_id: int
    tasks: _containers.RepeatedCompositeFieldContainer[TaskSpec]
    blobs: _containers.RepeatedCompositeFieldContainer[_common_pb2.SharedBlob]
    def __init__(self, session_id: _Optional[int] = ..., tasks: _Optional[_Iterable[_Union[TaskSpec, _Mapping]]] = ..., blobs: _Optional[_Iterable[_Union[_common_pb2.SharedBlob, _Mapping]]] = ...) -> None: ...

class TaskSpec(_message.Message):
    __slots__ = ("key", "deps", "existing_deps", "payload", "priority", "wanted", "max_retries", "resources")
    KEY_FIELD_NUMBER: _ClassVar[int]
    DEPS_FIELD_NUMBER: _ClassVar[int]
    EXISTING_DEPS_FIELD_NUMBER: _ClassVar[int]
    PAYLOAD_FIELD_NUMBER: _ClassVar[int]
    PRIORITY_FIELD_NUMBER: _ClassVar[int]
    WANTED_FIELD_NUMBER: _ClassVar[int]
    MAX_RETRIES_FIELD_NUMBER: _ClassVar[int]
    RESOURCES_FIELD_NUMBER: _ClassVar[int]
    key: str
    deps: _containers.RepeatedScalarFieldContainer[int]
    existing_deps: _containers.RepeatedScalarFieldContainer[str]
    payload: _common_pb2.TaskPayload
    priority: int
    wanted: bool
    max_retries: int
    resources: _containers.RepeatedCompositeFieldContainer[ResourceAmount]
    def __init__(self, key: _Optional[str] = ..., deps: _Optional[_Iterable[int]] = ..., existing_deps: _Optional[_Iterable[str]] = ..., payload: _Optional[_Union[_common_pb2.TaskPayload, _Mapping]] = ..., priority: _Optional[int] = ..., wanted: _Optional[bool] = ..., max_retries: _Optional[int] = ..., resources: _Optional[_Iterable[_Union[ResourceAmount, _Mapping]]] = ...) -> None: ...

class SubmitGraphResult(_message.Message):
    __slots__ = ("graph_id", "tasks", "first_serial")
    GRAPH_ID_FIELD_NUMBER: _ClassVar[int]
    TASKS_FIELD_NUMBER: _ClassVar[int]
    FIRST_SERIAL_FIELD_NUMBER: _ClassVar[int]
    graph_id: int
    tasks: int
    first_serial: int
    def __init__(self, graph_id: _Optional[int] = ..., tasks: _Optional[int] = ..., first_serial: _Optional[int] = ...) -> None: ...

class SubscribeParams(_message.Message):
    __slots__ = ("session_id",)
    SESSION_ID_FIELD_NUMBER: _ClassVar[int]
    session_id: int
    def __init__(self, session_id: _Optional[int] = ...) -> None: ...

class ClientEvents(_message.Message):
    __slots__ = ("finished", "failed", "finished_serials")
    FINISHED_FIELD_NUMBER: _ClassVar[int]
    FAILED_FIELD_NUMBER: _ClassVar[int]
    FINISHED_SERIALS_FIELD_NUMBER: _ClassVar[int]
    finished: _containers.RepeatedCompositeFieldContainer[KeyFinished]
    failed: _containers.RepeatedCompositeFieldContainer[KeyFailed]
    finished_serials: _containers.RepeatedScalarFieldContainer[int]
    def __init__(self, finished: _Optional[_Iterable[_Union[KeyFinished, _Mapping]]] = ..., failed: _Optional[_Iterable[_Union[KeyFailed, _Mapping]]] = ..., finished_serials: _Optional[_Iterable[int]] = ...) -> None: ...

class KeyFinished(_message.Message):
    __slots__ = ("key", "size")
    KEY_FIELD_NUMBER: _ClassVar[int]
    SIZE_FIELD_NUMBER: _ClassVar[int]
    key: str
    size: int
    def __init__(self, key: _Optional[str] = ..., size: _Optional[int] = ...) -> None: ...

class KeyFailed(_message.Message):
    __slots__ = ("key", "error")
    KEY_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    key: str
    error: _common_pb2.TaskError
    def __init__(self, key: _Optional[str] = ..., error: _Optional[_Union[_common_pb2.TaskError, _Mapping]] = ...) -> None: ...

class GatherParams(_message.Message):
    __slots__ = ("session_id", "keys", "local_files")
    SESSION_ID_FIELD_NUMBER: _ClassVar[int]
    KEYS_FIELD_NUMBER: _ClassVar[int]
    LOCAL_FILES_FIELD_NUMBER: _ClassVar[int]
    session_id: int
    keys: _containers.RepeatedScalarFieldContainer[str]
    local_files: bool
    def __init__(self, session_id: _Optional[int] = ..., keys: _Optional[_Iterable[str]] = ..., local_files: _Optional[bool] = ...) -> None: ...

class GatherChunk(_message.Message):
    __slots__ = ("values",)
    VALUES_FIELD_NUMBER: _ClassVar[int]
    values: _containers.RepeatedCompositeFieldContainer[KeyValue]
    def __init__(self, values: _Optional[_Iterable[_Union[KeyValue, _Mapping]]] = ...) -> None: ...

class KeyValue(_message.Message):
    __slots__ = ("key", "data", "offset", "total_size", "path")
    KEY_FIELD_NUMBER: _ClassVar[int]
    DATA_FIELD_NUMBER: _ClassVar[int]
    OFFSET_FIELD_NUMBER: _ClassVar[int]
    TOTAL_SIZE_FIELD_NUMBER: _ClassVar[int]
    PATH_FIELD_NUMBER: _ClassVar[int]
    key: str
    data: bytes
    offset: int
    total_size: int
    path: str
    def __init__(self, key: _Optional[str] = ..., data: _Optional[bytes] = ..., offset: _Optional[int] = ..., total_size: _Optional[int] = ..., path: _Optional[str] = ...) -> None: ...

class KeysParams(_message.Message):
    __slots__ = ("session_id", "keys")
    SESSION_ID_FIELD_NUMBER: _ClassVar[int]
    KEYS_FIELD_NUMBER: _ClassVar[int]
    session_id: int
    keys: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, session_id: _Optional[int] = ..., keys: _Optional[_Iterable[str]] = ...) -> None: ...

class ClusterStatus(_message.Message):
    __slots__ = ("version", "cluster_name", "workers", "tasks", "desired_workers", "idle_seconds", "clients", "adaptive")
    VERSION_FIELD_NUMBER: _ClassVar[int]
    CLUSTER_NAME_FIELD_NUMBER: _ClassVar[int]
    WORKERS_FIELD_NUMBER: _ClassVar[int]
    TASKS_FIELD_NUMBER: _ClassVar[int]
    DESIRED_WORKERS_FIELD_NUMBER: _ClassVar[int]
    IDLE_SECONDS_FIELD_NUMBER: _ClassVar[int]
    CLIENTS_FIELD_NUMBER: _ClassVar[int]
    ADAPTIVE_FIELD_NUMBER: _ClassVar[int]
    version: _common_pb2.VersionInfo
    cluster_name: str
    workers: _containers.RepeatedCompositeFieldContainer[WorkerStatus]
    tasks: TaskCounts
    desired_workers: int
    idle_seconds: float
    clients: int
    adaptive: _common_pb2.AdaptiveTarget
    def __init__(self, version: _Optional[_Union[_common_pb2.VersionInfo, _Mapping]] = ..., cluster_name: _Optional[str] = ..., workers: _Optional[_Iterable[_Union[WorkerStatus, _Mapping]]] = ..., tasks: _Optional[_Union[TaskCounts, _Mapping]] = ..., desired_workers: _Optional[int] = ..., idle_seconds: _Optional[float] = ..., clients: _Optional[int] = ..., adaptive: _Optional[_Union[_common_pb2.AdaptiveTarget, _Mapping]] = ...) -> None: ...

class WorkerStatus(_message.Message):
    __slots__ = ("name", "cores", "memory_limit", "memory_used", "stored_bytes", "spilled_bytes", "assigned_tasks", "state", "data_address", "group", "resources", "cpu", "running", "shared_written_bytes")
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
    MEMORY_USED_FIELD_NUMBER: _ClassVar[int]
    STORED_BYTES_FIELD_NUMBER: _ClassVar[int]
    SPILLED_BYTES_FIELD_NUMBER: _ClassVar[int]
    ASSIGNED_TASKS_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    DATA_ADDRESS_FIELD_NUMBER: _ClassVar[int]
    GROUP_FIELD_NUMBER: _ClassVar[int]
    RESOURCES_FIELD_NUMBER: _ClassVar[int]
    CPU_FIELD_NUMBER: _ClassVar[int]
    RUNNING_FIELD_NUMBER: _ClassVar[int]
    SHARED_WRITTEN_BYTES_FIELD_NUMBER: _ClassVar[int]
    name: str
    cores: int
    memory_limit: int
    memory_used: int
    stored_bytes: int
    spilled_bytes: int
    assigned_tasks: int
    state: str
    data_address: str
    group: str
    resources: _containers.ScalarMap[str, float]
    cpu: float
    running: int
    shared_written_bytes: int
    def __init__(self, name: _Optional[str] = ..., cores: _Optional[int] = ..., memory_limit: _Optional[int] = ..., memory_used: _Optional[int] = ..., stored_bytes: _Optional[int] = ..., spilled_bytes: _Optional[int] = ..., assigned_tasks: _Optional[int] = ..., state: _Optional[str] = ..., data_address: _Optional[str] = ..., group: _Optional[str] = ..., resources: _Optional[_Mapping[str, float]] = ..., cpu: _Optional[float] = ..., running: _Optional[int] = ..., shared_written_bytes: _Optional[int] = ...) -> None: ...

class TaskCounts(_message.Message):
    __slots__ = ("waiting", "ready", "assigned", "memory", "released", "erred", "finished_total")
    WAITING_FIELD_NUMBER: _ClassVar[int]
    READY_FIELD_NUMBER: _ClassVar[int]
    ASSIGNED_FIELD_NUMBER: _ClassVar[int]
    MEMORY_FIELD_NUMBER: _ClassVar[int]
    RELEASED_FIELD_NUMBER: _ClassVar[int]
    ERRED_FIELD_NUMBER: _ClassVar[int]
    FINISHED_TOTAL_FIELD_NUMBER: _ClassVar[int]
    waiting: int
    ready: int
    assigned: int
    memory: int
    released: int
    erred: int
    finished_total: int
    def __init__(self, waiting: _Optional[int] = ..., ready: _Optional[int] = ..., assigned: _Optional[int] = ..., memory: _Optional[int] = ..., released: _Optional[int] = ..., erred: _Optional[int] = ..., finished_total: _Optional[int] = ...) -> None: ...
