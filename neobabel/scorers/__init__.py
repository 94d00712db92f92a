"""Model backends shared by every scorer and classifier (CLIP, and later detectors and VQA).

One home per model family: loading offline, devices, batched encoding. Evaluation code
(magbig's classifiers and alignment, neobabel's eval tasks) builds on these.
"""
