"""One module per `defectd` subcommand; each exposes `register(subparsers)`."""
