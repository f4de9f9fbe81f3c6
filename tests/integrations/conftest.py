"""Framework integration tests: skipped where a framework is not installed (``pip install -e .[frameworks]``)."""

import os

# No network: tiny models are built from configs, nothing is downloaded.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
