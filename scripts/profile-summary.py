"""Summarise py-spy's collapsed stacks (bench/results/profile-*.txt): where the samples went.

    .venv/bin/python scripts/profile-summary.py bench/results/profile-click-0ms.txt [N]

Prints the functions with the most samples anywhere on the stack (inclusive), then the leaf
functions (exclusive), as shares of all samples.
"""

import sys
from collections import Counter


def main(path: str, top: int = 30) -> None:
    inclusive: Counter[str] = Counter()
    exclusive: Counter[str] = Counter()
    total = 0
    with open(path) as lines:
        for line in lines:
            stack, _, count_text = line.rstrip("\\n").rpartition(" ")
            count = int(count_text)
            frames = stack.split(";")
            total += count
            exclusive[frames[-1]] += count
            for frame in set(frames):
                inclusive[frame] += count
    print(f"{total} samples")
    for title, counter in (("inclusive", inclusive), ("exclusive", exclusive)):
        print(f"\\n{title}:")
        for frame, count in counter.most_common(top):
            print(f"{100 * count / total:5.1f}%  {frame[:150]}")


if __name__ == "__main__":
    main(sys.argv[1], int(sys.argv[2]) if len(sys.argv) > 2 else 30)
