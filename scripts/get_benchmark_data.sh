#!/bin/sh
# Unpack the images that the benchmarks evaluate on and that no training recipe reads into benchmark_data/
# (git-ignored): the pyradiomics 3.0.1 source distribution's test images (two chest CTs, two brain MRs, with
# tumour labels; pyradiomics is BSD-3-Clause, the images' origin is not stated, so they are never committed).
# Needs pip (for the download); nothing is installed. Put pyradiomics-3.0.1.tar.gz into benchmark_data/
# first to work offline. Environment: PYTHON (default .venv/bin/python, else python3).
set -e
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-.venv/bin/python}
[ -x "$PYTHON" ] || PYTHON=python3
mkdir -p benchmark_data/pyradiomics
archive=benchmark_data/pyradiomics-3.0.1.tar.gz
if [ ! -f "$archive" ]; then
    "$PYTHON" -m pip download --quiet --disable-pip-version-check --no-deps --no-binary :all: \
        --no-build-isolation pyradiomics==3.0.1 -d benchmark_data
fi
tar -xzf "$archive" -C benchmark_data/pyradiomics --strip-components=2 \
    pyradiomics-3.0.1/data/lung1_image.nrrd pyradiomics-3.0.1/data/lung2_image.nrrd \
    pyradiomics-3.0.1/data/lung1_label.nrrd pyradiomics-3.0.1/data/brain1_image.nrrd \
    pyradiomics-3.0.1/data/brain2_image.nrrd pyradiomics-3.0.1/data/brain1_label.nrrd \
    pyradiomics-3.0.1/data/brain2_label.nrrd
echo "benchmark images in $(pwd)/benchmark_data/pyradiomics"
