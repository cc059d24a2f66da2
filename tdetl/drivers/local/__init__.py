"""``local:`` — tdetl backups: compressed Arrow IPC files with a manifest (formats/backup.md)."""
