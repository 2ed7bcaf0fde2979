"""Parse a config.pbtxt as Triton does: text format, Triton's own model_config.proto (the copy
tritonclient ships), unknown fields and enum values refused.

stdin: {"path"}. stdout: the ModelConfig as JSON (proto field names, enums by name, defaults
printed, int64 as strings).
"""

import json
import sys
from pathlib import Path

from google.protobuf import json_format, text_format
from tritonclient.grpc import model_config_pb2

a = json.load(sys.stdin)
config = text_format.Parse(
    Path(a["path"]).read_text(encoding="utf-8"), model_config_pb2.ModelConfig()
)
print(
    json.dumps(
        json_format.MessageToDict(
            config, preserving_proto_field_name=True, always_print_fields_with_no_presence=True
        )
    )
)
