"""A governed training run: its config, data preparation and splits, orchestration, folder and encrypted store,
reports, release decision, export and report verification."""
