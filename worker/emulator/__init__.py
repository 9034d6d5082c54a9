"""A local Lambda / LMI emulator: a Runtime API, the Invoke API front, and the runtime it runs."""
