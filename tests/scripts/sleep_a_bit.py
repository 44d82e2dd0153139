import os
import time

print("node", os.environ.get("NODE_RANK"), "rank", os.environ.get("RANK"), flush=True)
time.sleep(float(os.environ.get("SLEEP", "2")))
