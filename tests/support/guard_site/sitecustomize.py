"""Python imports this at start-up from PYTHONPATH; see refuse_kernels."""

import refuse_kernels  # type: ignore[import-not-found]  # found on PYTHONPATH, beside this file

refuse_kernels.refuse_if_kernel()
