"""SplitMix64's constants (Steele, Lea & Flood 2014; Stafford's "Mix13" finaliser), shared by the numpy streams
(``ops.BatchRNG``) and the fused numba loops (``_numba_kernels``) that must draw the same words."""

import numpy as np

GAMMA = np.uint64(0x9E37_79B9_7F4A_7C15)  # the increment (golden ratio)
M1 = np.uint64(0xBF58_476D_1CE4_E5B9)
M2 = np.uint64(0x94D0_49BB_1331_11EB)
