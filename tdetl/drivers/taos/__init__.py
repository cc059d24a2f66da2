"""``taos:`` / ``taos+ws:`` / ``taos+http:`` — TDengine as a source and a target (the connections
themselves are in :mod:`tdetl.taos`, shared with the TMQ driver)."""
