"""Standard outputs for camera-trap work: Camtrap DP packages and the taxonomy behind them.

A stage: it reads plain records (sighting payloads, media files, deployment facts) and writes files;
it never imports config/ or another stage. station/ turns a config and a run into its inputs.
"""
