"""Ready-made handlers that ship with runtime-worker."""
