from shoal.v1 import common_pb2 as _common_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class ExecutorRequest(_message.Message):
    __slots__ = ("tasks", "blobs", "released", "publish")
    TASKS_FIELD_NUMBER: _ClassVar[int]
    BLOBS_FIELD_NUMBER: _ClassVar[int]
    RELEASED_FIELD_NUMBER: _ClassVar[int]
    PUBLISH_FIELD_NUMBER: _ClassVar[int]
    tasks: _containers.RepeatedCompositeFieldContainer[ExecTask]
    blobs: _containers.RepeatedCompositeFieldContainer[_common_pb2.SharedBlob]
    released: _containers.RepeatedScalarFieldContainer[int]
    publish: _containers.RepeatedScalarFieldContainer[int]
    def __init__(self, tasks: _Optional[_Iterable[_Union[ExecTask, _Mapping]]] = ..., blobs: _Optional[_Iterable[_Union[_common_pb2.SharedBlob, _Mapping]]] = ..., released: _Optional[_Iterable[int]] = ..., publish: _Optional[_Iterable[int]] = ...) -> None: ...

class ExecTask(_message.Message):
    __slots__ = ("task", "key", "payload", "inputs", "input_tasks", "in_store", "wanted")
    TASK_FIELD_NUMBER: _ClassVar[int]
    KEY_FIELD_NUMBER: _ClassVar[int]
    PAYLOAD_FIELD_NUMBER: _ClassVar[int]
    INPUTS_FIELD_NUMBER: _ClassVar[int]
    INPUT_TASKS_FIELD_NUMBER: _ClassVar[int]
    IN_STORE_FIELD_NUMBER: _ClassVar[int]
    WANTED_FIELD_NUMBER: _ClassVar[int]
    task: int
    key: str
    payload: _common_pb2.PythonTask
    inputs: _containers.RepeatedScalarFieldContainer[bytes]
    input_tasks: _containers.RepeatedScalarFieldContainer[int]
    in_store: _containers.RepeatedScalarFieldContainer[bool]
    wanted: bool
    def __init__(self, task: _Optional[int] = ..., key: _Optional[str] = ..., payload: _Optional[_Union[_common_pb2.PythonTask, _Mapping]] = ..., inputs: _Optional[_Iterable[bytes]] = ..., input_tasks: _Optional[_Iterable[int]] = ..., in_store: _Optional[_Iterable[bool]] = ..., wanted: _Optional[bool] = ...) -> None: ...

class ExecutorReply(_message.Message):
    __slots__ = ("task", "value", "error", "duration_us", "in_store", "live", "size", "published")
    TASK_FIELD_NUMBER: _ClassVar[int]
    VALUE_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    DURATION_US_FIELD_NUMBER: _ClassVar[int]
    IN_STORE_FIELD_NUMBER: _ClassVar[int]
    LIVE_FIELD_NUMBER: _ClassVar[int]
    SIZE_FIELD_NUMBER: _ClassVar[int]
    PUBLISHED_FIELD_NUMBER: _ClassVar[int]
    task: int
    value: bytes
    error: _common_pb2.TaskError
    duration_us: int
    in_store: bool
    live: bool
    size: int
    published: _containers.RepeatedCompositeFieldContainer[Published]
    def __init__(self, task: _Optional[int] = ..., value: _Optional[bytes] = ..., error: _Optional[_Union[_common_pb2.TaskError, _Mapping]] = ..., duration_us: _Optional[int] = ..., in_store: _Optional[bool] = ..., live: _Optional[bool] = ..., size: _Optional[int] = ..., published: _Optional[_Iterable[_Union[Published, _Mapping]]] = ...) -> None: ...

class Published(_message.Message):
    __slots__ = ("task", "in_store", "value", "gone")
    TASK_FIELD_NUMBER: _ClassVar[int]
    IN_STORE_FIELD_NUMBER: _ClassVar[int]
    VALUE_FIELD_NUMBER: _ClassVar[int]
    GONE_FIELD_NUMBER: _ClassVar[int]
    task: int
    in_store: bool
    value: bytes
    gone: bool
    def __init__(self, task: _Optional[int] = ..., in_store: _Optional[bool] = ..., value: _Optional[bytes] = ..., gone: _Optional[bool] = ...) -> None: ...
