"""Running the rules: the engine loop, its own process, the state store and metrics."""
