"""A CPU-bound job: sums squares for about a second, using one core."""
import sys
import time

seconds = float(sys.argv[1]) if len(sys.argv) > 1 else 1.0
end, total, n = time.monotonic() + seconds, 0, 0
while time.monotonic() < end:
    total += sum(i * i for i in range(10_000))
    n += 1
print(f"{n} rounds, checksum {total % 1_000_003}")
