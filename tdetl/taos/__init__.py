"""Connections to TDengine: native (libtaos), WebSocket (taosAdapter /ws) and REST."""
