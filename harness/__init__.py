"""nbparity: the parity harness (CLI: harness.cli.main)."""
import os

# numpy's BLAS only ever multiplies the two images' 2-row matrix here (their correlation): its
# thread pool cost a full-frame run ~0.15 s of CPU to start and gains nothing. Set before numpy
# loads; children get their own thread settings (harness.runners.process.pinned_env).
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
