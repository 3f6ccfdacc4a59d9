"""Every bound a document, an API body or a command-line value must keep, in one place.

Documents are not trusted (DESIGN.md, "Trust boundaries"): every number is finite and bounded, every
text and list has a length, every document a depth. Each bound says why it is where it is; the
point is to refuse nonsense (NaN, infinity, a 1000³ grid, a megabyte label) at declare time, far
above anything a real catalog needs.
"""

from __future__ import annotations

MINUTE = 60
HOUR = 3600
DAY = 86400

# -- durations (seconds) ---------------------------------------------------------------------------
DEFAULT_MAX_RUNTIME_S = 24 * HOUR
MAX_RUNTIME_CAP_S = 30 * DAY  # the contract's hard cap on a run's length
# SIGTERM to SIGKILL. A job that needs more than an hour to stop is not stopping; an unbounded
# grace (`.inf`) would never send SIGKILL and let a run outlive its deadline for ever.
STOP_GRACE_MAX_S = 1 * HOUR
# Waiting for the cheapest shape, and the declared estimate of a run: neither can sensibly pass the
# longest run allowed.
MAX_WAIT_MAX_S = MAX_RUNTIME_CAP_S
EXPECTED_DURATION_MAX_S = MAX_RUNTIME_CAP_S
# Schedules: APScheduler fires an interval trigger at most once a second here; beyond a year a cron
# line says it better (and a huge interval overflows the trigger's timedelta).
INTERVAL_MIN_S = 1
INTERVAL_MAX_S = 366 * DAY
MISFIRE_GRACE_MAX_S = MAX_RUNTIME_CAP_S

# -- sizes -------------------------------------------------------------------------------------------
# Far above the largest machines sold (~2,000 vCPUs, 32 TiB of memory, 16 GPUs of 192 GiB each).
VCPUS_MAX = 16_384
MEMORY_GIB_MAX = 1_048_576  # 1 PiB
GPUS_MAX = 1_024
GPU_MEMORY_GIB_MAX = 65_536
# Concurrent runs on one shape. Finite and an int64; as high as 10^9 because the replay benchmark
# models an unlimited cloud shape with that capacity.
CAPACITY_MAX = 1_000_000_000
RETRIES_MAX = 100  # each retry is a full run; more is a loop, not a retry policy

# -- money (USD) -------------------------------------------------------------------------------------
PRICE_PER_HOUR_MAX = 100_000.0  # the dearest cloud machines cost a few hundred dollars an hour
MONEY_MAX_USD = 1e12  # budgets and sweep budgets: any real limit is far below this

# -- sweeps ------------------------------------------------------------------------------------------
# Each trial is a run with its own record; a sweep bigger than this is a mistake, and a grid is
# refused by its size (the product of its value counts), never by enumerating it.
SWEEP_TRIALS_MAX = 10_000
SWEEP_PARALLEL_MAX = 1_000
SWEEP_VALUES_MAX = 1_000  # values in one grid / choice list

# -- numbers anywhere in a document --------------------------------------------------------------------
# What SQLite's INTEGER and PostgreSQL's bigint hold: a larger int cannot be stored or compared there.
INT_MIN = -(2**63)
INT_MAX = 2**63 - 1

# -- text and lists ------------------------------------------------------------------------------------
NAME_MAX_CHARS = 63  # names of shapes, jobs, pipelines, steps, budgets (a Kubernetes label value)
# Kubernetes label limits: a key is an optional DNS-subdomain prefix (253) + '/' + a name (63);
# a value at most 63. Shape labels become node selectors; job labels are cost-allocation tags.
LABEL_KEY_MAX_CHARS = 253 + 1 + 63
LABEL_VALUE_MAX_CHARS = 63
LABELS_MAX = 64
TEXT_MAX_CHARS = 32_768  # any one string: an arg, an env value, a path, a message, a cron line
# A process's args and environment share Linux's ARG_MAX (2 MiB by default) with the daemon's own
# environment; these leave most of it free.
ARGS_MAX = 1_024
ARGS_TOTAL_MAX_CHARS = 256 * 1024
ENV_MAX = 1_024
ENV_NAME_MAX_CHARS = 256
ENV_TOTAL_MAX_CHARS = 256 * 1024
FILE_NAME_MAX_BYTES = 255  # Linux's NAME_MAX: a step output or input with a longer name cannot be created
LIST_MAX = 1_000  # outputs, inputs, mounts, hooks, backends, pipeline parameters
STEPS_MAX = 1_000
RUNS_LIMIT_MAX = 1_000_000  # `costwise runs --limit`: rows one listing prints

# -- documents -----------------------------------------------------------------------------------------
# One file given to `costwise apply`: real catalogs are kilobytes; building a megabyte of YAML
# already takes a second or two.
DOCUMENT_FILE_MAX_BYTES = 1024 * 1024
# The deepest real document (a sweep's distribution list inside a step) is 7 levels deep.
DOCUMENT_DEPTH_MAX = 32
# Values in one document, counting each YAML alias as the values it stands for (a "billion laughs"
# file is a few lines that expand to 10^9 values).
DOCUMENT_VALUES_MAX = 200_000
