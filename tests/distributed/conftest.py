"""The distributed tests import their helpers and worker programs from the files next to this one."""

import os
import sys

sys.path.insert(0, os.path.dirname(__file__))
