"""ifrt.train: synthetic data, degradation model, the DeepMT-ND network, training and evaluation.

Needs the `train` extra (torch); importing this package itself stays light so that
`ifrt data` tools that only need numpy/OpenCV work without torch.
"""

import sys


def print_warning(text: str) -> None:
    """How training and evaluation report a warning unless their caller says otherwise: on stderr, as
    `warning: TEXT` (the command line passes its own, which names the command)."""
    print(f"warning: {text}", file=sys.stderr, flush=True)
