"""The wiring between config and stages: the live pipeline, offline classify, and the one config -> stages map."""
