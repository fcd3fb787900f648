"""The rule language: the YAML file's types, its CEL conditions, and load errors with lines."""
