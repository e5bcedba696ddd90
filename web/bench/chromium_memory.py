"""Samples Chromium's memory every 0.1 s while process PID (argv[1], the browser run) lives,
and prints the peak private memory (USS: Private_Clean + Private_Dirty of
/proc/PID/smaps_rollup) per process type. The renderer's is the tab's memory; RSS would
count Chromium's shared binary and fonts once per process."""
import collections
import os
import subprocess
import sys
import time


def private_kib(pid):
    try:
        with open(f"/proc/{pid}/smaps_rollup") as rollup:
            return sum(int(line.split()[1]) for line in rollup
                       if line.startswith(("Private_Clean", "Private_Dirty")))
    except OSError:
        return 0


peak = collections.Counter()
run = sys.argv[1]
while os.path.exists(f"/proc/{run}"):
    listing = subprocess.run(["ps", "-C", "chromium", "-o", "pid=,args="],
                             capture_output=True, text=True).stdout.strip()
    now = collections.Counter()
    for line in listing.splitlines():
        pid, args = line.strip().split(" ", 1)
        kind = args.split("--type=")[1].split()[0] if "--type=" in args else "browser"
        now[kind] += private_kib(pid)
    for kind, kib in now.items():
        peak[kind] = max(peak[kind], kib)
    time.sleep(0.1)
print(f"renderer (tab) {peak['renderer'] // 1024} MiB, browser process {peak['browser'] // 1024} MiB")
