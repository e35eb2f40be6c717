"""The example-program tests import their tiny tokenizer helper from tests_support.py next to this file."""

import os
import sys

sys.path.insert(0, os.path.dirname(__file__))
