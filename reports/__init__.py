"""govtrain reports: bias, evaluation, transparency (model card) and provenance, as JSON, Markdown and HTML.

Pure functions on plain data (lists, arrays, dicts, numbers); this package never imports governance,
trainer, audit or datacards, and never receives text from a dataset. The orchestrator calls, in order:

- ``bias.classification_bias_report`` or ``bias.language_model_bias_report`` (with ``lm_bias``'s
  ``crows_pairs_probe``), which judge the policy thresholds via ``verdict.judge``;
- ``evaluation.classification_metrics`` / ``language_model_metrics``, ``training_summary``, ``evaluation_report``;
- ``transparency.build_model_card`` with a ``lineage.Lineage``;
- ``provenance.provenance_statement`` and ``provenance.sign_dsse``;
- ``render.write_reports`` (returns ``{filename: sha256}`` for the audit log), and later
  ``verify.verify_report_digests`` and ``provenance.verify_dsse``.

Before training, ``planning.plan_bias_split`` predicts which groups the test split lets the verdict judge.
``calibration`` simulates the verdict's false-FAIL rate, coverage and power (used by tests and benchmarks).

Modules import only numpy and pydantic at load time; fairlearn, sklearn, scipy, pandas and matplotlib load on
use.
"""
