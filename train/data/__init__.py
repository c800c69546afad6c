"""ifrt.train.data: the synthetic IFVB-like database, the degradation model and the dataset contract tools.

Needs numpy, OpenCV and tifffile only (never torch), so `ifrt data ...` works on any install.

    pathology.py  what each class looks like under each stain (findings per patient)
    anatomy.py    glomerulus, capsule, tubules, vessels as maps
    stain.py      deposits + autofluorescence + illumination + exposure -> one sharp image
    synth.py      render_glomerulus, synthesize_database (images + manifest.csv)
    blur.py       Gaussian, widefield defocus and spatially varying blur
    noise.py      Poisson-Gaussian camera, offset, gain, quantization
    degrade.py    DegradeConfig, degrade() -> Degraded (image + labels), also for on-the-fly augmentation
    manifest.py   read/write/validate manifest.csv
    split.py      patient-level stratified splits
    check.py      dataset validation (`ifrt data check`)
    index.py      manifest from ROOT/<diagnosis>/<patient>/<image> (`ifrt data index`)
    preview.py    class x blur-level contact sheet (`ifrt data preview`)
"""

# The side of a synthetic image, in pixels: rendering takes about 100 bytes a pixel, 1.7 GB a worker at 4096.
# Here, not in synth.py, so that `ifrt data synth --help` can name them without importing numpy and OpenCV.
SYNTH_MIN_SIZE, SYNTH_MAX_SIZE = 32, 4096
