"""The `mmkeras` subcommands, one module each (see `mmkeras.cli`)."""
