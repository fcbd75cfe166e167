#!/bin/sh
# Unpack the real images the shipped models were trained on into training_data/ (git-ignored):
# Debian packages mricron-data (Colin27, macaque INIA19; BSD-3-Clause), insighttoolkit5-examples
# (ITK example images; Apache-2.0) and invesalius-examples (a head CT; GPL-2).
# Needs apt-get (for the download) and dpkg; nothing is installed.
# Put the three .deb files into training_data/debs/ first to work offline.
set -e
cd "$(dirname "$0")/.."
mkdir -p training_data/debs
cd training_data/debs
for package in mricron-data insighttoolkit5-examples invesalius-examples; do
    ls "${package}"_*.deb >/dev/null 2>&1 || apt-get download "$package"
done
for deb in *.deb; do dpkg -x "$deb" ..; done
echo "training images in $(cd .. && pwd)/usr/share"
