#!/usr/bin/env bash
# The programs Parley's voice and image features and their tests use, from Debian's packages:
# Tesseract (OCR), espeak-ng (speech for test fixtures), sox and ffmpeg (audio conversion).
# Installs the missing ones with apt-get when run as root; otherwise says what to install.
set -euo pipefail

missing=()
for tool in tesseract:tesseract-ocr espeak-ng:espeak-ng sox:sox ffmpeg:ffmpeg; do
    command -v "${tool%%:*}" >/dev/null || missing+=("${tool#*:}")
done
((${#missing[@]})) || exit 0
if [[ $(id -u) -eq 0 ]] && command -v apt-get >/dev/null; then
    echo "Installing ${missing[*]} (Debian packages) …"
    apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q "${missing[@]}"
else
    echo "Parley's voice and image features need: ${missing[*]}" >&2
    echo "Install them, e.g.: sudo apt-get install ${missing[*]}" >&2
    exit 1
fi
