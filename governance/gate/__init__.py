"""The data gate: load, validate, scrub PII, encrypt into the vault, card; and the check ``govtrain run`` repeats."""
