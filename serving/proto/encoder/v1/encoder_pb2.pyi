from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class Pooling(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    POOLING_UNSPECIFIED: _ClassVar[Pooling]
    POOLING_LAST: _ClassVar[Pooling]
    POOLING_MEAN: _ClassVar[Pooling]
    POOLING_MAX: _ClassVar[Pooling]

class Truncation(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    TRUNCATION_UNSPECIFIED: _ClassVar[Truncation]
    TRUNCATION_NONE: _ClassVar[Truncation]
    TRUNCATION_KEEP_FIRST: _ClassVar[Truncation]
    TRUNCATION_KEEP_LAST: _ClassVar[Truncation]
POOLING_UNSPECIFIED: Pooling
POOLING_LAST: Pooling
POOLING_MEAN: Pooling
POOLING_MAX: Pooling
TRUNCATION_UNSPECIFIED: Truncation
TRUNCATION_NONE: Truncation
TRUNCATION_KEEP_FIRST: Truncation
TRUNCATION_KEEP_LAST: Truncation

class Tensor(_message.Message):
    __slots__ = ("shape", "data")
    SHAPE_FIELD_NUMBER: _ClassVar[int]
    DATA_FIELD_NUMBER: _ClassVar[int]
    shape: _containers.RepeatedScalarFieldContainer[int]
    data: bytes
    def __init__(self, shape: _Optional[_Iterable[int]] = ..., data: _Optional[bytes] = ...) -> None: ...

class EncodeRequest(_message.Message):
    __slots__ = ("texts", "pooling", "normalize", "truncation", "max_tokens", "return_token_vectors", "request_id", "initial_states", "return_state", "model")
    TEXTS_FIELD_NUMBER: _ClassVar[int]
    POOLING_FIELD_NUMBER: _ClassVar[int]
    NORMALIZE_FIELD_NUMBER: _ClassVar[int]
    TRUNCATION_FIELD_NUMBER: _ClassVar[int]
    MAX_TOKENS_FIELD_NUMBER: _ClassVar[int]
    RETURN_TOKEN_VECTORS_FIELD_NUMBER: _ClassVar[int]
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    INITIAL_STATES_FIELD_NUMBER: _ClassVar[int]
    RETURN_STATE_FIELD_NUMBER: _ClassVar[int]
    MODEL_FIELD_NUMBER: _ClassVar[int]
    texts: _containers.RepeatedScalarFieldContainer[str]
    pooling: Pooling
    normalize: bool
    truncation: Truncation
    max_tokens: int
    return_token_vectors: bool
    request_id: str
    initial_states: _containers.RepeatedCompositeFieldContainer[State]
    return_state: bool
    model: str
    def __init__(self, texts: _Optional[_Iterable[str]] = ..., pooling: _Optional[_Union[Pooling, str]] = ..., normalize: _Optional[bool] = ..., truncation: _Optional[_Union[Truncation, str]] = ..., max_tokens: _Optional[int] = ..., return_token_vectors: _Optional[bool] = ..., request_id: _Optional[str] = ..., initial_states: _Optional[_Iterable[_Union[State, _Mapping]]] = ..., return_state: _Optional[bool] = ..., model: _Optional[str] = ...) -> None: ...

class State(_message.Message):
    __slots__ = ("version", "graph_sha256", "cell", "num_layers", "hidden_size", "h", "c", "tokens", "token_sum", "token_max")
    VERSION_FIELD_NUMBER: _ClassVar[int]
    GRAPH_SHA256_FIELD_NUMBER: _ClassVar[int]
    CELL_FIELD_NUMBER: _ClassVar[int]
    NUM_LAYERS_FIELD_NUMBER: _ClassVar[int]
    HIDDEN_SIZE_FIELD_NUMBER: _ClassVar[int]
    H_FIELD_NUMBER: _ClassVar[int]
    C_FIELD_NUMBER: _ClassVar[int]
    TOKENS_FIELD_NUMBER: _ClassVar[int]
    TOKEN_SUM_FIELD_NUMBER: _ClassVar[int]
    TOKEN_MAX_FIELD_NUMBER: _ClassVar[int]
    version: int
    graph_sha256: str
    cell: str
    num_layers: int
    hidden_size: int
    h: Tensor
    c: Tensor
    tokens: int
    token_sum: _containers.RepeatedScalarFieldContainer[float]
    token_max: Tensor
    def __init__(self, version: _Optional[int] = ..., graph_sha256: _Optional[str] = ..., cell: _Optional[str] = ..., num_layers: _Optional[int] = ..., hidden_size: _Optional[int] = ..., h: _Optional[_Union[Tensor, _Mapping]] = ..., c: _Optional[_Union[Tensor, _Mapping]] = ..., tokens: _Optional[int] = ..., token_sum: _Optional[_Iterable[float]] = ..., token_max: _Optional[_Union[Tensor, _Mapping]] = ...) -> None: ...

class Encoding(_message.Message):
    __slots__ = ("tokens", "ids", "sentence_vector", "token_vectors", "truncated", "original_token_count", "state")
    TOKENS_FIELD_NUMBER: _ClassVar[int]
    IDS_FIELD_NUMBER: _ClassVar[int]
    SENTENCE_VECTOR_FIELD_NUMBER: _ClassVar[int]
    TOKEN_VECTORS_FIELD_NUMBER: _ClassVar[int]
    TRUNCATED_FIELD_NUMBER: _ClassVar[int]
    ORIGINAL_TOKEN_COUNT_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    tokens: _containers.RepeatedScalarFieldContainer[str]
    ids: _containers.RepeatedScalarFieldContainer[int]
    sentence_vector: Tensor
    token_vectors: Tensor
    truncated: bool
    original_token_count: int
    state: State
    def __init__(self, tokens: _Optional[_Iterable[str]] = ..., ids: _Optional[_Iterable[int]] = ..., sentence_vector: _Optional[_Union[Tensor, _Mapping]] = ..., token_vectors: _Optional[_Union[Tensor, _Mapping]] = ..., truncated: _Optional[bool] = ..., original_token_count: _Optional[int] = ..., state: _Optional[_Union[State, _Mapping]] = ...) -> None: ...

class Timing(_message.Message):
    __slots__ = ("tokenize_us", "queue_us", "inference_us", "total_us")
    TOKENIZE_US_FIELD_NUMBER: _ClassVar[int]
    QUEUE_US_FIELD_NUMBER: _ClassVar[int]
    INFERENCE_US_FIELD_NUMBER: _ClassVar[int]
    TOTAL_US_FIELD_NUMBER: _ClassVar[int]
    tokenize_us: int
    queue_us: int
    inference_us: int
    total_us: int
    def __init__(self, tokenize_us: _Optional[int] = ..., queue_us: _Optional[int] = ..., inference_us: _Optional[int] = ..., total_us: _Optional[int] = ...) -> None: ...

class EncodeResponse(_message.Message):
    __slots__ = ("encodings", "timing", "request_id", "model_version")
    ENCODINGS_FIELD_NUMBER: _ClassVar[int]
    TIMING_FIELD_NUMBER: _ClassVar[int]
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    MODEL_VERSION_FIELD_NUMBER: _ClassVar[int]
    encodings: _containers.RepeatedCompositeFieldContainer[Encoding]
    timing: Timing
    request_id: str
    model_version: str
    def __init__(self, encodings: _Optional[_Iterable[_Union[Encoding, _Mapping]]] = ..., timing: _Optional[_Union[Timing, _Mapping]] = ..., request_id: _Optional[str] = ..., model_version: _Optional[str] = ...) -> None: ...

class DocumentPiece(_message.Message):
    __slots__ = ("text", "pooling", "normalize", "initial_state", "request_id", "model")
    TEXT_FIELD_NUMBER: _ClassVar[int]
    POOLING_FIELD_NUMBER: _ClassVar[int]
    NORMALIZE_FIELD_NUMBER: _ClassVar[int]
    INITIAL_STATE_FIELD_NUMBER: _ClassVar[int]
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    MODEL_FIELD_NUMBER: _ClassVar[int]
    text: str
    pooling: Pooling
    normalize: bool
    initial_state: State
    request_id: str
    model: str
    def __init__(self, text: _Optional[str] = ..., pooling: _Optional[_Union[Pooling, str]] = ..., normalize: _Optional[bool] = ..., initial_state: _Optional[_Union[State, _Mapping]] = ..., request_id: _Optional[str] = ..., model: _Optional[str] = ...) -> None: ...

class DocumentEncoding(_message.Message):
    __slots__ = ("sentence_vector", "state", "token_count", "char_count", "request_id", "model_version")
    SENTENCE_VECTOR_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    TOKEN_COUNT_FIELD_NUMBER: _ClassVar[int]
    CHAR_COUNT_FIELD_NUMBER: _ClassVar[int]
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    MODEL_VERSION_FIELD_NUMBER: _ClassVar[int]
    sentence_vector: Tensor
    state: State
    token_count: int
    char_count: int
    request_id: str
    model_version: str
    def __init__(self, sentence_vector: _Optional[_Union[Tensor, _Mapping]] = ..., state: _Optional[_Union[State, _Mapping]] = ..., token_count: _Optional[int] = ..., char_count: _Optional[int] = ..., request_id: _Optional[str] = ..., model_version: _Optional[str] = ...) -> None: ...

class TokenizeRequest(_message.Message):
    __slots__ = ("texts", "model")
    TEXTS_FIELD_NUMBER: _ClassVar[int]
    MODEL_FIELD_NUMBER: _ClassVar[int]
    texts: _containers.RepeatedScalarFieldContainer[str]
    model: str
    def __init__(self, texts: _Optional[_Iterable[str]] = ..., model: _Optional[str] = ...) -> None: ...

class TokenizedText(_message.Message):
    __slots__ = ("tokens", "ids", "unknown_count")
    TOKENS_FIELD_NUMBER: _ClassVar[int]
    IDS_FIELD_NUMBER: _ClassVar[int]
    UNKNOWN_COUNT_FIELD_NUMBER: _ClassVar[int]
    tokens: _containers.RepeatedScalarFieldContainer[str]
    ids: _containers.RepeatedScalarFieldContainer[int]
    unknown_count: int
    def __init__(self, tokens: _Optional[_Iterable[str]] = ..., ids: _Optional[_Iterable[int]] = ..., unknown_count: _Optional[int] = ...) -> None: ...

class TokenizeResponse(_message.Message):
    __slots__ = ("texts", "model_version")
    TEXTS_FIELD_NUMBER: _ClassVar[int]
    MODEL_VERSION_FIELD_NUMBER: _ClassVar[int]
    texts: _containers.RepeatedCompositeFieldContainer[TokenizedText]
    model_version: str
    def __init__(self, texts: _Optional[_Iterable[_Union[TokenizedText, _Mapping]]] = ..., model_version: _Optional[str] = ...) -> None: ...

class GetModelInfoRequest(_message.Message):
    __slots__ = ("model",)
    MODEL_FIELD_NUMBER: _ClassVar[int]
    model: str
    def __init__(self, model: _Optional[str] = ...) -> None: ...

class ListModelsRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class ListModelsResponse(_message.Message):
    __slots__ = ("models",)
    MODELS_FIELD_NUMBER: _ClassVar[int]
    models: _containers.RepeatedCompositeFieldContainer[ServedModel]
    def __init__(self, models: _Optional[_Iterable[_Union[ServedModel, _Mapping]]] = ...) -> None: ...

class ServedModel(_message.Message):
    __slots__ = ("name", "version", "is_default")
    NAME_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    IS_DEFAULT_FIELD_NUMBER: _ClassVar[int]
    name: str
    version: str
    is_default: bool
    def __init__(self, name: _Optional[str] = ..., version: _Optional[str] = ..., is_default: _Optional[bool] = ...) -> None: ...

class Limits(_message.Message):
    __slots__ = ("max_texts_per_request", "max_chars_per_text", "max_tokens_per_text", "max_message_bytes", "max_queued_texts")
    MAX_TEXTS_PER_REQUEST_FIELD_NUMBER: _ClassVar[int]
    MAX_CHARS_PER_TEXT_FIELD_NUMBER: _ClassVar[int]
    MAX_TOKENS_PER_TEXT_FIELD_NUMBER: _ClassVar[int]
    MAX_MESSAGE_BYTES_FIELD_NUMBER: _ClassVar[int]
    MAX_QUEUED_TEXTS_FIELD_NUMBER: _ClassVar[int]
    max_texts_per_request: int
    max_chars_per_text: int
    max_tokens_per_text: int
    max_message_bytes: int
    max_queued_texts: int
    def __init__(self, max_texts_per_request: _Optional[int] = ..., max_chars_per_text: _Optional[int] = ..., max_tokens_per_text: _Optional[int] = ..., max_message_bytes: _Optional[int] = ..., max_queued_texts: _Optional[int] = ...) -> None: ...

class TokenizerInfo(_message.Message):
    __slots__ = ("name", "version", "hmm", "whitespace", "user_dictionary", "backend")
    NAME_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    HMM_FIELD_NUMBER: _ClassVar[int]
    WHITESPACE_FIELD_NUMBER: _ClassVar[int]
    USER_DICTIONARY_FIELD_NUMBER: _ClassVar[int]
    BACKEND_FIELD_NUMBER: _ClassVar[int]
    name: str
    version: str
    hmm: bool
    whitespace: str
    user_dictionary: bool
    backend: str
    def __init__(self, name: _Optional[str] = ..., version: _Optional[str] = ..., hmm: _Optional[bool] = ..., whitespace: _Optional[str] = ..., user_dictionary: _Optional[bool] = ..., backend: _Optional[str] = ...) -> None: ...

class ModelInfo(_message.Message):
    __slots__ = ("cell", "embedding_dim", "hidden_size", "num_layers", "bidirectional", "output_dim", "vocab_size", "pad_id", "unk_id", "tokenizer", "bundle_sha256", "execution_provider", "intra_op_threads", "limits", "golden_max_abs_err", "server_version", "default_pooling", "default_normalize", "model_card", "model_name", "model_version", "quantization")
    class BundleSha256Entry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    CELL_FIELD_NUMBER: _ClassVar[int]
    EMBEDDING_DIM_FIELD_NUMBER: _ClassVar[int]
    HIDDEN_SIZE_FIELD_NUMBER: _ClassVar[int]
    NUM_LAYERS_FIELD_NUMBER: _ClassVar[int]
    BIDIRECTIONAL_FIELD_NUMBER: _ClassVar[int]
    OUTPUT_DIM_FIELD_NUMBER: _ClassVar[int]
    VOCAB_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAD_ID_FIELD_NUMBER: _ClassVar[int]
    UNK_ID_FIELD_NUMBER: _ClassVar[int]
    TOKENIZER_FIELD_NUMBER: _ClassVar[int]
    BUNDLE_SHA256_FIELD_NUMBER: _ClassVar[int]
    EXECUTION_PROVIDER_FIELD_NUMBER: _ClassVar[int]
    INTRA_OP_THREADS_FIELD_NUMBER: _ClassVar[int]
    LIMITS_FIELD_NUMBER: _ClassVar[int]
    GOLDEN_MAX_ABS_ERR_FIELD_NUMBER: _ClassVar[int]
    SERVER_VERSION_FIELD_NUMBER: _ClassVar[int]
    DEFAULT_POOLING_FIELD_NUMBER: _ClassVar[int]
    DEFAULT_NORMALIZE_FIELD_NUMBER: _ClassVar[int]
    MODEL_CARD_FIELD_NUMBER: _ClassVar[int]
    MODEL_NAME_FIELD_NUMBER: _ClassVar[int]
    MODEL_VERSION_FIELD_NUMBER: _ClassVar[int]
    QUANTIZATION_FIELD_NUMBER: _ClassVar[int]
    cell: str
    embedding_dim: int
    hidden_size: int
    num_layers: int
    bidirectional: bool
    output_dim: int
    vocab_size: int
    pad_id: int
    unk_id: int
    tokenizer: TokenizerInfo
    bundle_sha256: _containers.ScalarMap[str, str]
    execution_provider: str
    intra_op_threads: int
    limits: Limits
    golden_max_abs_err: float
    server_version: str
    default_pooling: Pooling
    default_normalize: bool
    model_card: ModelCard
    model_name: str
    model_version: str
    quantization: Quantization
    def __init__(self, cell: _Optional[str] = ..., embedding_dim: _Optional[int] = ..., hidden_size: _Optional[int] = ..., num_layers: _Optional[int] = ..., bidirectional: _Optional[bool] = ..., output_dim: _Optional[int] = ..., vocab_size: _Optional[int] = ..., pad_id: _Optional[int] = ..., unk_id: _Optional[int] = ..., tokenizer: _Optional[_Union[TokenizerInfo, _Mapping]] = ..., bundle_sha256: _Optional[_Mapping[str, str]] = ..., execution_provider: _Optional[str] = ..., intra_op_threads: _Optional[int] = ..., limits: _Optional[_Union[Limits, _Mapping]] = ..., golden_max_abs_err: _Optional[float] = ..., server_version: _Optional[str] = ..., default_pooling: _Optional[_Union[Pooling, str]] = ..., default_normalize: _Optional[bool] = ..., model_card: _Optional[_Union[ModelCard, _Mapping]] = ..., model_name: _Optional[str] = ..., model_version: _Optional[str] = ..., quantization: _Optional[_Union[Quantization, _Mapping]] = ...) -> None: ...

class Quantization(_message.Message):
    __slots__ = ("scheme", "method", "float_max_abs_err", "float_atol", "invariance_max_abs_err", "invariance_atol")
    SCHEME_FIELD_NUMBER: _ClassVar[int]
    METHOD_FIELD_NUMBER: _ClassVar[int]
    FLOAT_MAX_ABS_ERR_FIELD_NUMBER: _ClassVar[int]
    FLOAT_ATOL_FIELD_NUMBER: _ClassVar[int]
    INVARIANCE_MAX_ABS_ERR_FIELD_NUMBER: _ClassVar[int]
    INVARIANCE_ATOL_FIELD_NUMBER: _ClassVar[int]
    scheme: str
    method: str
    float_max_abs_err: float
    float_atol: float
    invariance_max_abs_err: float
    invariance_atol: float
    def __init__(self, scheme: _Optional[str] = ..., method: _Optional[str] = ..., float_max_abs_err: _Optional[float] = ..., float_atol: _Optional[float] = ..., invariance_max_abs_err: _Optional[float] = ..., invariance_atol: _Optional[float] = ...) -> None: ...

class ModelCard(_message.Message):
    __slots__ = ("objective", "data", "split", "seed", "examples", "quality", "notes")
    class ExamplesEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: int
        def __init__(self, key: _Optional[str] = ..., value: _Optional[int] = ...) -> None: ...
    class QualityEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: float
        def __init__(self, key: _Optional[str] = ..., value: _Optional[float] = ...) -> None: ...
    OBJECTIVE_FIELD_NUMBER: _ClassVar[int]
    DATA_FIELD_NUMBER: _ClassVar[int]
    SPLIT_FIELD_NUMBER: _ClassVar[int]
    SEED_FIELD_NUMBER: _ClassVar[int]
    EXAMPLES_FIELD_NUMBER: _ClassVar[int]
    QUALITY_FIELD_NUMBER: _ClassVar[int]
    NOTES_FIELD_NUMBER: _ClassVar[int]
    objective: str
    data: _containers.RepeatedCompositeFieldContainer[DataSource]
    split: str
    seed: int
    examples: _containers.ScalarMap[str, int]
    quality: _containers.ScalarMap[str, float]
    notes: str
    def __init__(self, objective: _Optional[str] = ..., data: _Optional[_Iterable[_Union[DataSource, _Mapping]]] = ..., split: _Optional[str] = ..., seed: _Optional[int] = ..., examples: _Optional[_Mapping[str, int]] = ..., quality: _Optional[_Mapping[str, float]] = ..., notes: _Optional[str] = ...) -> None: ...

class DataSource(_message.Message):
    __slots__ = ("package", "version", "file", "sha256", "licence")
    PACKAGE_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    FILE_FIELD_NUMBER: _ClassVar[int]
    SHA256_FIELD_NUMBER: _ClassVar[int]
    LICENCE_FIELD_NUMBER: _ClassVar[int]
    package: str
    version: str
    file: str
    sha256: str
    licence: str
    def __init__(self, package: _Optional[str] = ..., version: _Optional[str] = ..., file: _Optional[str] = ..., sha256: _Optional[str] = ..., licence: _Optional[str] = ...) -> None: ...
