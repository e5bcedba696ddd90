"""Samples Chromium's memory every 0.1 s until no chromium process is left (after one was
seen), and prints the peak private memory (USS: Private_Clean + Private_Dirty of
/proc/PID/smaps_rollup) per process type. The renderer's is the tab's memory; RSS would
count Chromium's shared binary and fonts once per process."""
import collections
import subprocess
import time


def private_kib(pid):
    try:
        with open(f"/proc/{pid}/smaps_rollup") as rollup:
            return sum(int(line.split()[1]) for line in rollup
                       if line.startswith(("Private_Clean", "Private_Dirty")))
    except OSError:
        return 0


peak = collections.Counter()
seen = False
while True:
    listing = subprocess.run(["ps", "-C", "chromium", "-o", "pid=,args="],
                             capture_output=True, text=True).stdout.strip()
    if not listing:
        if seen:
            break
        time.sleep(0.1)
        continue
    seen = True
    now = collections.Counter()
    for line in listing.splitlines():
        pid, args = line.strip().split(" ", 1)
        kind = args.split("--type=")[1].split()[0] if "--type=" in args else "browser"
        now[kind] += private_kib(pid)
    for kind, kib in now.items():
        peak[kind] = max(peak[kind], kib)
    time.sleep(0.1)
print(f"renderer (tab) {peak['renderer'] // 1024} MiB, browser process {peak['browser'] // 1024} MiB")
