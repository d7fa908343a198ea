"""Exit codes of the trainer and evaluator; the worker classifies failures by them."""

OK = 0
CONFIG_ERROR = 2       # bad job spec or dataset: the user's to fix, never retried
OUT_OF_MEMORY = 3      # CUDA/CPU out of memory
DISK_FULL = 74         # a write (a checkpoint) failed with ENOSPC/EDQUOT (EX_IOERR)
PREEMPTED = 75         # SIGTERM: a checkpoint was written, resume later (EX_TEMPFAIL)
# Anything else (a crash, a signal, torchrun's own failure) counts as infrastructure.
