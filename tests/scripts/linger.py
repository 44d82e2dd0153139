"""Writes an output, starts a grandchild process, then runs until it is stopped."""
import os
import subprocess
import sys
import time

os.makedirs("outputs", exist_ok=True)
child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"])
with open("outputs/partial.txt", "w") as f:
    f.write(f"{os.getpid()} {child.pid}\n")
print(f"pids {os.getpid()} {child.pid}", flush=True)
while True:
    print("working", flush=True)
    time.sleep(0.2)
