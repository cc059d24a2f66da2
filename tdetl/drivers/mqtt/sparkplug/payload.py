"""The Sparkplug B payload (Eclipse Tahu's ``sparkplug_b.proto``, package ``org.eclipse.tahu.protobuf``),
declared here and built into message classes by protobuf at import: no ``protoc`` step and no generated
module. Only what a host application reads is declared (a DataSet, Template or PropertySet value stays
opaque bytes: protobuf still parses past it). Field numbers: formats/sparkplug_b.md."""

from __future__ import annotations

from typing import Any

from google.protobuf import descriptor_pb2, descriptor_pool, message_factory

PACKAGE = "org.eclipse.tahu.protobuf"
_F = descriptor_pb2.FieldDescriptorProto

# (name, number, type, label); label "r" repeated, else optional; a oneof member ends with "*"
_METRIC = (("name", 1, _F.TYPE_STRING), ("alias", 2, _F.TYPE_UINT64), ("timestamp", 3, _F.TYPE_UINT64),
           ("datatype", 4, _F.TYPE_UINT32), ("is_historical", 5, _F.TYPE_BOOL), ("is_transient", 6, _F.TYPE_BOOL),
           ("is_null", 7, _F.TYPE_BOOL), ("metadata", 8, _F.TYPE_BYTES), ("properties", 9, _F.TYPE_BYTES),
           ("int_value*", 10, _F.TYPE_UINT32), ("long_value*", 11, _F.TYPE_UINT64), ("float_value*", 12, _F.TYPE_FLOAT),
           ("double_value*", 13, _F.TYPE_DOUBLE), ("boolean_value*", 14, _F.TYPE_BOOL),
           ("string_value*", 15, _F.TYPE_STRING), ("bytes_value*", 16, _F.TYPE_BYTES),
           ("dataset_value*", 17, _F.TYPE_BYTES), ("template_value*", 18, _F.TYPE_BYTES),
           ("extension_value*", 19, _F.TYPE_BYTES))
_PAYLOAD = (("timestamp", 1, _F.TYPE_UINT64), ("seq", 3, _F.TYPE_UINT64), ("uuid", 4, _F.TYPE_STRING),
            ("body", 5, _F.TYPE_BYTES))


def _classes() -> tuple[Any, Any]:
    f = descriptor_pb2.FileDescriptorProto(name="tdetl/sparkplug_b.proto", package=PACKAGE, syntax="proto2")
    payload = f.message_type.add(name="Payload")
    metric = payload.nested_type.add(name="Metric")
    metric.oneof_decl.add(name="value")
    for name, number, kind in _METRIC:
        field = metric.field.add(name=name.rstrip("*"), number=number, type=kind, label=_F.LABEL_OPTIONAL)
        if name.endswith("*"):
            field.oneof_index = 0
    for name, number, kind in _PAYLOAD:
        payload.field.add(name=name, number=number, type=kind, label=_F.LABEL_OPTIONAL)
    payload.field.add(name="metrics", number=2, type=_F.TYPE_MESSAGE, label=_F.LABEL_REPEATED,
                      type_name=f".{PACKAGE}.Payload.Metric")
    pool = descriptor_pool.DescriptorPool()
    pool.Add(f)
    desc = pool.FindMessageTypeByName(f"{PACKAGE}.Payload")
    return message_factory.GetMessageClass(desc), message_factory.GetMessageClass(desc.nested_types_by_name["Metric"])


Payload, Metric = _classes()

# Sparkplug B data types (the spec's table; the proto's comment lists them)
INT8, INT16, INT32, INT64, UINT8, UINT16, UINT32, UINT64 = 1, 2, 3, 4, 5, 6, 7, 8
FLOAT, DOUBLE, BOOLEAN, STRING, DATETIME, TEXT, UUID, DATASET, BYTES, FILE, TEMPLATE = range(9, 20)
TYPE_NAMES = {1: "Int8", 2: "Int16", 3: "Int32", 4: "Int64", 5: "UInt8", 6: "UInt16", 7: "UInt32", 8: "UInt64",
              9: "Float", 10: "Double", 11: "Boolean", 12: "String", 13: "DateTime", 14: "Text", 15: "UUID",
              16: "DataSet", 17: "Bytes", 18: "File", 19: "Template"}
