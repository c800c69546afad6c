"""ifrt.train: synthetic data, degradation model, the DeepMT-ND network, training and evaluation.

Needs the `train` extra (torch); importing this package itself stays light so that
`ifrt data` tools that only need numpy/OpenCV work without torch.
"""
