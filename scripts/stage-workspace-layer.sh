#!/usr/bin/env bash
# Copy what the named workspace distributions installed into the venv (their package
# directories with bytecode, *.dist-info, console scripts in bin/), read from their RECORD
# files, into a staging tree that mirrors the venv's paths. The Dockerfile's service images copy
# that tree as their small second layer on top of the locked-dependency venv.
#
#   stage-workspace-layer bruno_proto bruno_core bruno_edge
#
# VENV, LAYER and ROOT (the filesystem root the paths are relative to) default to the image's.
set -euo pipefail
venv=${VENV:-/app/.venv}
layer=${LAYER:-/app/workspace-layer}
root=${ROOT:-/}
site="${venv#"$root"}/lib/python3.11/site-packages"
site=${site#/}
bin_dir=${venv#"$root"}
bin_dir=${bin_dir#/}

cd "$root/$site"
for dist in "$@"; do
    cut -d, -f1 "$dist"-*.dist-info/RECORD
done \
    | sed -e "s,^\.\./\.\./\.\./,$bin_dir/,;t" -e "s,/.*,,;s,^,$site/," \
    | sort -u | tar -C "$root" -cf - -T - | tar -C "$layer" -xf -
