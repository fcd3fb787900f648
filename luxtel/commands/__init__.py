"""The `luxtel` subcommands of each domain: the application reads the settings and hands each
domain what it needs."""
