"""Run one optimization into a store file, for the SIGKILL tests (run as a subprocess).

usage: python store_kill_worker.py FILE SPEC_JSON FLUSH_STEPS
"""
import json
import sys
from pathlib import Path

import tcnet
from tcnet.plugins import Registry
from tcnet.store import RunWriter

if __name__ == "__main__":
    path, spec, flush_steps = sys.argv[1], json.loads(sys.argv[2]), int(sys.argv[3])
    plugins = Registry(files=[Path(__file__).with_name("store_linear.py")])
    tcnet.run(spec, recorders=[RunWriter(path, "victim", flush_steps=flush_steps, flush_seconds=0.5)],
              progress=False, plugins=plugins)
