"""``tdetl serve``: tasks kept alive as child processes, managed through a REST API (issue 17)."""
