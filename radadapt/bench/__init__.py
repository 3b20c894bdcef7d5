"""The benchmark stage: frozen encoders compared on the store's own labels (docs/benchmark.md).

``run`` orchestrates; ``contenders`` identifies models and refuses test-patient leaks; ``targets`` picks images and
makes binary targets; ``features`` extracts and caches; ``logistic`` / ``probes`` / ``attentive`` fit probes;
``segmentation`` trains tube heads; ``zeroshot`` scores MI2 prompts and retrieval; ``metrics`` / ``bootstrap`` /
``evaluation`` turn scores into estimates with patient-cluster CIs; ``results`` and ``schema`` build results.json;
``scaling`` / ``trends`` fit scaling laws; ``tables`` prints.
"""
