#!/bin/sh
# Unpack the real images the shipped models were trained on into training_data/ (git-ignored):
# Debian packages mricron-data (Colin27, macaque INIA19; BSD-3-Clause) and insighttoolkit5-examples
# (ITK example images; Apache-2.0). Needs apt-get (for the download) and dpkg; nothing is installed.
# Put the two .deb files into training_data/debs/ first to work offline.
set -e
cd "$(dirname "$0")/.."
mkdir -p training_data/debs
cd training_data/debs
for package in mricron-data insighttoolkit5-examples; do
    ls "${package}"_*.deb >/dev/null 2>&1 || apt-get download "$package"
done
for deb in *.deb; do dpkg -x "$deb" ..; done
echo "training images in $(cd .. && pwd)/usr/share"
