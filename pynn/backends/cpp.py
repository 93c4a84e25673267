"""The compiled backend: the kernels of ``pynn._core`` (C++ with OpenBLAS from scipy-openblas32).

Importing scipy_openblas32 first loads its ``libscipy_openblas.so`` into the process, so the
extension also finds it when it runs from a build tree rather than from site-packages.
"""

import scipy_openblas32  # noqa: F401  (preloads the BLAS library the extension links to)

from pynn._core import *  # noqa: F401,F403
