"""A job that would run for a minute and ignores SIGTERM: its max runtime stops it."""
import signal
import time

signal.signal(signal.SIGTERM, lambda *_: print("SIGTERM ignored", flush=True))
print("working for 60s...", flush=True)
time.sleep(60)
