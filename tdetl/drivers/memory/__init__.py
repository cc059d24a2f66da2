"""In-memory Arrow data as a source (``memory:<key>``): what :func:`tdetl.write` hands a run."""
