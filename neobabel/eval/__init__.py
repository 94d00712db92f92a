"""Alignment evaluation: m-GenEval, m-DPG and cross-lingual consistency (CLC/CSS).

Prompt sets and validators live here; model backends (detectors, VQA, image embedders) live in
`neobabel.scorers`. Scoring is separate from generation: images come from an ordinary run
directory (or a folder made elsewhere) and scores go to `scores.parquet` beside them.
"""
